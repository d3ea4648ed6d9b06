"""ulasan bench engine: the run matrix and its JSON shape on a tiny model (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.tiny_model import tiny_serving_folder
from trainer.bench_engine import bench_texts, run_engine_bench, shape_model, sorted_throughput
from trainer.errors import TrainerError
from ulasan.cli import app
from ulasan.core.settings import Settings


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_serving_folder(tmp_path_factory.getbasetemp())


def test_run_matrix(serving: Path) -> None:
    checkpoint = serving.parent / "tiny-trained-checkpoint"
    result = run_engine_bench(serving, checkpoint, n_texts=20, batch_size=8, threads=1)
    assert result["model"] == "tiny-trained" and result["n_texts"] == 20
    assert result["threads"] == 1 and result["notes"] == []
    runs = {(r["runtime"], r["batch"], r["padding"]): r for r in result["runs"]}
    assert set(runs) == {
        ("pytorch-eager-fp32", 1, "none"),
        ("pytorch-eager-fp32", 8, "length-sorted"),
        ("onnxruntime-fp32", 1, "none"),
        ("onnxruntime-fp32", 8, "length-sorted"),
        ("onnxruntime-int8", 1, "none"),
        ("onnxruntime-int8", 8, "length-sorted"),
        ("onnxruntime-int8", 8, "arrival-order"),
    }
    for (_, batch, _), r in runs.items():
        assert r["texts_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["calls"] == (20 if batch == 1 else 3)


def test_sorted_throughput_runs_each_size_the_asked_number_of_times(serving: Path) -> None:
    runs = sorted_throughput(serving, n_texts=12, batch_sizes=[8, 4], rounds=2, threads=1)
    assert list(runs) == [8, 4]
    assert all(len(every) == 2 and min(every) > 0 for every in runs.values())


def test_without_checkpoint_the_baseline_is_named_missing(serving: Path) -> None:
    result = run_engine_bench(serving, None, n_texts=8, batch_size=4, threads=1)
    assert not any(r["runtime"].startswith("pytorch") for r in result["runs"])
    assert any("--checkpoint" in note for note in result["notes"])


def test_cli_json(serving: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("ULASAN_STATE_DIR", str(tmp_path))
    args = ["bench", "engine", "--model", str(serving), "--texts", "8", "--batch", "4", "--json"]
    out = CliRunner().invoke(app, [*args, "--threads", "1"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["model"] == "tiny-trained"
    # the manifest's source checkpoint exists, so the PyTorch baseline runs in the same call
    assert {r["runtime"] for r in result["runs"]} >= {"pytorch-eager-fp32", "onnxruntime-int8"}
    assert set(result["runs"][0]) >= {"runtime", "batch", "texts_per_s", "p50_ms", "p99_ms"}


def test_cli_needs_exactly_one_source() -> None:

    out = CliRunner().invoke(app, ["bench", "engine", "--json"])
    assert out.exit_code == 2


def test_unknown_shape_and_too_many_texts(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="unknown shape"):
        shape_model("gpt-9", Settings(state_dir=tmp_path))
    with pytest.raises(TrainerError, match="asked for"):
        bench_texts(10_000)
