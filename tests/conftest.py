"""Test-wide setup: markers follow the folder (unit / integration / e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS)
        kind = rel.parts[0] if len(rel.parts) > 1 else "unit"
        if kind in {"unit", "integration", "e2e"}:
            item.add_marker(getattr(pytest.mark, kind))
