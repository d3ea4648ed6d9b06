"""Sentiment inference: the ``Predictor`` protocol, the ONNX runtime and model resolution."""

from stream_processors.inference.errors import (
    InferenceError,
    InvalidInput,
    ModelFolderError,
    ModelResolutionError,
)
from stream_processors.inference.manifest import ModelManifest, Parity
from stream_processors.inference.predictor import Prediction, Predictor
from stream_processors.inference.resolve import resolve_model
from stream_processors.inference.runtime import OnnxPredictor

__all__ = [
    "InferenceError",
    "InvalidInput",
    "ModelFolderError",
    "ModelManifest",
    "ModelResolutionError",
    "OnnxPredictor",
    "Parity",
    "Prediction",
    "Predictor",
    "resolve_model",
]
