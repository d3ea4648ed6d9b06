"""Errors of the UI: one root, :class:`UiError`; :class:`ServiceDown` names the service and how
to start it, which is what a page shows instead of a traceback."""

from __future__ import annotations


class UiError(Exception):
    """Root of the UI's errors; the message is meant for the person looking at the page."""


class ServiceDown(UiError):
    """A service a page needs does not answer; ``start`` is the command that starts it."""

    def __init__(self, service: str, reason: str, start: str) -> None:
        super().__init__(f"{service} is not reachable: {reason}")
        self.service = service
        self.reason = reason
        self.start = start


class BadInput(UiError):
    """What the user gave cannot be used (an unreadable CSV, no text column, ...)."""
