"""Registry round trip on the local stack's MLflow: log, register, resolve, gate, promote, refuse;
the gate's guards against forgetting a base set (``run_gate`` and the retrain's gate).

Each run uses its own registered model name (deleted afterwards), so the shared registry's
``ulasan-sentiment`` is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.tiny_model import PROJECT_ROOT, smsa_rows, tiny_serving_folder
from trainer import registry
from trainer.config import load_config
from trainer.errors import GateError
from trainer.evaluate import read_examples
from trainer.gate import GateConfig, run_gate
from trainer.profile import build_profile, write_profile
from trainer.retrain.request import RetrainData
from trainer.retrain.request import gate as retrain_gate
from trainer.retrain.store import RunRecord
from ulasan.core.inference import OnnxPredictor
from ulasan.core.registry import resolve_model
from ulasan.core.settings import Settings
from ulasan.core.text import default_lexicon

EVAL_FILE = PROJECT_ROOT / "data" / "smsa" / "test.tsv"  # evaluation only
GATE_FILE = PROJECT_ROOT / "data" / "smsa" / "valid.tsv"  # selection never uses test
LOW_BAR = GateConfig(min_accuracy=0.3)


@pytest.fixture(name="reg_settings")
def reg_settings_fixture(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The local stack's settings with a unique registered model and a private state_dir."""
    base = settings
    name = f"test-ulasan-{uuid.uuid4().hex[:8]}"
    reg = base.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "mlflow": base.mlflow.model_copy(
                update={"registered_model": name, "experiment": "ulasan-tests"}
            ),
        }
    )
    mc = registry.client(reg)
    yield reg
    # nothing is registered when a test failed early
    with contextlib.suppress(Exception):
        mc.delete_registered_model(name)


def _run(settings: Settings) -> str:
    mc = registry.client(settings)
    exp = mc.get_experiment_by_name(settings.mlflow.experiment)
    exp_id = exp.experiment_id if exp else mc.create_experiment(settings.mlflow.experiment)
    run_id: str = mc.create_run(exp_id).info.run_id
    mc.set_terminated(run_id)
    return run_id


def _register(settings: Settings, folder: Path, train_hash: str) -> registry.ModelVersionInfo:
    run_id = _run(settings)
    registry.log_serving_folder(settings, run_id, folder, reports={"note": {"ok": True}})
    return registry.register_candidate(
        settings, run_id, folder, train_dataset_hash=train_hash, commit="abc123"
    )


