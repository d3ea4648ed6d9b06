"""Every fine-tuning restart of a finished ``ulasan train`` run (``restarts`` > 1), scored on
the report's four evaluation sets (SmSA valid-dedup chose among them; the others are reported
only, never used to choose), beside what the run kept, the uniform soup of all restarts
(weights averaged) and their output ensemble (class probabilities averaged: three encoders'
cost at serving time).

    nice -n 19 .venv/bin/python scripts/experiments/restarts.py artifacts/train/RUN [RUN ...] \
        [--out F]

PyTorch fp32 checkpoints (the run's own ``reports/`` hold the int8 serving folder's scores).
Nothing here changes the product: it reads the run folders and ``data/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from _common import labels_of

from schemas.events import LABELS
from trainer.metrics import macro_f1
from trainer.modeling import load_classifier
from trainer.report import evaluation_sets
from trainer.restarts import RESTARTS_FILE
from trainer.train import average_state, predict_proba

Probs = dict[str, np.ndarray]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with restarts/")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = parser.parse_args()
    sets = {
        name: ([e.text for e in rows], labels_of(rows)) for name, rows in evaluation_sets().items()
    }
    results = [_run(run, sets) for run in args.runs]
    text = json.dumps(results if len(results) > 1 else results[0], indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


def _run(run: Path, sets: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, Any]:
    record = json.loads((run / RESTARTS_FILE).read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = []
    states, probs = [], []
    tokenizer = model = None
    for restart in record["restarts"]:
        tokenizer, model = load_classifier(run / "restarts" / restart["folder"] / "checkpoint")
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        probs.append(_probs(model, tokenizer, sets))
        rows.append({"model": f"restart seed {restart['seed']}", **_scores(probs[-1], sets)})
        print(json.dumps(rows[-1]), flush=True)
    assert model is not None
    model.load_state_dict(average_state(states))
    rows.append(
        {"model": "uniform soup (all restarts)", **_scores(_probs(model, tokenizer, sets), sets)}
    )
    mean = {name: np.mean([p[name] for p in probs], axis=0) for name in sets}
    rows.append({"model": "output ensemble (mean probabilities)", **_scores(mean, sets)})
    tokenizer, kept = load_classifier(run / "checkpoint")
    kept_name = "kept: " + " + ".join(str(s) for s in record["soup_seeds"])
    rows.append({"model": kept_name, **_scores(_probs(kept, tokenizer, sets), sets)})
    for row in rows[-3:]:
        print(json.dumps(row), flush=True)
    return {"run": run.name, "restarts": record, "pytorch_macro_f1": rows}


def _probs(model: Any, tokenizer: Any, sets: dict[str, tuple[list[str], np.ndarray]]) -> Probs:
    return {name: predict_proba(model, tokenizer, texts) for name, (texts, _) in sets.items()}


def _scores(probs: Probs, sets: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, float]:
    return {
        name: round(macro_f1(truth, probs[name].argmax(axis=1), len(LABELS)), 4)
        for name, (_, truth) in sets.items()
    }


if __name__ == "__main__":
    main()
