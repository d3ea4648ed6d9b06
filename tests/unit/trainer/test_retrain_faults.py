"""The retraining service's decisions on faults: which runs are tried again and when, and an
announcement published until it is delivered."""

from __future__ import annotations

import pytest

from schemas.events import ModelPromoted
from trainer.errors import TrainerError
from trainer.retrain.config import TrainerSettings
from trainer.retrain.request import deliver
from trainer.retrain.service import _retry_in
from trainer.retrain.store import RunRecord


def run(status: str, attempts: int = 1, retry_in_s: float | None = None) -> RunRecord:
    r = RunRecord("r", "q", "k", ["drift"], status, attempts=attempts)
    r.retry_in_s = retry_in_s
    return r


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (run("done"), None),
        (run("stale"), None),
        (run("duplicate"), None),
        (run("failed", attempts=1), 30.0),
        (run("failed", attempts=2), 60.0),
        (run("failed", attempts=3), None),  # out of tries: committed, recorded as failed
        (run("busy", retry_in_s=12.0), 12.5),  # another trainer's live lease: after it expires
        (run("busy", retry_in_s=0.0), 0.5),
    ],
)
def test_what_is_tried_again_and_when(record: RunRecord, expected: float | None) -> None:
    assert _retry_in(record, max_attempts=3, backoff_s=30.0, max_s=600.0) == expected


def test_the_retry_backoff_has_a_ceiling() -> None:
    assert _retry_in(run("failed", attempts=9), 10, backoff_s=30.0, max_s=100.0) == 100.0


def test_an_announcement_is_published_until_it_is_delivered() -> None:
    settings = TrainerSettings(retrain={"announce_backoff_max_s": 4.0})
    event = ModelPromoted(
        model_name="m", version="2", alias="champion", model_uri="models:/m@champion"
    )
    tries: list[ModelPromoted] = []
    waits: list[float] = []

    def publish(e: ModelPromoted) -> None:
        tries.append(e)
        if len(tries) < 5:
            raise TrainerError("could not deliver (the topic is missing)")

    assert deliver(settings, event, publish, sleep=waits.append) == 5
    assert tries == [event] * 5 and waits == [1.0, 2.0, 4.0, 4.0]
