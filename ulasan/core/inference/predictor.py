"""The ``Predictor`` protocol every sentiment runtime implements, and its ``Prediction``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Prediction:
    """One scored text: the arg-max ``label``, its probability, and every class's probability."""

    label: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Predictor(Protocol):
    """Anything that scores texts; inference agents and the gateway depend on this only."""

    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    def predict(
        self, texts: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """Score ``texts`` (raw review texts; cleaning is the predictor's job), in input order.
        ``sources`` (one per text, None where unknown) lets a model trained with domain tags
        read each text as it was trained to (``ulasan.core.inference.domain``)."""
        ...


@runtime_checkable
class CleanedScorer(Predictor, Protocol):
    """A predictor that also scores texts cleaned already (``ulasan.core.text.clean`` with its
    ``lowercase``), returning each text's (non-special, unknown) token counts beside: the
    stream worker has cleaned every review once, and the drift windows need the counts."""

    @property
    def lowercase(self) -> bool: ...

    def score_cleaned(
        self, cleaned: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> tuple[list[Prediction], list[tuple[int, int]]]: ...
