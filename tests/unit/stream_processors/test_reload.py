"""The hot reloader's decisions: which announcements swap the predictor, and what a failure does."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import ModelPromoted
from stream_processors.inference.batching import PredictorHolder
from stream_processors.inference.reload import ModelReloader
from stream_processors.settings import WorkerConfig, WorkerSettings
from ulasan.core.inference.errors import InferenceError, ModelResolutionError

NAME = "ulasan-sentiment"


@dataclass
class Version:
    """What the reloader reads of a predictor: its name and version."""

    model_name: str
    model_version: str


class Registry:
    """Aliases -> versions, resolved the way the real loader resolves ``models:/name@alias``."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = aliases
        self.broken = False
        self.loads: list[str] = []

    def load(self, ref: str) -> Version:
        self.loads.append(ref)
        if self.broken:
            raise InferenceError("the ONNX session could not be created")
        alias = ref.rsplit("@", 1)[1]
        if alias not in self.aliases:
            raise ModelResolutionError(f"no alias {alias}")
        return Version(NAME, self.aliases[alias])


def reloader(registry: Registry, serving: str = "1") -> ModelReloader:
    settings = WorkerSettings(worker=WorkerConfig(model=f"models:/{NAME}@champion"))
    # the startup predictor carries the manifest's name, not the registered one
    holder = PredictorHolder(Version("ulasan-mini", serving))  # type: ignore[arg-type]
    return ModelReloader(settings, holder, registry=CollectorRegistry(), loader=registry.load)


def promoted(version: str, alias: str = "champion", name: str = NAME) -> ModelPromoted:
    return ModelPromoted(
        model_name=name, version=version, alias=alias, model_uri=f"models:/{name}@{alias}"
    )


def swaps(r: ModelReloader) -> float:
    value = r.reloads.labels("champion", "swapped")._value.get()
    return float(value)


def test_a_promotion_of_a_new_version_swaps_once_and_the_same_version_never() -> None:
    registry = Registry(champion="1")
    r = reloader(registry)
    first = r.reload()  # the startup check: same version (whatever the name): no swap
    assert not first.swapped and swaps(r) == 0
    registry.aliases["champion"] = "2"
    result = r.handle(promoted("2"))
    assert result is not None and result.swapped
    assert (result.previous_version, result.version) == ("1", "2")
    assert r.holder.current.model_version == "2" and swaps(r) == 1
    again = r.handle(promoted("2"))  # a replayed announcement
    assert again is not None and not again.swapped and swaps(r) == 1


def test_announcements_for_other_models_or_aliases_are_ignored() -> None:
    registry = Registry(champion="3")
    r = reloader(registry)
    assert r.handle(promoted("3", name="another-model")) is None
    assert r.handle(promoted("3", alias="candidate")) is None
    assert registry.loads == [] and r.holder.current.model_version == "1"


def test_a_failed_load_keeps_the_old_model_in_service() -> None:
    registry = Registry(champion="2")
    registry.broken = True
    r = reloader(registry)
    with pytest.raises(InferenceError):
        r.reload()
    assert r.holder.current.model_version == "1"
    assert r.reloads.labels("champion", "failed")._value.get() == 1


def test_a_challenger_is_shadowed_and_dropped_once_it_is_the_champion() -> None:
    registry = Registry(champion="1", challenger="2")
    r = reloader(registry)
    shadow = r.handle(promoted("2", alias="challenger"))
    assert shadow is not None and shadow.swapped and r.shadow.current.model_version == "2"
    registry.aliases["champion"] = "2"
    r.handle(promoted("2"))
    assert r.holder.current.model_version == "2"
    assert r.shadow.current is None  # the challenger is the champion now
