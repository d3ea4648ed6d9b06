"""Errors of the text package: one root, ``TextError``, under the shared core's root."""

from __future__ import annotations

from ulasan.core.errors import CoreError


class TextError(CoreError):
    """Root of every error the text package raises on purpose."""


class LexiconError(TextError, ValueError):
    """A lexicon file that is missing, unreadable or inconsistent; the message says which."""
