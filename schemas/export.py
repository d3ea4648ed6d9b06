"""Export the JSON Schema of every event to ``schemas/json/`` (``ulasan schemas export``)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import json_schemas

JSON_DIR = Path(__file__).resolve().parent / "json"


def render() -> dict[str, str]:
    """File name -> file text for every event's JSON Schema (stable, sorted keys)."""
    return {
        f"{name}.json": json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, schema in json_schemas().items()
    }


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema file under ``directory``, removing stale ones; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of schema files under ``directory`` that differ from the models (or are missing)."""
    files = render()
    out = [
        name
        for name, text in files.items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
    out += [p.name for p in directory.glob("*.json") if p.name not in files]
    return sorted(out)
