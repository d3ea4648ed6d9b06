"""ULASAN_LOG_FORMAT: readable lines, or one JSON object a line that a log shipper parses."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from ulasan.core.logs import JsonFormatter, logging_config
from ulasan.core.settings import PROJECT_ROOT, Settings


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError('broken "quote"\nnext line')
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("ulasan.test", logging.WARNING, __file__, 1, msg, args, info)


def test_json_lines_carry_level_logger_message_and_exception() -> None:
    line = JsonFormatter().format(record("lag %d on %s", 42, "p\u00e9rtition", exc=True))
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "WARNING" and out["logger"] == "ulasan.test"
    assert out["message"] == "lag 42 on p\u00e9rtition"
    assert out["time"].endswith("+00:00")
    assert 'ValueError: broken "quote"' in out["exception"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        logging_config("info", "xml")


def test_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULASAN_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("ULASAN_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_a_process_configured_for_json_writes_only_json_lines() -> None:
    code = (
        "import logging\n"
        "from ulasan.core.logs import configure_logging\n"
        "configure_logging('info', 'json')\n"
        "logging.getLogger('a').info('one')\n"
        "logging.getLogger('b.c').debug('hidden')\n"
        "try:\n    1/0\nexcept ZeroDivisionError:\n    logging.getLogger('d').exception('two')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(ln) for ln in done.stderr.splitlines()]
    assert [(r["logger"], r["message"]) for r in lines] == [("a", "one"), ("d", "two")]
    assert "ZeroDivisionError" in lines[1]["exception"]
