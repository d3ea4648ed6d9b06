"""Errors of drift detection: one root, ``DriftError``, under the stream worker's root."""

from __future__ import annotations

from stream_processors.errors import StreamProcessorError


class DriftError(StreamProcessorError):
    """Root of every error drift detection raises on purpose."""


class ReferenceUnavailable(DriftError):
    """A reference profile that is missing or lacks what a test needs (the message names it)."""


class StateError(DriftError, ValueError):
    """An accumulator state that is not one this code wrote (wrong keys or version)."""
