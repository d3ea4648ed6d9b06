"""Scoring in the worker: micro-batching, the hot-reload listener, the shadow challenger.

The runtime itself (``Predictor``, ``OnnxPredictor``, the manifest) lives in
:mod:`ulasan.core.inference`, shared with the gateway bench and the trainer.
"""
