"""The drift window's accumulator: a pure reducer (``initialize / agg / result``), JSON state.

It knows nothing of Kafka: the drift agent keeps its state in a faust table (so it survives a
restart through the changelog) and feeds it :class:`ScoreObservation` (a scored review and its
features) and :class:`FeedbackObservation` (a prediction whose true label arrived). Memory is
bounded: numeric features and confidence are kept as reservoir samples of ``sample_size``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from schemas.events import LABELS
from stream_processors.drift import reservoir
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.errors import StateError
from stream_processors.drift.reference import BOOLEAN_FEATURES, NUMERIC_FEATURES, Reference
from stream_processors.drift.stats import DriftVerdict, judge

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ScoreObservation:
    """One scored review: its numeric and boolean features, label, confidence, token counts."""

    numeric: dict[str, float]
    flags: dict[str, bool]
    label: str
    confidence: float
    tokens: int
    unknown_tokens: int
    model_version: str

    def to_json(self) -> dict[str, Any]:
        # what asdict() gives, built directly: asdict copies recursively and was most of the
        # observations' cost per review in the pipeline profile
        return {
            "kind": "score",
            "numeric": dict(self.numeric),
            "flags": dict(self.flags),
            "label": self.label,
            "confidence": self.confidence,
            "tokens": self.tokens,
            "unknown_tokens": self.unknown_tokens,
            "model_version": self.model_version,
        }


@dataclass(frozen=True, slots=True)
class FeedbackObservation:
    """One prediction whose true label is now known (from the feedback join)."""

    correct: bool
    model_version: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "feedback", **asdict(self)}


def observation_from_json(data: dict[str, Any]) -> ScoreObservation | FeedbackObservation:
    """Inverse of ``to_json``; :class:`StateError` for anything else."""
    body = {k: v for k, v in data.items() if k != "kind"}
    try:
        if data.get("kind") == "score":
            return ScoreObservation(**body)
        if data.get("kind") == "feedback":
            return FeedbackObservation(**body)
    except TypeError as exc:
        raise StateError(f"not a drift observation: {exc}") from exc
    raise StateError(f"unknown observation kind {data.get('kind')!r}")


class DriftAccumulator:
    """Reducer of one window. ``initialize()`` -> state; ``agg(state, obs)`` -> state (updated
    in place and returned); ``result(state, reference, history)`` -> :class:`DriftVerdict`."""

    def __init__(self, config: DriftConfig) -> None:
        self.config = config

    def initialize(self, start: float = 0.0, end: float = 0.0) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "start": start,
            "end": end,
            "n": 0,
            "numeric": {name: reservoir.initialize() for name in NUMERIC_FEATURES},
            "categorical": {name: {"true": 0, "false": 0} for name in BOOLEAN_FEATURES},
            "predicted": {lab: 0 for lab in LABELS},
            "confidence": reservoir.initialize(),
            "tokens": {"total": 0, "unknown": 0},
            "feedback": {"n": 0, "correct": 0},
            "versions": {},
        }

    def agg(
        self, state: dict[str, Any], obs: ScoreObservation | FeedbackObservation
    ) -> dict[str, Any]:
        if state.get("v") != STATE_VERSION:
            raise StateError(f"drift state version {state.get('v')!r} is not {STATE_VERSION}")
        if isinstance(obs, FeedbackObservation):
            state["feedback"]["n"] += 1
            state["feedback"]["correct"] += int(obs.correct)
            return state
        size, seed = self.config.sample_size, self.config.seed
        n = state["n"]
        for i, name in enumerate(NUMERIC_FEATURES):
            reservoir.agg(state["numeric"][name], obs.numeric[name], size=size, seed=seed * 64 + i)
        for name in BOOLEAN_FEATURES:
            state["categorical"][name]["true" if obs.flags[name] else "false"] += 1
        if obs.label not in state["predicted"]:
            raise StateError(f"label {obs.label!r} is not one of {list(LABELS)}")
        state["predicted"][obs.label] += 1
        reservoir.agg(state["confidence"], obs.confidence, size=size, seed=seed * 64 + 63)
        state["tokens"]["total"] += obs.tokens
        state["tokens"]["unknown"] += obs.unknown_tokens
        versions = state["versions"]
        versions[obs.model_version] = versions.get(obs.model_version, 0) + 1
        state["n"] = n + 1
        return state

    def result(
        self,
        state: dict[str, Any],
        reference: Reference,
        history: list[tuple[float, float]] | None = None,
    ) -> DriftVerdict:
        """Every test of the window against ``reference``; ``history`` is (time s, accuracy)
        of earlier windows for the accuracy trend (this window's accuracy is added to it)."""
        return judge(state, reference, self.config, history or [])


def window_accuracy(state: dict[str, Any]) -> float | None:
    """The window's feedback accuracy, None without feedback."""
    fb = state["feedback"]
    return fb["correct"] / fb["n"] if fb["n"] else None
