"""The training pipeline behind ``ulasan train``: data to promoted model, in one MLflow run.

``run``: the stage list and :func:`run_training`; ``stages``: one function per stage over the
``context``; ``data``: training data and the fixed evaluation set; ``tracking``: the MLflow
run; ``checkpoint``: the checkpoint's metadata; ``summary``: ``summary.json`` and the table.
"""

from trainer.pipeline.checkpoint import serving_model_name, write_checkpoint_meta
from trainer.pipeline.context import PipelineContext, PipelineResult
from trainer.pipeline.data import (
    EVAL_SET_NAME,
    TrainingData,
    corpus_weights,
    fixed_eval_set,
    load_training_data,
    load_training_file,
    unlabelled_corpus,
)
from trainer.pipeline.run import run_training
from trainer.pipeline.stages import (
    PARITY_TEXTS,
    adapt_checkpoint,
    choose_decision_bias,
    gate_and_promote,
)
from trainer.pipeline.summary import summary_table

__all__ = [
    "EVAL_SET_NAME",
    "PARITY_TEXTS",
    "PipelineContext",
    "PipelineResult",
    "TrainingData",
    "adapt_checkpoint",
    "choose_decision_bias",
    "corpus_weights",
    "fixed_eval_set",
    "gate_and_promote",
    "load_training_data",
    "load_training_file",
    "run_training",
    "serving_model_name",
    "summary_table",
    "unlabelled_corpus",
    "write_checkpoint_meta",
]
