"""Errors of the stream worker: one root, ``StreamProcessorError``, and leaves naming failures."""

from __future__ import annotations


class StreamProcessorError(Exception):
    """Root of every error the stream worker raises on purpose."""


class WorkerConfigError(StreamProcessorError):
    """Worker settings that cannot work together (the message says which and what to change)."""


class SinkUnavailable(StreamProcessorError):
    """PostgreSQL cannot be reached or refused the connection; the sink retries with backoff."""


class SinkRejected(StreamProcessorError):
    """PostgreSQL refused a row for what it is (a constraint or type error); it is dead-lettered."""
