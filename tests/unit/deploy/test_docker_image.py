"""The images' recipe: pinned bases, non-root, what is copied, and no torch where none belongs.

No Docker engine here: what the build would install is checked on the real lock with the
same commands the Dockerfile runs (``uv export`` and deploy/docker/requirements.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy.docker.requirements import CUDA_ONLY, RequirementsError, cpu_torch
from ulasan.core.settings import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
REQUIREMENTS = PROJECT_ROOT / "deploy" / "docker" / "requirements.py"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


#: where `make uv` puts its private copy when none is on PATH (the Makefile's UV_VENV)
PRIVATE_UV = Path.home() / ".cache" / "ulasan" / "uv-venv" / "bin" / "uv"


def find_uv() -> str | None:
    """The uv that `make setup` used: ``ULASAN_UV`` (the Makefile exports it), else the one
    on PATH, else the Makefile's private copy."""
    for candidate in (os.environ.get("ULASAN_UV"), shutil.which("uv"), str(PRIVATE_UV)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def uv_export(*extra: str) -> list[str]:
    uv = find_uv()
    assert uv, "uv is what `make setup` installs the project with (run `make uv`)"
    done = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", *extra],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        match = _PIN.match(line.strip())
        if match:
            out[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return out


@pytest.fixture(scope="module")
def trainer_export() -> list[str]:
    return uv_export("--extra", "trainer")


def test_the_serving_image_installs_no_torch() -> None:
    got = pins(uv_export())
    assert "onnxruntime" in got and "tokenizers" in got
    heavy = {n for n in got if n in {"torch", "transformers", "optimum"} or CUDA_ONLY.match(n)}
    assert not heavy, f"the serving dependencies pull {sorted(heavy)}"


def test_the_trainer_image_gets_the_cpu_torch_and_no_cuda(trainer_export: list[str]) -> None:
    locked = pins(trainer_export)
    cuda = {n for n in locked if CUDA_ONLY.match(n)}
    assert cuda, "the lock's Linux torch needs CUDA packages: what this step exists to drop"
    out = subprocess.run(
        [sys.executable, str(REQUIREMENTS), "/dev/stdin"],
        input="\n".join(trainer_export),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    got = pins(out.stdout.splitlines())
    assert got["torch"] == locked["torch"].split("+")[0] + "+cpu"
    assert not {n for n in got if CUDA_ONLY.match(n)}
    # everything else stays exactly as locked
    assert {n: v for n, v in got.items() if n != "torch"} == {
        n: v for n, v in locked.items() if n != "torch" and n not in cuda
    }


def test_cpu_torch_refuses_what_it_cannot_rewrite() -> None:
    with pytest.raises(RequirementsError, match="no torch"):
        cpu_torch(["numpy==2.0.0"])
    with pytest.raises(RequirementsError, match="hashes"):
        cpu_torch(["torch==2.13.0 \\", "    --hash=sha256:00"])
    assert cpu_torch(["torch==2.13.0 ; sys_platform == 'linux'", "nvidia-nccl-cu12==2.1"]) == [
        "torch==2.13.0+cpu ; sys_platform == 'linux'"
    ]


def test_base_images_are_pinned_to_exact_versions() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))
    for name in ("PYTHON_IMAGE", "UV_IMAGE"):
        image = args[name]
        assert re.search(r":\d+\.\d+\.\d+", image) or "@sha256:" in image, f"{name}={image}"
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    python = re.search(r"python:(\d+\.\d+)", args["PYTHON_IMAGE"])
    assert python and project["requires-python"].startswith(f">={python[1]}")


def test_both_images_run_as_a_non_root_user_with_the_project_files() -> None:
    text = DOCKERFILE.read_text()
    blocks = re.split(r"^FROM ", text, flags=re.M)
    finals = {b.split()[2]: b for b in blocks[1:] if b.split()[2] in ("serving", "trainer")}
    assert set(finals) == {"serving", "trainer"}
    for name, block in finals.items():
        assert re.search(r"^USER ulasan$", block, flags=re.M), f"{name} runs as root"
    assert blocks[-1].split()[2] == "serving", "the default target is the serving image"
    for folder in ("configs", "data", "models"):
        assert f"COPY {folder} /app/{folder}" in text
    for setting in (
        "ULASAN_CONFIGS_DIR=/app/configs",
        "ULASAN_DATA_DIR=/app/data",
        "ULASAN_MODELS_DIR=/app/models",
    ):
        assert setting in text
    assert 'if /opt/venv/bin/python -c "import torch"' in text  # the serving build checks


def dockerignore_lets_in(path: str) -> bool:
    """Whether ``path`` reaches the build context (last matching pattern wins)."""
    included = True
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/").replace("**/", "")
        parts = Path(path).parts
        hit = any(
            Path(*parts[i : j + 1]).match(pattern)
            for i in range(len(parts))
            for j in range(i, len(parts))
            if i == 0 or "/" not in pattern
        )
        if hit:
            included = negate
    return included


def test_dockerignore_keeps_state_and_secrets_out_and_lets_the_sources_in() -> None:
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), flags=re.M)
    for sources in copied:
        for source in sources.split():
            assert (PROJECT_ROOT / source).exists(), source
            assert dockerignore_lets_in(source), f".dockerignore keeps out {source}"
    assert dockerignore_lets_in("trainer/registry.py")
    for kept_out in (
        ".env",
        ".venv/bin/python",
        ".git/HEAD",
        ".ulasan/kafka/x",
        "artifacts/a",
        "logs/x.log",
        "ulasan/__pycache__/cli.cpython-311.pyc",
    ):
        assert not dockerignore_lets_in(kept_out), kept_out


def test_license_matches_pyproject() -> None:
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == {"text": "Apache-2.0"}
    text = (PROJECT_ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
