"""Errors of the trainer: one root, ``TrainerError``, and leaves that say what went wrong.

Other trainer modules (data, export, registry, gate) add their leaves here, under the root.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Root of every error the trainer raises on purpose."""


class MetricsError(TrainerError, ValueError):
    """Predictions, labels or probabilities that cannot be scored as given."""


class ConfigError(TrainerError, ValueError):
    """A training configuration (YAML file or flag) that is invalid; the message says which."""


class TrainingError(TrainerError):
    """Training could not run or produced no usable model."""
