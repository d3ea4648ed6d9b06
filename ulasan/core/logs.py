"""Logging of every ulasan process: readable lines for people, or JSON lines for log shippers.

``ULASAN_LOG_FORMAT=json`` (``Settings.log_format``) makes every record one JSON object on a
line (time, level, logger, message, and the exception when there is one), which Loki, Fluent
Bit or Elasticsearch read without a parser of their own.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object a record: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    ``exception`` (the formatted traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dict: every record to stderr in ``fmt`` at ``level``.

    Raises ``ValueError`` for a format other than ``text`` or ``json``.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send every record to stderr in ``fmt`` (``text`` or ``json``) from ``level`` up."""
    logging.config.dictConfig(logging_config(level, fmt))
