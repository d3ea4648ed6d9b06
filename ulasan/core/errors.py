"""Errors of the shared core: one root, :class:`CoreError`, and leaves that say what to do."""

from __future__ import annotations


class CoreError(Exception):
    """Root of the errors the shared core raises; the message is meant for the user."""


class ConfigError(CoreError):
    """Settings a shared helper cannot work with (a bad scrape target name, a port out of range)."""


class ServiceUnavailable(CoreError):
    """A service that should be running does not answer (Kafka refusing to create topics, ...)."""
