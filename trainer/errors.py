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


class ExportError(TrainerError):
    """A checkpoint that cannot be exported to a serving folder, or an export that lost parity."""


class RegistryError(TrainerError):
    """MLflow could not be reached, or a registered model, version or alias is missing."""


class GateError(TrainerError):
    """The promotion gate could not decide (no scores, no evaluation data, no candidate)."""


class EvaluationError(TrainerError, ValueError):
    """Evaluation data that cannot be read or scored; the message names the file and row."""


class ProfileError(TrainerError, ValueError):
    """A training-data profile that cannot be built from the given texts and labels."""


class DataError(TrainerError, ValueError):
    """Training data that cannot be read as a whole (missing file or column, not UTF-8,
    malformed rows, an unreachable database) or that validation judged unusable."""
