"""Issue 18, diagnostic: how much of the SmSA valid/test gap is label shift?

SmSA train and valid are 31 % negative / 10 % neutral / 58 % positive; SmSA test is 41 / 18 /
42. This scores the shipped model after re-weighting its probabilities by a target prior
(p'(y|x) ~ p(y|x) * prior_target(y) / prior_train(y)):

- ``oracle prior``: the set's true label shares (reads the labels: a diagnostic, never a result);
- ``EM prior``: the prior estimated from the set's unlabelled texts alone by EM (Saerens,
  Latinne & Decaestecker 2002) -- transductive: legitimate for a batch of texts, not for a
  single request. The model's probabilities are not calibrated in their prior (label smoothing
  and class weights: its mean neutral probability on valid is 0.22 against 0.10 neutral
  labels), so the source prior is the model's mean probability on smsa-valid-dedup (the
  training distribution), not the label shares; from the label shares EM runs away to
  "neutral".

    nice -n 19 .venv/bin/python scripts/experiments/prior_shift.py
"""

from __future__ import annotations

import json

import numpy as np
from _common import VALID, labels_of, load_sets, macro_f1, markdown, model_logits, softmax

from schemas.events import LABELS


def reweight(p: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    q = p * (target / source)
    return q / q.sum(axis=1, keepdims=True)


def em_prior(p: np.ndarray, source: np.ndarray, *, steps: int = 100) -> np.ndarray:
    """Saerens et al. 2002: alternate posteriors under the current prior and the prior as the
    mean posterior, from the training prior."""
    prior = source.copy()
    for _ in range(steps):
        prior = reweight(p, source, prior).mean(axis=0)
    return prior


def main() -> int:
    train, sets = load_sets()
    y_train = labels_of(train)
    source = np.bincount(y_train, minlength=len(LABELS)) / len(y_train)
    table: dict[str, dict[str, float]] = {
        "model": {},
        "model, oracle prior": {},
        "model, EM prior (unlabelled set)": {},
    }
    priors = {}
    implied = softmax(model_logits(sets[VALID])).mean(axis=0)
    for name, rows in sets.items():
        y = labels_of(rows)
        p = softmax(model_logits(rows))
        oracle = np.bincount(y, minlength=len(LABELS)) / len(y)
        em = em_prior(p, implied)
        table["model"][name] = macro_f1(y, p.argmax(1))
        table["model, oracle prior"][name] = macro_f1(y, reweight(p, source, oracle).argmax(1))
        table["model, EM prior (unlabelled set)"][name] = macro_f1(
            y, reweight(p, implied, em).argmax(1)
        )
        priors[name] = {"true": oracle.round(3).tolist(), "em": em.round(3).tolist()}
    print(markdown(table, list(sets)))
    print(
        json.dumps(
            {
                "train_prior": source.round(3).tolist(),
                "model_implied_prior": implied.round(3).tolist(),
                "priors": priors,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
