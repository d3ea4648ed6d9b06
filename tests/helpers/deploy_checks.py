"""Checks the deployment tests (compose, Helm) share: the environment names the settings
classes read, and ``ulasan <command> --help`` of the commands a deployment runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel in ``annotation`` (also inside ``X | None``), else None."""
    candidates = [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        candidates = list(typing.get_args(annotation))
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None


def settings_env_names(model: type[BaseModel], prefix: str = "ULASAN_") -> set[str]:
    """Every environment name pydantic-settings reads for ``model``: each field, nested models
    with ``__`` (a nested model also reads a JSON value under its own name)."""
    names = set()
    for name, field in model.model_fields.items():
        sub = nested_model(field.annotation)
        if sub is not None and not issubclass(sub, BaseSettings):
            names |= settings_env_names(sub, f"{prefix}{name.upper()}__")
        names.add(f"{prefix}{name.upper()}")
    return names


#: runs the real ``ulasan`` app with ``--help`` for each command, in one fresh interpreter
HELP_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from ulasan.cli import app
runner = CliRunner()
out = {}
for words in json.loads(sys.argv[1]):
    got = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    out[" ".join(words)] = [got.exit_code, got.output]
print(json.dumps(out))
"""


def help_texts(commands: Iterable[Sequence[str]]) -> dict[str, tuple[int, str]]:
    """``ulasan <words> --help`` (exit code, output) of each command, keyed by its words joined
    with spaces, from one child process (importing the command line is the slow part)."""
    done = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, json.dumps([list(w) for w in commands])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TERM": "dumb"},
    )
    assert done.returncode == 0, done.stderr
    return {k: (v[0], v[1]) for k, v in json.loads(done.stdout).items()}


def assert_help_names_options(what: str, answer: tuple[int, str], options: Iterable[str]) -> None:
    """``answer`` (a :func:`help_texts` value) is a command's help that names every option of
    ``options`` as a whole flag (``--port`` does not match ``--port-file``)."""
    code, text = answer
    assert code == 0, f"{what}: {text}"
    assert "Usage:" in text, f"{what}: {text}"
    for option in options:
        assert re.search(rf"{re.escape(option)}(?![\w-])", text), f"{what} has no {option}"
