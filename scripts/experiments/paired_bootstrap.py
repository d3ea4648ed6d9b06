"""Paired bootstrap of a candidate's macro-F1 change against the champion on SmSA
valid-dedup and SmSA test: the change, its standard error and 95 % interval (resampling the
same rows for both models), so that a guard's tolerance can be read against the set's noise.

    .venv/bin/python scripts/experiments/paired_bootstrap.py \\
        --champion artifacts/train/RUN-ulasan-mini/serving --candidate SERVING [--resamples 1000]

Both are int8 serving folders, scored untagged (the base domain). ``--champion svm`` compares
the candidate with ``ulasan report``'s TF-IDF + LinearSVC baseline (SmSA train, C chosen on
SmSA valid-dedup) instead, on all four of the report's sets: issue 18's margins with their
noise. Nothing here changes the product.

    .venv/bin/python scripts/experiments/paired_bootstrap.py --champion svm \\
        --candidate models/ulasan-mini/serving
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from schemas.events import LABELS
from trainer.data import load_smsa
from trainer.metrics import macro_f1
from trainer.pipeline.data import fixed_eval_set
from trainer.report import evaluation_sets, tfidf_svm_baseline
from ulasan.core.inference import OnnxPredictor
from ulasan.core.text import clean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--champion", required=True, help="a serving folder, or svm")
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    candidate = OnnxPredictor.from_folder(args.candidate)
    if args.champion == "svm":
        sets = {
            name: [(e.text, str(e.label)) for e in rows] for name, rows in evaluation_sets().items()
        }
        svm, _ = tfidf_svm_baseline(load_smsa("train"), fixed_eval_set())

        def champion(texts: list[str]) -> list[str]:
            return [str(y) for y in svm.predict([clean(t) for t in texts])]
    else:
        sets = {
            "smsa-valid-dedup": [(e.text, str(e.label)) for e in fixed_eval_set()],
            "smsa-test": [(e.text, str(e.label)) for e in load_smsa("test")],
        }
        folder = OnnxPredictor.from_folder(Path(args.champion))

        def champion(texts: list[str]) -> list[str]:
            return [p.label for p in folder.predict(texts)]

    rng = np.random.default_rng(args.seed)
    out = {}
    for name, rows in sets.items():
        texts = [t for t, _ in rows]
        truth = np.array([LABELS.index(y) for _, y in rows])
        a = np.array([LABELS.index(y) for y in champion(texts)])
        b = np.array([LABELS.index(p.label) for p in candidate.predict(texts)])
        diffs = []
        for _ in range(args.resamples):
            i = rng.integers(0, len(truth), len(truth))
            diffs.append(macro_f1(truth[i], b[i], 3) - macro_f1(truth[i], a[i], 3))
        low, high = np.percentile(diffs, [2.5, 97.5])
        out[name] = {
            "n": len(rows),
            "change": round(float(macro_f1(truth, b, 3) - macro_f1(truth, a, 3)), 4),
            "se": round(float(np.std(diffs)), 4),
            "interval_95": [round(float(low), 4), round(float(high), 4)],
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
