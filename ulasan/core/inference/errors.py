"""Errors of the inference runtime: one root, ``InferenceError``, and leaves naming the failure."""

from __future__ import annotations

from ulasan.core.errors import CoreError


class InferenceError(CoreError):
    """Root of every error the inference runtime raises on purpose (under the core's root)."""


class ModelFolderError(InferenceError):
    """A serving folder that is missing, incomplete or inconsistent; the message names the file."""


class ModelResolutionError(InferenceError):
    """A model reference (``models:/name@alias``, ``models:/name/N``, folder) not found."""


class InvalidInput(InferenceError, ValueError):
    """Texts that cannot be scored as given (not strings, too many, ...)."""
