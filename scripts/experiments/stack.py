"""Issue 18, lever 1: stack the shipped ulasan-mini with the char-n-gram linear model.

Scores on the report's four sets (macro-F1): the model alone, TF-IDF + LinearSVC and
TF-IDF + LogisticRegression alone (SmSA train, C chosen on smsa-valid-dedup), a weighted
average of class probabilities (model softmax and softmax(linear score / T); w and T chosen on
smsa-valid-dedup only), and a logistic-regression stacker over [model logits, SVM margins]
fitted on smsa-valid-dedup (5-fold cross-validated score on valid; refit on all of valid for
the other sets). Test sets are never used to choose.

    nice -n 19 .venv/bin/python scripts/experiments/stack.py --out /tmp/stack.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    VALID,
    fit_lr,
    fit_svm,
    labels_of,
    load_sets,
    macro_f1,
    markdown,
    model_logits,
    paired_bootstrap,
    softmax,
    tfidf_features,
)

from schemas.events import LABELS

WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.05), 2)
TEMPERATURES = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


def mix(p_model: np.ndarray, score: np.ndarray, w: float, t: float) -> np.ndarray:
    """(1 - w) * model probabilities + w * softmax(linear score / t)."""
    return (1 - w) * p_model + w * softmax(score / t)


def choose_mix(p_model: np.ndarray, score: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The (w, T) with the best macro-F1 on the given (validation) rows; ties -> smaller w."""
    best: dict[str, Any] = {"f1": -1.0}
    for t in TEMPERATURES:
        for w in WEIGHTS:
            f1 = macro_f1(y, mix(p_model, score, w, t).argmax(1))
            if f1 > best["f1"] + 1e-12:
                best = {"f1": f1, "w": float(w), "T": t}
    return best


def stacker(feats: dict[str, np.ndarray], y_valid: np.ndarray) -> dict[str, np.ndarray]:
    """LR over [model logits, SVM margins] fitted on valid: CV predictions on valid, a refit
    on all of valid for the other sets."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make() -> Any:
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        )

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    preds = {VALID: cross_val_predict(make(), feats[VALID], y_valid, cv=folds)}
    model = make().fit(feats[VALID], y_valid)
    preds.update({name: model.predict(x) for name, x in feats.items() if name != VALID})
    return preds


def run() -> dict[str, Any]:
    train, sets = load_sets()
    names = list(sets)
    y = {n: labels_of(rows) for n, rows in sets.items()}
    logits = {n: model_logits(rows) for n, rows in sets.items()}
    p_model = {n: softmax(v) for n, v in logits.items()}
    transform = tfidf_features([e.text for e in train])
    x_train, y_train = transform([e.text for e in train]), labels_of(train)
    x = {n: transform([e.text for e in rows]) for n, rows in sets.items()}
    svm = fit_svm(x_train, y_train, x[VALID], y[VALID])
    lr = fit_lr(x_train, y_train, x[VALID], y[VALID])
    linear = {
        "svm": {n: svm.decision_function(v) for n, v in x.items()},
        "lr": {n: lr.predict_log_proba(v) for n, v in x.items()},
    }
    preds: dict[str, dict[str, np.ndarray]] = {
        "ulasan-mini (int8, shipped)": {n: v.argmax(1) for n, v in logits.items()},
        f"tfidf + LinearSVC (C={svm.C})": {n: v.argmax(1) for n, v in linear["svm"].items()},
        f"tfidf + LogReg (C={lr.C})": {n: v.argmax(1) for n, v in linear["lr"].items()},
    }
    chosen = {}
    for kind, scores in linear.items():
        c = choose_mix(p_model[VALID], scores[VALID], y[VALID])
        chosen[kind] = c
        label = f"mix model + {kind} (w={c['w']}, T={c['T']}; chosen on valid)"
        preds[label] = {n: mix(p_model[n], scores[n], c["w"], c["T"]).argmax(1) for n in names}
    feats = {n: np.hstack([logits[n], linear["svm"][n]]) for n in names}
    preds["LR stacker [logits, svm margins] fit on valid (valid = 5-fold CV)"] = stacker(
        feats, y[VALID]
    )
    table = {k: {n: macro_f1(y[n], p[n]) for n in names} for k, p in preds.items()}
    model_key, svm_key = list(preds)[0], list(preds)[1]
    mix_key = [k for k in preds if k.startswith("mix model + svm")][0]
    boot = {
        n: {
            "mix_svm_minus_model": paired_bootstrap(y[n], preds[mix_key][n], preds[model_key][n]),
            "mix_svm_minus_svm": paired_bootstrap(y[n], preds[mix_key][n], preds[svm_key][n]),
        }
        for n in names
        if n != VALID
    }
    curve = weight_curve(p_model, linear["svm"], y, chosen["svm"]["T"])
    # a ceiling, not a result: the best (w, T) if it were chosen on smsa-test itself
    ceiling = choose_mix(p_model["smsa-test"], linear["svm"]["smsa-test"], y["smsa-test"])
    per_class = {
        k: dict(zip(LABELS, per_class_f1(y["smsa-test"], preds[k]["smsa-test"]), strict=True))
        for k in (model_key, svm_key, mix_key)
    }
    return {
        "sets": {n: len(r) for n, r in sets.items()},
        "macro_f1": table,
        "chosen": chosen,
        "bootstrap": boot,
        "svm_weight_curve": curve,
        "smsa_test_ceiling_chosen_on_test": ceiling,
        "smsa_test_per_class_f1": per_class,
    }


def per_class_f1(y: np.ndarray, pred: np.ndarray) -> list[float]:
    out = []
    for c in range(len(LABELS)):
        tp = int(np.sum((y == c) & (pred == c)))
        denom = int(np.sum(y == c) + np.sum(pred == c))
        out.append(round(2 * tp / denom, 3) if denom else 0.0)
    return out


def weight_curve(
    p_model: dict[str, np.ndarray], svm: dict[str, np.ndarray], y: dict[str, np.ndarray], t: float
) -> dict[str, dict[str, float]]:
    """Macro-F1 of the SVM mix at the chosen T for every w (read, not used to choose)."""
    return {
        str(w): {n: macro_f1(y[n], mix(p_model[n], svm[n], w, t).argmax(1)) for n in y}
        for w in WEIGHTS
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run()
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result["macro_f1"], list(result["sets"])))
    keys = ("chosen", "bootstrap", "smsa_test_ceiling_chosen_on_test", "smsa_test_per_class_f1")
    print(json.dumps({k: result[k] for k in keys}, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
