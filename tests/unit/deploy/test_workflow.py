"""The GitHub Actions workflow is valid and runs what the project says CI runs.

``check-jsonschema --builtin-schema vendor.github-workflows`` validates it against the workflow
schema (vendored in check-jsonschema, no network); the rest checks that it calls the real entry
points (`.ci/run`, make targets that exist) and builds the images only on tags.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ulasan.core.settings import PROJECT_ROOT

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
CI = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"
MAKEFILE = PROJECT_ROOT / "Makefile"


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_every_workflow_is_valid_against_the_github_schema() -> None:
    assert CI in WORKFLOWS
    done = check_jsonschema(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a job without ``runs-on`` and a misspelt key are refused."""
    broken = load(CI)
    job = broken["jobs"]["lint"]
    del job["runs-on"]
    job["timeout-minute"] = job.pop("timeout-minutes")
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    done = check_jsonschema(path)
    assert done.returncode != 0
    assert "runs-on" in done.stdout + done.stderr


def test_ci_runs_lint_the_test_suite_and_the_deploy_checks() -> None:
    runs = " \n".join(s.get("run", "") for s in steps(load(CI)))
    assert ".ci/run" in runs  # the project's one CI entry point (make test)
    for target in ("lint", "helm", "deploy-check"):
        assert re.search(rf"\bmake {target}\b", runs), f"CI does not run make {target}"


def test_every_make_target_the_workflow_calls_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(), re.M))
    runs = " \n".join(s.get("run", "") for s in steps(load(CI)))
    called = set(re.findall(r"\bmake ([a-z][a-z-]*)", runs))
    assert called and called <= targets, f"unknown make targets: {called - targets}"


def test_every_file_the_workflow_names_exists() -> None:
    text = CI.read_text()
    named = set(re.findall(r"(?<![\w/.-])((?:\.ci|deploy|ulasan)/[\w./-]+\.?\w*)", text))
    assert named
    for rel in named:
        assert (PROJECT_ROOT / rel).exists(), f"the workflow names {rel}, which does not exist"


def test_images_are_built_and_pushed_only_for_tags_after_every_check() -> None:
    workflow = load(CI)
    images = workflow["jobs"]["images"]
    assert images["if"].startswith("startsWith(github.ref, 'refs/tags/")
    assert set(images["needs"]) == set(workflow["jobs"]) - {"images"}
    builds = [s for s in images["steps"] if str(s.get("uses", "")).startswith("docker/build-push")]
    (build,) = builds
    assert (PROJECT_ROOT / build["with"]["file"]).is_file()
    matrix = images["strategy"]["matrix"]["include"]
    # the serving image (no torch) and the trainer image: stages of the one Dockerfile
    assert {m["target"] for m in matrix} == {"serving", "trainer"}
    assert build["with"]["target"] == "${{ matrix.target }}"
    assert {m["image"] for m in matrix} == {"ulasan", "ulasan-trainer"}


@pytest.mark.parametrize("key", ["push", "pull_request"])
def test_ci_runs_on_pushes_and_pull_requests(key: str) -> None:
    # PyYAML reads the bare key `on` as True (YAML 1.1)
    triggers = load(CI).get("on") or load(CI)[True]
    assert key in triggers
