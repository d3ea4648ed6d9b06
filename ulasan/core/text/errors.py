"""Errors of the text package: one root, ``TextError``, under the stream worker's root."""

from __future__ import annotations

from stream_processors.errors import StreamProcessorError


class TextError(StreamProcessorError):
    """Root of every error the text package raises on purpose."""


class LexiconError(TextError, ValueError):
    """A lexicon file that is missing, unreadable or inconsistent; the message says which."""
