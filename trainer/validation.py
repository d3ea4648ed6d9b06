"""Validation of training examples: every rejected row is counted with its reason, none is lost."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.events import LABELS, MAX_TEXT_CHARS
from trainer.data import RATING_RAW, Example
from trainer.errors import DataError
from ulasan.core.text import clean

#: Why a row was rejected, in the order the checks run (the first failing check names it).
REASONS: dict[str, str] = {
    "empty_text": "the text is missing, null or blank",
    "too_short": "the text has fewer than min_chars characters",
    "too_long": "the text has more than max_chars characters",
    "missing_label": "the row has no label (and no rating to derive one from)",
    "bad_label": "the label is not one of the label set",
    "bad_rating": "the rating is not a whole number from 1 to 5",
    "duplicate": "an earlier row has the same (cleaned) text and label",
    "conflicting_label": "the same (cleaned) text occurs with different labels",
}
PREVIEW_CHARS = 80
#: A warning when the largest class outnumbers the smallest by more than this.
DEFAULT_MAX_IMBALANCE = 5.0


@dataclass(frozen=True)
class Rejection:
    """A rejected row: its position in the input, the reason and the start of its text."""

    index: int
    reason: str
    preview: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "id": self.id, "preview": self.preview}


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate` accepted and rejected, and why."""

    total: int
    accepted: list[Example]
    rejected: list[Rejection]
    label_distribution: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    imbalance_ratio: float | None = None

    @property
    def reason_counts(self) -> dict[str, int]:
        """Rejections per reason, every reason listed (0 when none)."""
        counts = Counter(r.reason for r in self.rejected)
        return {reason: counts.get(reason, 0) for reason in REASONS}

    @property
    def rejected_fraction(self) -> float:
        return len(self.rejected) / self.total if self.total else 0.0

    def check(self, *, max_rejected_fraction: float = 1.0, min_accepted: int = 1) -> None:
        """Raise :class:`DataError` when too much was rejected or too little is left."""
        if len(self.accepted) < min_accepted:
            raise DataError(
                f"only {len(self.accepted)} of {self.total} examples passed validation "
                f"(need {min_accepted}); rejections: {self._reason_summary()}"
            )
        if self.rejected_fraction > max_rejected_fraction:
            raise DataError(
                f"{len(self.rejected)} of {self.total} examples were rejected "
                f"({self.rejected_fraction:.1%} > {max_rejected_fraction:.1%}): "
                f"{self._reason_summary()}"
            )

    def _reason_summary(self) -> str:
        return ", ".join(f"{r}={n}" for r, n in self.reason_counts.items() if n) or "none"

    def to_dict(self, *, max_rejections: int = 1000) -> dict[str, Any]:
        """A JSON-ready summary: counts, distribution, warnings and the first rejections."""
        return {
            "total": self.total,
            "accepted": len(self.accepted),
            "rejected": len(self.rejected),
            "reason_counts": self.reason_counts,
            "label_distribution": self.label_distribution,
            "imbalance_ratio": self.imbalance_ratio,
            "warnings": list(self.warnings),
            "rejections": [r.to_dict() for r in self.rejected[:max_rejections]],
            "rejections_left_out": max(0, len(self.rejected) - max_rejections),
        }


