"""Retraining triggers: the seed's five rules as a pure function over JSON state, and its agent."""

from stream_processors.triggers.logic import TriggerConfig, TriggerInputs, evaluate, initial_state

__all__ = ["TriggerConfig", "TriggerInputs", "evaluate", "initial_state"]
