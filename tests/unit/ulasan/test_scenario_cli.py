"""ulasan scenario domain-shift: its options are checked before anything starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from trainer.data import load_prdect
from trainer.pipeline import unlabelled_corpus
from ulasan.cli import app
from ulasan.core.settings import PROJECT_ROOT
from ulasan.scenario import ScenarioConfig, champion_config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retrain-overrides", "[1"], "not valid JSON"),
        (["--train-overrides", "[1, 2]"], "must be a JSON object, got list"),
        (["--retrain-settings", '{"labeled_weight": 3}'], "not RetrainConfig fields"),
        (["--base-tolerance", "1.5"], "Invalid value for '--base-tolerance'"),
    ],
)
def test_bad_json_options_are_usage_errors(args: list[str], message: str) -> None:
    out = CliRunner().invoke(app, ["scenario", "domain-shift", *args])
    assert out.exit_code == 2
    # rich wraps the error box: compare without the line breaks and borders
    flat = " ".join(part.strip(" │╭╮╰╯─") for part in out.output.splitlines())
    assert message in " ".join(flat.split())


def test_the_champion_has_not_seen_the_product_domain() -> None:

    assert champion_config(ScenarioConfig()).pretrain_corpus == "no-prdect"
    assert champion_config(ScenarioConfig()).data == "smsa"
    seen = ScenarioConfig(champion_unseen_domain=False)
    assert champion_config(seen).pretrain_corpus == "train"
    tiny = ScenarioConfig(train_config=PROJECT_ROOT / "configs" / "tiny.yaml")
    assert champion_config(tiny).pretrain_corpus == "none"  # no corpus stays no corpus
    prdect = {e.text for e in load_prdect()}
    without = unlabelled_corpus(prdect=False)
    # only one-word reviews ("kecewa") occur in the other corpora too
    assert all(len(t.split()) == 1 for t in prdect & set(without))
    assert len(unlabelled_corpus()) == len(without) + len(load_prdect())
