"""``--json`` commands print exactly one JSON document on stdout; chatter goes to stderr."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from ulasan import scenario
from ulasan.cli import app
from ulasan.procs import ULASAN_BIN, child_env

# what MLflow prints when a run ends, and what a C extension writes to descriptor 1
CHATTER = textwrap.dedent(
    """
    import os, sys
    from ulasan.json_output import json_stdout
    print("before the block goes to stdout")
    with json_stdout() as emit:
        print("🏃 View run bright-owl-42 at: http://127.0.0.1:15000/#/experiments/1/runs/abc")
        sys.stdout.write("python-level chatter\\n")
        os.write(1, b"descriptor-level chatter\\n")
        emit({"macro_f1_after": 0.81, "nested": [1, 2]})
    """
)


def test_json_stdout_keeps_stdout_for_the_one_document() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHATTER], capture_output=True, text=True, timeout=60, check=True
    )
    first, rest = done.stdout.split("\n", 1)
    assert first == "before the block goes to stdout"
    assert json.loads(rest) == {"macro_f1_after": 0.81, "nested": [1, 2]}
    for line in ("View run bright-owl-42", "python-level chatter", "descriptor-level chatter"):
        assert line in done.stderr


def test_json_stdout_prints_nothing_when_the_block_fails() -> None:
    code = "from ulasan.json_output import json_stdout\nwith json_stdout() as emit:\n"
    code += "    print('working')\n    raise SystemExit(3)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "" and "working" in done.stderr


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """The command installs SIGTERM/SIGHUP handlers (for its children): undo that after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_scenario_json_prints_only_the_result(
    monkeypatch: pytest.MonkeyPatch, restored_signals: None
) -> None:
    def noisy_run(settings: Any, cfg: Any, console: Any = None) -> dict[str, Any]:
        # what the real scenario's trainings do: MLflow announces each run on stdout
        print("🏃 View run smsa-champion at: http://127.0.0.1:15000/#/experiments/3/runs/1")
        return {
            "macro_f1_before": 0.52,
            "macro_f1_after": 0.74,
            "loop_seconds": 264.0,
            "promoted_version": "2",
            "base_macro_f1_before": 0.80,
            "base_macro_f1_after": 0.79,
            "base_drop": 0.01,
            "workdir": "/tmp/x",
        }

    monkeypatch.setattr(scenario, "run", noisy_run)
    result = CliRunner().invoke(app, ["scenario", "domain-shift", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "macro_f1_before": 0.52,
        "macro_f1_after": 0.74,
        "loop_seconds": 264.0,
        "promoted_version": "2",
        "base_macro_f1_before": 0.80,
        "base_macro_f1_after": 0.79,
        "base_drop": 0.01,
    }
    assert "View run smsa-champion" in result.stderr


def test_bench_text_json_is_one_document() -> None:
    done = subprocess.run(
        [str(ULASAN_BIN), "bench", "text", "--n", "100", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["n_texts"] == 100 and result["runs"]
