"""What a training run records about its checkpoint: the serving model name and
``ulasan_checkpoint.json``, which a warm-started retrain reads back."""

from __future__ import annotations

from pathlib import Path

from schemas.events import LABELS
from trainer.config import TrainConfig
from trainer.pipeline.tracking import write_json
from trainer.registry import read_checkpoint_meta
from ulasan.core.registry import CHECKPOINT_META_FILE


def serving_model_name(config: TrainConfig) -> str:
    """The model name a run's serving folder carries: ``ulasan-mini``, a hub id's last part,
    or, for a local checkpoint folder (a warm-started retrain), the name recorded in its
    ``ulasan_checkpoint.json`` (so a continued ulasan-mini stays ``ulasan-mini``)."""
    if config.is_mini:
        return config.model
    folder = Path(config.model)
    if folder.is_dir():
        recorded = read_checkpoint_meta(folder).get("model_name")
        if isinstance(recorded, str) and recorded:
            return recorded
        return folder.name
    return config.model.split("/")[-1]


def write_checkpoint_meta(
    checkpoint_dir: Path,
    *,
    model_name: str,
    max_length: int,
    feature_version: str,
    lexicon_version: str,
    warm_start_from: str | None = None,
) -> Path:
    """``ulasan_checkpoint.json`` beside the weights: what a retrain that continues from this
    checkpoint must keep consistent (labels in head order, tokenizer length, feature and
    lexicon versions of the serving folder exported from it)."""
    return write_json(
        checkpoint_dir / CHECKPOINT_META_FILE,
        {
            "model_name": model_name,
            "labels": list(LABELS),
            "max_length": max_length,
            "feature_version": feature_version,
            "lexicon_version": lexicon_version,
            "warm_start_from": warm_start_from,
        },
    )
