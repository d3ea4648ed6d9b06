"""Errors of the producers: one root, :class:`ProducerError`, and leaves that say what to do."""

from __future__ import annotations


class ProducerError(Exception):
    """Root of every error a producer raises; the message is meant for the user."""


class PublishError(ProducerError):
    """Kafka did not accept one or more events (delivery failed, timed out, or was refused).

    ``failures`` holds ``(key, reason)`` pairs of the events that were not delivered.
    """

    def __init__(self, message: str, failures: list[tuple[str | None, str]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class KafkaUnavailable(PublishError):
    """The Kafka cluster cannot be reached at the configured bootstrap servers."""


class CheckpointError(ProducerError):
    """The producer checkpoints in PostgreSQL cannot be read or written."""


class InputFileError(ProducerError):
    """A whole input file is unusable (missing, unreadable, wrong format, missing columns).

    Single bad rows are not errors: they are reported with their line numbers and skipped.
    """


class GooglePlayError(ProducerError):
    """Root of the Google Play producer's errors."""


class GooglePlayUnavailable(GooglePlayError):
    """Google Play could not be reached (network, proxy, DNS, or repeated HTTP errors)."""


class AppNotFound(GooglePlayError):
    """Google Play answered 404 for the application id."""


class UnexpectedResponse(GooglePlayError):
    """Google Play answered with a body the scraper library cannot parse."""
