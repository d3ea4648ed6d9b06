"""Producers: getting reviews and labels into Kafka (replay, Google Play, feedback, publish API).

``producers.publish(events)`` and ``producers.Publisher`` are the small publish API. The
function deliberately shadows the ``producers.publish`` submodule as a package attribute;
``from producers.publish import ...`` still reaches the module.
"""

from __future__ import annotations

from producers.publish import Publisher, publish

__all__ = ["Publisher", "publish"]
