"""What feeds drift.observations.v1: scored batches (from the infer agent), feedback outcomes
and the ticks that close windows, sent as JSON messages (see ``drift.window``)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from faust.types import ChannelT

from stream_processors.drift.accumulator import FeedbackObservation
from stream_processors.drift.models import ModelCaches
from stream_processors.drift.window import BATCH, TICK, score_observation
from stream_processors.feedback.logic import Outcome
from stream_processors.wiring import ScoredPairs, TokenCounts

KEY = b"drift"
#: observations per message on drift.observations.v1 (and per drift_windows batch)
OBSERVATION_BATCH = 500


class ObservationSender:
    """Sends observations to the (single-partition) observations channel: one message per batch
    of up to ``OBSERVATION_BATCH``, one produce and one consume per batch, not per review."""

    def __init__(self, channel: ChannelT[Any]) -> None:
        self.channel = channel

    async def send(self, message: dict[str, Any]) -> None:
        await self.channel.send(key=KEY, value=json.dumps(message).encode())

    async def send_many(self, items: list[dict[str, Any]]) -> None:
        for i in range(0, len(items), OBSERVATION_BATCH):
            await self.send({"kind": BATCH, "items": items[i : i + OBSERVATION_BATCH]})

    async def tick(self, now: float) -> None:
        """Ask the drift windows to close what is due at ``now``."""
        await self.send({"kind": TICK, "t": now})

    async def outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """The champion's outcomes (shadow outcomes are not observed), stamped with now."""
        items = []
        for o in outcomes:
            if not o.shadow:
                obs = FeedbackObservation(o.correct, o.model_version).to_json()
                obs["t"] = time.time()
                items.append(obs)
        if items:
            await self.send_many(items)


class ScoreObserver:
    """The infer agent's ``ScoresObserver``: each stored batch becomes observations of the clean
    agent's features (carried by the cleaned review: the reference profile used the same
    function), the label and confidence, and the champion tokenizer's unknown-token counts."""

    def __init__(self, sender: ObservationSender, models: ModelCaches) -> None:
        self.sender = sender
        self.models = models

    async def observe(self, pairs: ScoredPairs, counts: TokenCounts | None = None) -> None:
        """``counts``: the predictor's, made with the model that scored the batch; without
        them the current model's tokenizer counts the texts here."""
        if not pairs:
            return
        if counts is None:
            counter = self.models.token_counter()
            texts = [scored.text or cleaned.text for cleaned, scored in pairs]
            counts = counter.count(texts) if counter is not None else [(0, 0)] * len(pairs)
        items = []
        for (cleaned, scored), c in zip(pairs, counts, strict=True):
            obs = score_observation(cleaned.features, scored, c).to_json()
            obs["t"] = scored.scored_at.timestamp()
            items.append(obs)
        await self.sender.send_many(items)
