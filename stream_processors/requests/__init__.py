"""The predict-requests agents: ad-hoc gateway requests scored by the worker's shared scorer,
and their replies stored in prediction_logs."""

from stream_processors.requests.agent import register, register_log, reply_route, score_items

__all__ = ["register", "register_log", "reply_route", "score_items"]