def validate(
    examples: Iterable[Example],
    *,
    min_chars: int = 1,
    max_chars: int = MAX_TEXT_CHARS,
    labels: Sequence[str] = LABELS,
    require_label: bool = True,
    max_imbalance: float = DEFAULT_MAX_IMBALANCE,
) -> ValidationReport:
    """Accept the examples fit for training, reject the rest with a reason (see :data:`REASONS`).

    Row checks (the text stripped of surrounding whitespace for its length): empty text,
    ``min_chars``/``max_chars``, a missing label (when ``require_label``), a label outside
    ``labels``, a rating outside 1-5 or not a number. Then, among rows that pass, texts are
    compared by their cleaned form (:func:`~ulasan.core.text.clean`, what the model
    sees): a text seen with two or more labels is rejected everywhere (``conflicting_label``);
    a repeat of an earlier row with the same label is a ``duplicate`` (the first is kept).

    Class imbalance is a warning (with the ratio of the largest to the smallest class), never
    a rejection; so is a label of ``labels`` without any example. Accepted examples keep their
    input order.
    """
    if min_chars < 0 or max_chars < max(min_chars, 1):
        raise DataError(f"bad length bounds: min_chars={min_chars}, max_chars={max_chars}")
    label_set = frozenset(labels)
    rows = list(examples)
    rejected: list[Rejection] = []
    passed: list[tuple[int, Example, str]] = []

    for index, example in enumerate(rows):
        reason = _row_problem(example, min_chars, max_chars, label_set, require_label)
        if reason:
            rejected.append(_rejection(index, example, reason))
        else:
            passed.append((index, example, clean(example.text)))

    accepted = _deduplicate(passed, rejected)
    rejected.sort(key=lambda r: r.index)

    distribution = {label: 0 for label in labels}
    for example in accepted:
        if example.label is not None:
            distribution[example.label] += 1
    warnings, ratio = _imbalance(distribution, max_imbalance)
    return ValidationReport(
        total=len(rows),
        accepted=accepted,
        rejected=rejected,
        label_distribution=distribution,
        warnings=warnings,
        imbalance_ratio=ratio,
    )


def _deduplicate(
    passed: list[tuple[int, Example, str]], rejected: list[Rejection]
) -> list[Example]:
    """The rows that passed, less texts seen with two labels and repeats (appended to
    ``rejected``); first occurrences kept, in order."""
    labels_of: defaultdict[str, set[str]] = defaultdict(set)
    for _, example, key in passed:
        if example.label is not None:
            labels_of[key].add(example.label)
    accepted: list[Example] = []
    seen: set[str] = set()
    for index, example, key in passed:
        if len(labels_of[key]) > 1:
            rejected.append(_rejection(index, example, "conflicting_label"))
        elif key in seen:
            rejected.append(_rejection(index, example, "duplicate"))
        else:
            seen.add(key)
            accepted.append(example)
    return accepted


def _row_problem(
    example: Example, min_chars: int, max_chars: int, labels: frozenset[str], require_label: bool
) -> str | None:
    text = example.text.strip() if isinstance(example.text, str) else ""
    if not text:
        return "empty_text"
    if len(text) < min_chars:
        return "too_short"
    if len(text) > max_chars:
        return "too_long"
    if example.label is None:
        if require_label:
            return "missing_label"
    elif example.label not in labels:
        return "bad_label"
    if RATING_RAW in example.meta:
        return "bad_rating"
    rating = example.rating
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5
    ):
        return "bad_rating"
    return None


def _rejection(index: int, example: Example, reason: str) -> Rejection:
    text = example.text if isinstance(example.text, str) else ""
    preview = " ".join(text.split())
    if len(preview) > PREVIEW_CHARS:
        preview = preview[: PREVIEW_CHARS - 1] + "…"
    return Rejection(index=index, reason=reason, preview=preview, id=example.id)


def _imbalance(
    distribution: dict[str, int], max_imbalance: float
) -> tuple[list[str], float | None]:
    counts = list(distribution.values())
    if not counts or not any(counts):
        return ["no labelled examples were accepted"], None
    warnings = [f"no examples of label {label!r}" for label, n in distribution.items() if not n]
    present = [n for n in counts if n]
    ratio = max(present) / min(present)
    if ratio > max_imbalance:
        largest = max(distribution, key=lambda k: distribution[k])
        smallest = min((k for k in distribution if distribution[k]), key=lambda k: distribution[k])
        warnings.append(
            f"class imbalance {ratio:.2f}:1 ({largest} {distribution[largest]} vs "
            f"{smallest} {distribution[smallest]}), above {max_imbalance:g}:1; consider class "
            "weights or resampling"
        )
    return warnings, ratio
