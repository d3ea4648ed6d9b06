"""The predict-requests agent: ad-hoc gateway requests scored by the worker's shared scorer."""

from stream_processors.requests.agent import register, reply_route, score_items

__all__ = ["register", "reply_route", "score_items"]
