"""Weight interpolation between the champion and its retrain (WiSE-FT, Wortsman et al. 2022),
measured offline on a finished ``ulasan scenario domain-shift`` run.

theta(alpha) = (1 - alpha) * champion + alpha * retrained (``trainer.interpolate.mix_state``, what
the retrain's ``interpolate`` stage does; run the scenario with
``--retrain-overrides '{"interpolate": false}'`` so that the retrain run keeps its fine-tuned
weights). alpha = 1 is the retrained model as promoted, alpha = 0 the
champion. Each alpha is scored (PyTorch, fp32) on SmSA valid-dedup (the gate's base guard),
SmSA test (what issue 18 bounds: a drop of at most 1 point) and the scenario's PRDECT-ID
hold-out (the new domain: a gain of at least 10 points).

    nice -n 19 .venv/bin/python scripts/experiments/wise_ft.py \\
        --champion-run RUN --retrain-run RUN [--reviews N] [--alphas 0,0.25,0.5,0.75,1]

Both run ids are in the scenario's JSON (``champion_run``, ``retrain_run.mlflow_run_id``).
Nothing here changes the product.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from trainer.data import load_prdect, load_smsa
from trainer.interpolate import macro_f1_of, mix_state
from trainer.modeling import load_classifier
from trainer.pipeline.data import fixed_eval_set
from trainer.retrain.split import holdout
from ulasan.core.registry import client
from ulasan.core.settings import Settings


def checkpoint_of(run_id: str, dest: Path) -> Path:
    """The run's ``checkpoint/`` artifact, downloaded."""
    return Path(client(Settings()).download_artifacts(run_id, "checkpoint", str(dest)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--champion-run", required=True)
    parser.add_argument("--retrain-run", required=True)
    parser.add_argument("--reviews", type=int, default=None, help="the scenario's --reviews")
    parser.add_argument("--holdout-share", type=float, default=0.2)
    parser.add_argument("--alphas", default="0,0.25,0.5,0.6,0.7,0.8,0.9,1")
    args = parser.parse_args()

    rows = [e for e in load_prdect() if e.label is not None and e.text.strip()]
    rows = rows[: args.reviews] if args.reviews else rows
    sets = {
        "smsa-valid-dedup": [(e.text, str(e.label)) for e in fixed_eval_set()],
        "smsa-test": [(e.text, str(e.label)) for e in load_smsa("test")],
        "prdect-holdout": [
            (e.text, str(e.label)) for e in rows if holdout(str(e.id), args.holdout_share)
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        _, champion = load_classifier(checkpoint_of(args.champion_run, Path(tmp) / "c"))
        tokenizer, retrained = load_classifier(checkpoint_of(args.retrain_run, Path(tmp) / "r"))
    tuned_state = {k: v.clone() for k, v in retrained.state_dict().items()}
    results = []
    for alpha in [float(a) for a in args.alphas.split(",")]:
        retrained.load_state_dict(mix_state(champion.state_dict(), tuned_state, alpha))
        row: dict[str, Any] = {"alpha": alpha}
        for name, pairs in sets.items():
            row[name] = round(macro_f1_of(retrained, tokenizer, pairs), 4)
        results.append(row)
        print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {
                "champion_run": args.champion_run,
                "retrain_run": args.retrain_run,
                "n": {k: len(v) for k, v in sets.items()},
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
