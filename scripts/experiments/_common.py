"""Shared pieces of the issue-18 experiments: the evaluation sets, the shipped model's logits,
TF-IDF features like ``trainer.report``'s baseline, macro-F1 and a paired bootstrap.
The model's logits are cached under ``artifacts/experiments-cache/``.

Run the experiments from the repository root with the project venv, e.g.
``nice -n 19 .venv/bin/python scripts/experiments/stack.py``. Nothing here changes the
product: it reads ``models/ulasan-mini/serving`` and ``data/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.events import LABELS
from trainer.data import Example, load_smsa
from trainer.metrics import classification_report
from trainer.report import SVM_C_GRID, evaluation_sets
from ulasan.core.inference.runtime import OnnxPredictor
from ulasan.core.inference.runtime import softmax as softmax  # the experiments' softmax
from ulasan.core.settings import PROJECT_ROOT
from ulasan.core.text import clean

SERVING = PROJECT_ROOT / "models" / "ulasan-mini" / "serving"
CACHE = PROJECT_ROOT / "artifacts" / "experiments-cache"  # git-ignored
VALID = "smsa-valid-dedup"
LR_C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


def load_sets() -> tuple[list[Example], dict[str, list[Example]]]:
    """SmSA train and the report's four evaluation sets (valid-dedup first)."""
    return load_smsa("train"), evaluation_sets()


def labels_of(rows: Sequence[Example]) -> np.ndarray:
    """Class indices in ``LABELS`` order."""
    return np.array([LABELS.index(str(e.label)) for e in rows])


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    names = list(LABELS)
    return float(classification_report([names[i] for i in y], [names[i] for i in pred])["macro_f1"])


def model_logits(rows: Sequence[Example], serving: Path = SERVING) -> np.ndarray:
    """The serving folder's raw logits (int8 ONNX, the runtime's own cleaning), cached on disk
    by the folder's model hash and the texts."""
    texts = [e.text for e in rows]
    digest = hashlib.sha256((serving / "model.onnx").read_bytes())
    digest.update("\x00".join(texts).encode())
    path = CACHE / f"logits-{digest.hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    predictor = OnnxPredictor.from_folder(serving, intra_op_threads=1)
    out = predictor.logits(texts).astype(np.float64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def tfidf_features(
    train_texts: Sequence[str], norm: Callable[[str], str] = lambda t: t
) -> Callable[[Sequence[str]], Any]:
    """The report baseline's features (word 1-2 + char_wb 2-5, min_df 2, sublinear tf), fit
    once on ``train_texts``; returns text -> sparse matrix. Texts are ``clean``-ed, then
    ``norm``-ed."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    union = make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
    )
    union.fit([norm(clean(t)) for t in train_texts])

    def transform(texts: Sequence[str]) -> Any:
        return union.transform([norm(clean(t)) for t in texts])

    return transform


def _best_on_valid(
    make: Callable[[float], Any],
    grid: Sequence[float],
    data: tuple[Any, np.ndarray, Any, np.ndarray],
) -> Any:
    """The model ``make(c)`` fitted on train with the ``c`` of ``grid`` that scores the best
    valid macro-F1 (the first such c on a tie)."""
    x_train, y_train, x_valid, y_valid = data
    best: tuple[float, Any] | None = None
    for c in grid:
        model = make(c).fit(x_train, y_train)
        f1 = macro_f1(y_valid, model.predict(x_valid))
        if best is None or f1 > best[0]:
            best = (f1, model)
    assert best is not None
    return best[1]


def fit_svm(x_train: Any, y_train: np.ndarray, x_valid: Any, y_valid: np.ndarray) -> Any:
    """Class-balanced LinearSVC, C chosen on valid macro-F1 (the report baseline's grid)."""
    from sklearn.svm import LinearSVC

    def make(c: float) -> Any:
        return LinearSVC(C=c, class_weight="balanced", random_state=0)

    return _best_on_valid(make, SVM_C_GRID, (x_train, y_train, x_valid, y_valid))


def fit_lr(x_train: Any, y_train: np.ndarray, x_valid: Any, y_valid: np.ndarray) -> Any:
    """Class-balanced multinomial LogisticRegression, C chosen on valid macro-F1."""
    from sklearn.linear_model import LogisticRegression

    def make(c: float) -> Any:
        return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)

    return _best_on_valid(make, LR_C_GRID, (x_train, y_train, x_valid, y_valid))


def paired_bootstrap(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, n: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Macro-F1(a) - macro-F1(b) on ``n`` resamples of the set: mean and 95 % interval."""
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    deltas = np.empty(n)
    for i in range(n):
        idx = rng.integers(0, len(y), len(y))
        deltas[i] = _f1_fast(y[idx], pred_a[idx], k) - _f1_fast(y[idx], pred_b[idx], k)
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return {"delta": float(deltas.mean()), "ci95_low": float(lo), "ci95_high": float(hi)}


def _f1_fast(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    f1s = []
    for c in range(k):
        tp = np.sum((y == c) & (pred == c))
        denom = np.sum(y == c) + np.sum(pred == c)
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def markdown(rows: dict[str, dict[str, float]], sets: Sequence[str]) -> str:
    """``rows``: name -> set -> macro-F1, as a markdown table."""
    lines = ["| model | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for name, scores in rows.items():
        cells = [f"{scores[s]:.3f}" if s in scores else "" for s in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
