"""The faust compatibility check fails loudly when a version or a private name changes."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any

import pytest
from faust.streams import Stream
from faust.tables.recovery import Recovery
from faust.transport import consumer as base
from faust.transport.drivers import aiokafka as driver
from faust.types import tuples

from stream_processors.kafka import compat
from stream_processors.kafka.compat import FaustIncompatible
from ulasan.core.settings import PROJECT_ROOT


def test_the_installed_faust_passes() -> None:
    compat.check()
    assert compat.version_problems() == []
    assert compat.name_problems() == []


def test_the_pins_are_pyprojects() -> None:
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = dict(d.split("==") for d in deps if "==" in d)
    assert {dist: pinned.get(dist) for dist in compat.PINS} == dict(compat.PINS)


def test_another_version_is_named() -> None:
    versions = {**compat.PINS, "faust-streaming": "0.16.0"}
    with pytest.raises(FaustIncompatible, match=r"faust-streaming is 0\.16\.0.*written for 0\.15"):
        compat.check(installed=versions.__getitem__)


def test_a_missing_distribution_is_named() -> None:
    def installed(dist: str) -> str:
        if dist == "aiokafka":
            raise compat.importlib.metadata.PackageNotFoundError(dist)
        return compat.PINS[dist]

    with pytest.raises(FaustIncompatible, match="aiokafka is not installed"):
        compat.check(installed=installed)


def test_importing_compat_under_another_version_fails() -> None:
    code = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda d: '9.9.9' if d == 'aiokafka' else real(d)\n"
        "import stream_processors.kafka.compat\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "FaustIncompatible" in done.stderr and "aiokafka is 9.9.9" in done.stderr


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (base.Consumer, "_new_offset"),
        (base.Consumer, "_add_gap"),
        (driver.Consumer, "on_partitions_assigned"),
        (Stream, "_enable_passive"),
        (Stream, "_set_current_event"),
    ],
)
def test_a_removed_method_is_named(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    for cls in owner.__mro__:  # gone everywhere, as in a release that dropped it
        if name in vars(cls):
            monkeypatch.delattr(cls, name)
    with pytest.raises(FaustIncompatible, match=rf"\.{name} is gone"):
        compat.check()


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def ack(self: Any, message: Any, n: int = 1) -> bool:
        return False

    monkeypatch.setattr(base.Consumer, "ack", ack)
    with pytest.raises(
        FaustIncompatible, match=r"Consumer\.ack now takes \('self', 'message', 'n'\)"
    ):
        compat.check()


def test_an_instance_attribute_no_longer_assigned_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_init = base.Consumer.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # a release that renamed it
        real_init(self, *args, **kwargs)
        self._in_flight_messages = set()

    monkeypatch.setattr(base.Consumer, "__init__", __init__)
    with pytest.raises(FaustIncompatible) as raised:
        compat.check()
    # every name __init__ used to assign is reported, each with its use
    assert "Consumer._unacked_messages is no longer assigned in __init__" in str(raised.value)
    assert "Consumer._committed_offset is no longer assigned" in str(raised.value)


def test_recovery_and_message_attributes_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def _set_recovery_started(self: Any) -> None:
        self.in_recovery = True

    monkeypatch.setattr(Recovery, "_set_recovery_started", _set_recovery_started)
    monkeypatch.setattr(tuples.Message, "__init__", lambda self: None)
    with pytest.raises(FaustIncompatible) as raised:
        compat.check()
    assert "Recovery._recovery_started_at is no longer assigned" in str(raised.value)
    assert "Message.generation_id is no longer assigned" in str(raised.value)


def test_a_removed_module_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(tuples, "ack_lock")
    with pytest.raises(FaustIncompatible, match=r"faust\.types\.tuples\.ack_lock is gone"):
        compat.check()


def test_overrides_must_be_listed_and_keep_faust_parameters() -> None:
    class Unlisted(driver.Consumer):
        def _drain_messages(self, fetcher: Any) -> None: ...

    with pytest.raises(FaustIncompatible, match="_drain_messages shadows faust's"):
        compat.check_overrides(Unlisted, driver.Consumer)

    class Drifted(driver.Consumer):
        def _new_offset(self, partition: Any) -> None: ...

    with pytest.raises(FaustIncompatible, match=r"_new_offset\(.*partition.*differs"):
        compat.check_overrides(Drifted, driver.Consumer)

    class Collides(driver.Consumer):
        _committed_offset: dict[Any, int]  # our own state under a name faust uses

    with pytest.raises(FaustIncompatible, match="_committed_offset shadows"):
        compat.check_overrides(Collides, driver.Consumer)
