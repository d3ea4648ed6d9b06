"""ulasan scenario domain-shift: its JSON options are checked before anything starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ulasan.cli import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retrain-overrides", "[1"], "not valid JSON"),
        (["--train-overrides", "[1, 2]"], "must be a JSON object, got list"),
        (["--retrain-settings", '{"labeled_weight": 3}'], "not RetrainConfig fields"),
    ],
)
def test_bad_json_options_are_usage_errors(args: list[str], message: str) -> None:
    out = CliRunner().invoke(app, ["scenario", "domain-shift", *args])
    assert out.exit_code == 2
    # rich wraps the error box: compare without the line breaks and borders
    flat = " ".join(part.strip(" │╭╮╰╯─") for part in out.output.splitlines())
    assert message in " ".join(flat.split())
