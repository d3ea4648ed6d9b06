"""The hot reloader's decisions: which announcements swap the predictor, and what a failure does."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from schemas.codec import encode
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
        self.down = False
        self.loads: list[str] = []

    def resolve(self, ref: str) -> str:
        """The alias's version without loading anything (what reconcile asks first)."""
        if self.down:
            raise ConnectionRefusedError("MLflow does not answer")
        return self.aliases[ref.rsplit("@", 1)[1]]

    def load(self, ref: str) -> Version:
        self.loads.append(ref)
        if self.down:
            raise ConnectionRefusedError("MLflow does not answer")
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
    return ModelReloader(
        settings,
        holder,
        registry=CollectorRegistry(),
        loader=registry.load,
        resolver=registry.resolve,
        retry_initial_s=1.0,
        retry_max_s=8.0,
    )


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


def failures(r: ModelReloader) -> float:
    return float(r.reloads.labels("champion", "failed")._value.get())


def test_reconcile_loads_only_when_the_registry_names_another_version() -> None:
    registry = Registry(champion="1")
    r = reloader(registry)
    result = r.reconcile()
    assert (
        result is not None
        and not result.swapped
        and registry.loads == [f"models:/{NAME}@challenger"]
    )  # the champion was not loaded again; only the challenger was looked for
    registry.loads.clear()
    registry.aliases["champion"] = "2"  # an announcement that never arrived
    result = r.reconcile(shadow=False)
    assert result is not None and result.swapped and r.holder.current.model_version == "2"
    assert registry.loads[0] == f"models:/{NAME}@champion"


def test_any_error_while_loading_is_counted_and_the_old_model_serves() -> None:
    registry = Registry(champion="2")
    r = reloader(registry)
    registry.down = True  # not an InferenceError: it used to end the listener thread
    with pytest.raises(ModelResolutionError, match="ConnectionRefusedError"):
        r.reload()
    with pytest.raises(ModelResolutionError, match="MLflow does not answer"):
        r.reconcile()
    assert r.holder.current.model_version == "1" and failures(r) == 2


def test_a_failed_reconcile_is_tried_again_with_a_doubling_backoff_until_it_works() -> None:
    registry = Registry(champion="2")
    r = reloader(registry)
    registry.down = True
    waits = []
    for _ in range(5):
        before = time.monotonic()
        r._try_reconcile(shadow=False)
        waits.append(round(r._reconcile_at - before))
    assert waits == [1, 2, 4, 8, 8] and r.holder.current.model_version == "1"
    registry.down = False
    before = time.monotonic()
    r._try_reconcile(shadow=False)
    assert r.holder.current.model_version == "2"
    assert r._reconcile_at - before >= r.reconcile_s - 1  # back to the slow cadence
    registry.down = True
    r._try_reconcile(shadow=False)
    assert r._reconcile_at - time.monotonic() <= 1.0  # the backoff started over


def test_a_failed_reload_on_an_announcement_schedules_a_reconcile() -> None:
    registry = Registry(champion="1")
    r = reloader(registry)
    r._reconcile_at = time.monotonic() + 300.0
    registry.aliases["champion"] = "2"
    registry.broken = True

    class Msg:
        def error(self) -> None:
            return None

        def value(self) -> bytes:
            return encode(promoted("2"))

        def offset(self) -> int:
            return 0

    r._on_message(Msg())  # does not raise: the listener goes on
    assert r.holder.current.model_version == "1" and failures(r) == 1
    assert r._reconcile_at - time.monotonic() <= 1.0
    registry.broken = False
    r._try_reconcile(shadow=False)
    assert r.holder.current.model_version == "2"


def test_the_waits_come_from_the_worker_settings_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ULASAN_WORKER__RELOAD_RETRY_INITIAL_S", "0.25")
    monkeypatch.setenv("ULASAN_WORKER__RELOAD_RETRY_MAX_S", "2")
    monkeypatch.setenv("ULASAN_WORKER__RELOAD_RECONCILE_S", "45")
    holder = PredictorHolder(Version(NAME, "1"))  # type: ignore[arg-type]
    r = ModelReloader(WorkerSettings(), holder, registry=CollectorRegistry())
    assert [r.retry.next() for _ in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert r.reconcile_s == 45.0
    given = ModelReloader(WorkerSettings(), holder, registry=CollectorRegistry(), reconcile_s=9)
    assert given.reconcile_s == 9 and given.retry.initial_s == 0.25
    defaults = WorkerConfig()
    assert (
        defaults.reload_retry_initial_s,
        defaults.reload_retry_max_s,
        defaults.reload_reconcile_s,
    ) == (1.0, 30.0, 300.0)
    with pytest.raises(ValueError, match="reload_retry_max_s"):
        WorkerConfig(reload_retry_initial_s=5, reload_retry_max_s=1)