@pytest.fixture(name="models")
def models_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a trained tiny serving folder, an untrained one): a champion and a worse candidate."""
    base = tmp_path_factory.getbasetemp()
    return tiny_serving_folder(base, trained=True), tiny_serving_folder(base, trained=False)


def test_register_resolve_gate_promote_and_refuse(
    reg_settings: Settings, models: tuple[Path, Path]
) -> None:
    settings = reg_settings
    good, worse = models
    rows = smsa_rows("train", 400)
    write_profile(
        build_profile(
            [t for t, _ in rows], [y for _, y in rows], folder=good, lexicon=default_lexicon()
        ),
        good,
    )
    train_hash = registry.dataset_hash(rows)
    eval_rows = read_examples(GATE_FILE)

    # register: version 1 holds candidate, with its tags; artifacts are where they belong
    v1 = _register(settings, good, train_hash)
    assert v1.version == "1" and registry.CANDIDATE in v1.aliases
    assert v1.tags[registry.TAG_DATASET_HASH] == train_hash
    assert v1.tags[registry.TAG_GIT_COMMIT] == "abc123"
    assert v1.tags[registry.TAG_FEATURE_VERSION] and v1.tags[registry.TAG_LEXICON_VERSION]
    assert registry.champion(settings) is None
    artifacts = {a.path for a in registry.client(settings).list_artifacts(v1.run_id)}
    assert {"serving", "profile.json", "reports"} <= artifacts

    # resolve: the alias is downloaded once into state_dir and loads without torch code paths
    folder, name, version = resolve_model(f"models:/{v1.name}@candidate", settings)
    assert (name, version) == (v1.name, "1")
    assert folder == settings.state_dir / "models" / v1.name / "1"
    assert (folder / "profile.json").is_file() and (folder / "model.onnx").is_file()
    assert not (folder / "model_fp32.onnx").exists()  # serving never loads it: not fetched
    assert resolve_model(f"models:/{v1.name}/1", settings)[0] == folder
    assert resolve_model(f"models:/{v1.name}/1", settings, include_fp32=True)[0] == folder
    assert (folder / "model_fp32.onnx").stat().st_size == (good / "model_fp32.onnx").stat().st_size
    predictor = OnnxPredictor.from_folder(folder, model_version=version, model_name=name)
    assert predictor.predict(["pelayanan sangat memuaskan"])[0].label

    # gate 1: no champion yet, accuracy over the bar -> champion
    first = run_gate(settings, eval_rows, config=LOW_BAR, eval_name="smsa-valid")
    assert first.promoted, first.reason
    assert first.champion_version is None and first.candidate.n == 1260
    champ = registry.champion(settings)
    assert champ is not None and champ.version == "1"
    assert champ.tags["ulasan.gate.decision"] == "promoted"
    assert champ.scores is not None and champ.scores.dataset_hash == first.candidate.dataset_hash
    assert first.to_event() is not None

    # gate 2: a worse model (random weights) becomes candidate and is refused on macro-F1
    v2 = _register(settings, worse, train_hash)
    assert v2.version == "2"
    refused = run_gate(settings, eval_rows, config=LOW_BAR, eval_name="smsa-valid")
    assert not refused.promoted
    assert refused.candidate_version == "2" and refused.champion_version == "1"
    assert refused.candidate.macro_f1 < refused.champion.macro_f1  # type: ignore[union-attr]
    assert "macro-F1" in refused.reason or "below the minimum" in refused.reason
    assert registry.champion(settings).version == "1"  # type: ignore[union-attr]
    tags = registry.get_version(settings, version="2").tags
    assert tags["ulasan.gate.decision"] == "rejected"
    assert tags["ulasan.gate.champion_version"] == "1"
    assert float(tags["ulasan.gate.champion_macro_f1"]) == pytest.approx(
        first.candidate.macro_f1, abs=1e-6
    )

    # gate 3: the accuracy floor alone refuses too
    strict = run_gate(settings, eval_rows, version=1, config=GateConfig(min_accuracy=0.99))
    assert not strict.promoted and "already the champion" in strict.reason
    strict2 = run_gate(settings, eval_rows, version=2, config=GateConfig(min_accuracy=0.99))
    assert not strict2.promoted and "below the minimum" in strict2.reason

    # the CLI: evaluate the champion, promote refuses with exit status 3
    env = {
        **os.environ,
        "ULASAN_MLFLOW__REGISTERED_MODEL": v1.name,
        "ULASAN_MLFLOW__HOST": settings.mlflow.host,
        "ULASAN_MLFLOW__PORT": str(settings.mlflow.port),
        "ULASAN_STATE_DIR": str(settings.state_dir),
    }
    ulasan = [str(Path(sys.executable).parent / "ulasan")]
    out = subprocess.run(
        [*ulasan, "evaluate", "--model", f"models:/{v1.name}@champion", "--data", str(EVAL_FILE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n"] == 500
    assert 0.0 <= report["accuracy"] <= 1.0 and report["model_version"] == "1"
    assert set(report["per_class"]["positive"]) >= {"precision", "recall", "f1", "support"}
    out = subprocess.run(
        [
            *ulasan,
            "promote",
            "--version",
            "2",
            "--min-accuracy",
            "0.3",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert out.returncode == 3, out.stderr
    decision = json.loads(out.stdout)  # on the default fixed set (SmSA valid, deduplicated)
    assert decision["promoted"] is False and decision["champion_version"] == "1"
    assert decision["candidate"]["dataset_name"] == "smsa-valid-dedup"


def test_a_guard_refuses_forgetting_the_pooled_score_lets_through(
    reg_settings: Settings, models: tuple[Path, Path]
) -> None:
    settings = reg_settings
    good, worse = models
    valid = read_examples(GATE_FILE)
    pooled, guarded = valid[:300], {"smsa-valid": valid}  # distinct sets, distinct hashes
    pooled_hash, guard_hash = registry.dataset_hash(pooled), registry.dataset_hash(valid)
    train_hash = registry.dataset_hash(smsa_rows("train", 400))

    # no champion yet: the guard is scored and recorded, and does not block
    _register(settings, good, train_hash)
    first = run_gate(settings, pooled, config=LOW_BAR, eval_name="pooled", guards=guarded)
    assert first.promoted, first.reason
    (g1,) = first.guards
    assert g1.passed and g1.champion is None and g1.candidate.n == len(valid)

    # a pooled loss the tolerance lets through; on the guarded set on its own the random
    # model loses more than base_tolerance: refused as forgetting, naming the set
    _register(settings, worse, train_hash)
    lax = GateConfig(min_accuracy=0.0, tolerance=1.0, base_tolerance=0.0)
    refused = run_gate(settings, pooled, config=lax, eval_name="pooled", guards=guarded)
    assert not refused.promoted
    assert refused.reason.startswith("forgetting: smsa-valid macro-F1 ")
    (g2,) = refused.guards
    assert not g2.passed and g2.champion is not None
    assert g2.champion.macro_f1 == pytest.approx(g1.candidate.macro_f1, abs=1e-6)  # recorded
    assert g2.candidate.macro_f1 < g2.champion.macro_f1
    assert f"{g2.candidate.macro_f1:.4f} < champion {g2.champion.macro_f1:.4f}" in refused.reason
    assert refused.as_dict()["guards"][0]["passed"] is False
    assert registry.champion(settings).version == "1"  # type: ignore[union-attr]

    # the guard scores sit beside the pooled ones on each version, never over them
    for version in ("1", "2"):
        info = registry.get_version(settings, version=version)
        assert info.scores is not None and info.scores.dataset_hash == pooled_hash
        assert info.tags["ulasan.guard.smsa-valid.dataset_hash"] == guard_hash
    tags = registry.get_version(settings, version="2").tags
    assert tags["ulasan.gate.decision"] == "rejected"
    assert tags["ulasan.gate.guard.smsa-valid"].startswith("failed: smsa-valid macro-F1")

    # the same loss within base_tolerance passes (the recorded scores are reused)
    allowed = lax.model_copy(update={"base_tolerance": 1.0})
    passed = run_gate(settings, pooled, config=allowed, eval_name="pooled", guards=guarded)
    assert passed.promoted and "no forgetting: smsa-valid" in passed.reason
    again = passed.guards[0].candidate  # read back from the tags (6 decimals), not evaluated
    assert again.macro_f1 == float(f"{g2.candidate.macro_f1:.6f}") and again.n == len(valid)
    with pytest.raises(GateError, match="guard set name"):
        run_gate(settings, pooled, version=2, guards={"bad name!": valid})


def test_the_retrain_gate_guards_the_base_set_and_records_it(
    reg_settings: Settings, models: tuple[Path, Path]
) -> None:
    settings = reg_settings
    good, worse = models
    train_hash = registry.dataset_hash(smsa_rows("train", 400))
    v1 = _register(settings, good, train_hash)
    registry.set_alias(settings, registry.CHAMPION, v1.version)
    v2 = _register(settings, worse, train_hash)
    config = load_config(PROJECT_ROOT / "configs" / "tiny.yaml").with_overrides(
        {"max_valid_examples": 300, "gate.tolerance": 1.0, "gate.base_tolerance": 0.0}
    )
    held = [("barangnya cepat sampai", "positive"), ("kemasan rusak parah", "negative")]
    data = RetrainData(config=config, held_pairs=held, overrides={}, weight=lambda e: 1.0)
    record = RunRecord(run_id="r1", request_id="q1", dedupe_key="k", reasons=[], status="running")

    decision = retrain_gate(settings, record, data, v2.version)

    # the pooled loss is tolerated (gate.tolerance 1.0); the base set on its own is not
    assert not decision.promoted and record.decision == decision.reason
    assert decision.reason.startswith("forgetting: smsa-valid-dedup macro-F1 ")
    gate = record.scores["gate"]
    assert gate["n"] == 302 and gate["stream_holdout"] == 2 and gate["base_tolerance"] == 0.0
    (guard,) = gate["guards"]
    assert guard["name"] == "smsa-valid-dedup" and guard["passed"] is False
    assert guard["candidate"]["n"] == guard["champion"]["n"] == 300
    assert guard["candidate"]["macro_f1"] < guard["champion"]["macro_f1"]
    json.dumps(record.scores)  # stored as JSON in retrain_runs
