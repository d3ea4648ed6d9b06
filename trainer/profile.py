"""The training-data profile drift detection compares live traffic against (``profile.json``).

Per numeric text feature: a quantile summary and a bounded uniform random sample (for
two-sample Kolmogorov-Smirnov tests); per boolean feature: counts; the label distribution; the
served model's confidence on the training texts (sample + histogram); and the tokenizer's
unknown-token rate. Plain JSON, stored in the serving folder and logged to MLflow.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer

from schemas.events import LABELS, TextFeatures
from trainer.errors import ProfileError
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.manifest import PROFILE_FILE, TOKENIZER_FILE, ModelManifest
from ulasan.core.text import FEATURE_VERSION, clean, features

if TYPE_CHECKING:
    from ulasan.core.inference import Predictor
    from ulasan.core.text import Lexicon

PROFILE_VERSION = 1
SAMPLE_SIZE = 2000
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
CONFIDENCE_BINS = 10
BOOLEAN_FEATURES = ("has_url", "has_emoji")
NUMERIC_FEATURES = tuple(f for f in TextFeatures.model_fields if f not in BOOLEAN_FEATURES)


def numeric_summary(
    values: Sequence[float], *, sample_size: int = SAMPLE_SIZE, rng: random.Random
) -> dict[str, Any]:
    """``n``, ``mean``, ``std``, ``min``, ``max``, ``quantiles`` (q -> value) and ``sample`` (at
    most ``sample_size`` values drawn uniformly without replacement, original order kept)."""
    if not values:
        raise ProfileError("cannot summarise no values")
    arr = np.asarray(values, dtype=np.float64)
    idx = sorted(rng.sample(range(len(arr)), min(sample_size, len(arr))))
    return {
        "n": len(arr),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "quantiles": {
            f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(arr, QUANTILES), strict=True)
        },
        "sample": [float(arr[i]) for i in idx],
    }


def unknown_token_rate(texts: Sequence[str], tokenizer_file: Path, *, lowercase: bool) -> float:
    """Share of (non-special) tokens of the cleaned texts that the tokenizer maps to its unknown
    token; 0.0 for a tokenizer without one (byte-level BPE never produces unknowns)."""
    spec = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    unk = (spec.get("model") or {}).get("unk_token")
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_truncation()
    tok.no_padding()
    unk_id = tok.token_to_id(unk) if unk else None
    if unk_id is None:
        return 0.0
    total = unknown = 0
    for enc in tok.encode_batch([clean(t, lowercase=lowercase) for t in texts]):
        for token_id, special in zip(enc.ids, enc.special_tokens_mask, strict=True):
            if not special:
                total += 1
                unknown += token_id == unk_id
    return unknown / total if total else 0.0


def build_profile(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    folder: str | Path,
    predictor: Predictor | None = None,
    lexicon: Lexicon | None = None,
    sample_size: int = SAMPLE_SIZE,
    max_predict: int = 5000,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile the training texts and labels against the serving folder ``folder``.

    ``predictor`` defaults to the folder's :class:`OnnxPredictor`; confidence is measured on at
    most ``max_predict`` randomly chosen texts. Raises :class:`ProfileError` on empty or
    mismatched input or labels outside ``schemas.events.LABELS``.
    """
    _check_inputs(texts, labels)
    folder = Path(folder)
    manifest = ModelManifest.read(folder)
    if predictor is None:
        predictor = OnnxPredictor.from_folder(folder)
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    numeric, categorical = _feature_summaries(texts, lexicon, sample_size, rng)
    label_counts = Counter(labels)

    chosen = sorted(rng.sample(range(len(texts)), min(max_predict, len(texts))))
    preds = predictor.predict([texts[i] for i in chosen])
    confidences = [p.confidence for p in preds]
    hist, edges = np.histogram(confidences, bins=CONFIDENCE_BINS, range=(0.0, 1.0))
    predicted = Counter(p.label for p in preds)

    return {
        "profile_version": PROFILE_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "model_name": manifest.model_name,
        "feature_version": FEATURE_VERSION,
        "lexicon_version": manifest.lexicon_version,
        "n_texts": len(texts),
        "sample_size": sample_size,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "labels": {
            "counts": {lab: label_counts.get(lab, 0) for lab in LABELS},
            "proportions": {lab: label_counts.get(lab, 0) / len(labels) for lab in LABELS},
        },
        "predicted_labels": {lab: predicted.get(lab, 0) for lab in LABELS},
        "confidence": {
            **numeric_summary(confidences, sample_size=sample_size, rng=rng),
            "histogram": {"edges": [float(e) for e in edges], "counts": hist.tolist()},
        },
        "unknown_token_rate": unknown_token_rate(
            texts, folder / TOKENIZER_FILE, lowercase=manifest.lowercase
        ),
    }


def _check_inputs(texts: Sequence[str], labels: Sequence[str]) -> None:
    if len(texts) != len(labels):
        raise ProfileError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ProfileError("cannot profile an empty training set")
    unknown_labels = sorted({lab for lab in labels if lab not in LABELS})
    if unknown_labels:
        raise ProfileError(f"labels {unknown_labels} are not among {list(LABELS)}")


def _feature_summaries(
    texts: Sequence[str], lexicon: Lexicon | None, sample_size: int, rng: random.Random
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The numeric features' summaries and the boolean features' counts over ``texts``."""
    feats = [features(t, lexicon=lexicon) for t in texts]
    numeric = {
        name: numeric_summary(
            [float(getattr(f, name)) for f in feats], sample_size=sample_size, rng=rng
        )
        for name in NUMERIC_FEATURES
    }
    categorical = {
        name: {
            "true": sum(bool(getattr(f, name)) for f in feats),
            "false": sum(not getattr(f, name) for f in feats),
        }
        for name in BOOLEAN_FEATURES
    }
    return numeric, categorical


def write_profile(profile: dict[str, Any], folder: str | Path) -> Path:
    """Write ``profile.json`` into the serving folder; returns its path."""
    path = Path(folder) / PROFILE_FILE
    path.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    return path


def read_profile(path: str | Path) -> dict[str, Any]:
    """Read a ``profile.json`` (a file, or the serving folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / PROFILE_FILE
    if not path.is_file():
        raise ProfileError(f"{path} does not exist")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("profile_version") != PROFILE_VERSION:
        raise ProfileError(f"{path}: profile_version {data.get('profile_version')} is not 1")
    return data
