"""The project's paths are settings: an installed package finds configs and data by environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ulasan.core.settings import PROJECT_ROOT, ProjectPaths, Settings


def test_defaults_are_the_checkout(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key in list(os.environ):
        if key.startswith("ULASAN_"):
            monkeypatch.delenv(key)
    paths = ProjectPaths()
    assert (
        paths.configs == PROJECT_ROOT / "configs" and (paths.configs / "ulasan-mini.yaml").is_file()
    )
    assert paths.data == PROJECT_ROOT / "data" and (paths.data / "smsa").is_dir()
    assert paths.logs == PROJECT_ROOT / "logs"
    assert paths.resolve(Path("artifacts/train")) == PROJECT_ROOT / "artifacts" / "train"
    assert paths.resolve(Path("/abs")) == Path("/abs")
    assert Settings().configs == paths.configs


def test_every_module_that_reads_project_files_follows_the_settings(tmp_path: Path) -> None:
    """What the image sets (ULASAN_CONFIGS_DIR, ...) is what the trainer, the replay and the
    bench read, in a fresh process (the module constants are read at import)."""
    code = (
        "import json\n"
        "from trainer.config import CONFIG_DIR, DEFAULT_CONFIG, load_config\n"
        "from trainer.data import DATA_ROOT\n"
        "from trainer.bench_engine import BENCH_TEXTS\n"
        "from trainer.retrain.config import TrainerSettings\n"
        "from producers.replay import PRDECT_FILE\n"
        "s = TrainerSettings()\n"
        "print(json.dumps({'configs': str(CONFIG_DIR), 'default': str(DEFAULT_CONFIG),\n"
        "  'data': str(DATA_ROOT), 'bench': str(BENCH_TEXTS), 'prdect': str(PRDECT_FILE),\n"
        "  'retrain_config': str(s.retrain.config), 'retrain_logs': str(s.retrain.logs_dir),\n"
        "  'output': str(load_config().resolved_output_dir())}))\n"
    )
    configs, data, root = tmp_path / "cfg", tmp_path / "data", tmp_path / "root"
    configs.mkdir()
    (configs / "ulasan-mini.yaml").write_text(
        (PROJECT_ROOT / "configs/ulasan-mini.yaml").read_text()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ULASAN_")}
    env.update(
        ULASAN_CONFIGS_DIR=str(configs), ULASAN_DATA_DIR=str(data), ULASAN_ROOT_DIR=str(root)
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got == {
        "configs": str(configs),
        "default": str(configs / "ulasan-mini.yaml"),
        "data": str(data),
        "bench": str(data / "smsa" / "valid.tsv"),
        "prdect": str(data / "prdect_id" / "prdect_id.csv"),
        "retrain_config": str(configs / "ulasan-mini.yaml"),
        "retrain_logs": str(root / "logs" / "retraining"),
        "output": str(root / "artifacts" / "train"),
    }
