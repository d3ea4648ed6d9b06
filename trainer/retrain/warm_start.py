"""A retrain's warm start: the champion's own checkpoint to continue from, or why not."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from schemas.events import LABELS
from trainer.errors import TrainerError
from trainer.pipeline.checkpoint import write_checkpoint_meta
from trainer.registry import ModelVersionInfo, download_checkpoint, read_checkpoint_meta
from ulasan.core.registry import TAG_FEATURE_VERSION, TAG_LEXICON_VERSION, TAG_MODEL_NAME
from ulasan.core.settings import Settings
from ulasan.core.text import FEATURE_VERSION, default_lexicon

log = logging.getLogger(__name__)


def warm_start_source(
    settings: Settings, champion: ModelVersionInfo | None, dest: Path
) -> tuple[Path | None, dict[str, Any]]:
    """The champion's checkpoint folder to continue from, and what to record about it.

    ``(None, {"used": False, "reason": ...})`` when there is no champion, it has no checkpoint
    (neither the ``checkpoint/`` artifact of its run nor the run's local folder), or the
    checkpoint's labels are not ``LABELS`` in order (its head would be re-initialised: not a
    continuation). The caller then trains from scratch; the reason is logged as a warning.
    The serving folder of a warm-started candidate carries the current feature and lexicon
    versions (the weights read tokens only); the champion's are recorded beside them.
    """
    if champion is None:
        return _refuse("there is no champion to continue from")
    try:
        found = download_checkpoint(settings, champion, dest)
    except TrainerError as exc:
        return _refuse(str(exc))
    head = json.loads((found.folder / "config.json").read_text(encoding="utf-8")).get("id2label")
    labels = [str(head[k]).lower() for k in sorted(head, key=int)] if head else []
    if labels != list(LABELS):
        return _refuse(f"the checkpoint's labels {labels} are not {list(LABELS)}")
    meta = dict(found.meta)
    if not meta.get("model_name"):
        # a run from before checkpoints carried their metadata: complete it from the version
        meta = complete_checkpoint_meta(found.folder, champion)
    info: dict[str, Any] = {
        "used": True,
        "from_version": champion.version,
        "origin": found.origin,
        "checkpoint_max_length": meta.get("max_length"),
        "feature_version": {"champion": meta.get("feature_version"), "now": FEATURE_VERSION},
        "lexicon_version": {
            "champion": meta.get("lexicon_version"),
            "now": default_lexicon().version,
        },
    }
    log.info("warm start from version %s (%s)", champion.version, found.origin)
    return found.folder, info


def _refuse(reason: str) -> tuple[None, dict[str, Any]]:
    log.warning("retraining from scratch, not from the champion: %s", reason)
    return None, {"used": False, "reason": reason}


def complete_checkpoint_meta(folder: Path, version: ModelVersionInfo) -> dict[str, Any]:
    """Write ``ulasan_checkpoint.json`` into a checkpoint copy that has none, from the
    version's registry tags (model name, feature and lexicon versions) and the tokenizer's
    ``model_max_length``; the metadata written."""
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    write_checkpoint_meta(
        folder,
        model_name=version.tags.get(TAG_MODEL_NAME) or folder.name,
        max_length=int(tokenizer_config.get("model_max_length", 0)),
        feature_version=version.tags.get(TAG_FEATURE_VERSION, "unknown"),
        lexicon_version=version.tags.get(TAG_LEXICON_VERSION, "unknown"),
    )
    return read_checkpoint_meta(folder)
