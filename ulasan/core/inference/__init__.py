"""The serving runtime: the ``Predictor`` protocol, the ONNX predictor and the model manifest."""

from ulasan.core.inference.errors import (
    InferenceError,
    InvalidInput,
    ModelFolderError,
    ModelResolutionError,
)
from ulasan.core.inference.manifest import ModelManifest, Parity
from ulasan.core.inference.predictor import CleanedScorer, Prediction, Predictor
from ulasan.core.inference.runtime import OnnxPredictor

__all__ = [
    "CleanedScorer",
    "InferenceError",
    "InvalidInput",
    "ModelFolderError",
    "ModelManifest",
    "ModelResolutionError",
    "OnnxPredictor",
    "Parity",
    "Prediction",
    "Predictor",
]
