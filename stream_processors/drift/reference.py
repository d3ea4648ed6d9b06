"""The reference a window is compared with: the champion's training-data profile (profile.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.events import LABELS, TextFeatures
from stream_processors.drift.errors import ReferenceUnavailable
from ulasan.core.inference.manifest import PROFILE_FILE

#: The text features compared with two-sample KS (every numeric field of ``TextFeatures``).
NUMERIC_FEATURES = tuple(
    name for name, field in TextFeatures.model_fields.items() if field.annotation is not bool
)
#: The boolean features compared with chi-square.
BOOLEAN_FEATURES = tuple(
    name for name, field in TextFeatures.model_fields.items() if field.annotation is bool
)


@dataclass(frozen=True)
class Reference:
    """What the champion was trained on, as the drift tests need it.

    ``numeric`` maps a feature to its training sample; ``categorical`` to ``{"true", "false"}``
    counts; ``predicted`` is the champion's label counts on its training texts; ``confidence``
    its confidence sample there; ``unknown_token_rate`` its tokenizer's rate on them;
    ``baseline_accuracy`` the champion's accuracy on the fixed evaluation set (None = unknown,
    then the accuracy test is not run); ``created_at`` when the profile was made (epoch s).
    """

    model_version: str
    numeric: dict[str, list[float]]
    categorical: dict[str, dict[str, int]]
    predicted: dict[str, int]
    confidence: list[float]
    unknown_token_rate: float
    created_at: float
    baseline_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_profile(
        cls,
        profile: dict[str, Any],
        *,
        model_version: str,
        baseline_accuracy: float | None = None,
    ) -> Reference:
        """From a ``trainer.profile`` dict; :class:`ReferenceUnavailable` when a part is missing."""
        try:
            numeric = {
                name: [float(v) for v in profile["numeric_features"][name]["sample"]]
                for name in NUMERIC_FEATURES
            }
            categorical = {
                name: {
                    "true": int(profile["categorical_features"][name]["true"]),
                    "false": int(profile["categorical_features"][name]["false"]),
                }
                for name in BOOLEAN_FEATURES
            }
            predicted = {lab: int(profile["predicted_labels"].get(lab, 0)) for lab in LABELS}
            confidence = [float(v) for v in profile["confidence"]["sample"]]
            unk = float(profile["unknown_token_rate"])
            created = datetime.fromisoformat(profile["created_at"]).timestamp()
        except (KeyError, TypeError, ValueError) as exc:
            raise ReferenceUnavailable(
                f"the training profile lacks {exc!s}: re-export the model with a current trainer"
            ) from exc
        if not confidence or any(not s for s in numeric.values()):
            raise ReferenceUnavailable("the training profile has empty samples")
        return cls(
            model_version=model_version,
            numeric=numeric,
            categorical=categorical,
            predicted=predicted,
            confidence=confidence,
            unknown_token_rate=unk,
            created_at=created,
            baseline_accuracy=baseline_accuracy,
        )

    @classmethod
    def from_folder(
        cls, folder: str | Path, *, model_version: str, baseline_accuracy: float | None = None
    ) -> Reference:
        """From ``<serving folder>/profile.json``."""
        path = Path(folder) / PROFILE_FILE
        if not path.is_file():
            raise ReferenceUnavailable(
                f"{path} is missing: the serving folder has no training profile, so drift "
                "cannot be measured (train with `ulasan train`, which writes it)"
            )
        try:
            profile = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReferenceUnavailable(f"cannot read {path}: {exc}") from exc
        return cls.from_profile(
            profile, model_version=model_version, baseline_accuracy=baseline_accuracy
        )
