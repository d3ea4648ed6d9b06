"""Compatibility of an event's JSON Schema across changes: what a v1 reader would reject.

Events stay in Kafka and are replayed, and during a rolling upgrade old and new processes read
each other's records, so a change within one ``schema_version`` must keep *both* directions:

- a reader of the committed schema reads what the new model writes (no field added to a
  closed object, no type, enum value or range widened, no required field dropped);
- the new model reads what was written under the committed schema (no field removed or made
  required, no type, enum value or range narrowed).

Every event is a closed object (``additionalProperties: false``), so within a version only
annotations may change (title, description, examples, defaults); anything else needs a new
``schema_version`` (and a new ``$id``). :func:`breaking_changes` lists what breaks, one line per
change, each naming the path and the direction.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

OLD_READER = "a reader of the committed schema rejects what the new model writes"
NEW_READER = "the new model rejects records written under the committed schema"
#: keywords that describe a value without constraining it
ANNOTATIONS = frozenset({"title", "description", "examples", "default", "$comment"})
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_SAME = ("pattern", "format", "multipleOf", "uniqueItems")
_HANDLED = frozenset(
    {"type", "anyOf", "oneOf", "$ref", "enum", "const", "properties", "required", "items"}
    | {"additionalProperties", "propertyNames", "$defs", "$schema", "$id"}
    | set(_LOWER + _UPPER + _SAME)
)


def breaking_changes(committed: Schema, current: Schema) -> list[str]:
    """Every change from ``committed`` to ``current`` that breaks a reader on either side."""
    out: list[str] = []
    if committed.get("$id") != current.get("$id"):
        return out  # a new version is a new contract: nothing to keep
    _compare(committed, current, committed, current, "", out)
    return out


def _resolve(schema: Schema, root: Schema) -> Schema:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _branches(schema: Schema, root: Schema) -> dict[str, Schema]:
    """The alternatives of a schema by the JSON type they accept (``anyOf`` flattened)."""
    schema = _resolve(schema, root)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        out: dict[str, Schema] = {}
        for alternative in alternatives:
            out.update(_branches(alternative, root))
        return out
    kind = schema.get("type")
    if isinstance(kind, list):
        return {k: {**schema, "type": k} for k in kind}
    if kind is None:
        return {"enum" if "enum" in schema or "const" in schema else "any": schema}
    return {kind: schema}


def _compare(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str, out: list[str]
) -> None:
    old_b, new_b = _branches(old, old_root), _branches(new, new_root)
    where = path or "the event"
    for kind in sorted(old_b.keys() - new_b.keys()):
        out.append(f"{where}: type {kind} no longer accepted ({NEW_READER})")
    for kind in sorted(new_b.keys() - old_b.keys()):
        out.append(f"{where}: type {kind} newly accepted ({OLD_READER})")
    for kind in sorted(old_b.keys() & new_b.keys()):
        _compare_branch(old_b[kind], new_b[kind], old_root, new_root, path, out)


def _compare_branch(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str, out: list[str]
) -> None:
    where = path or "the event"
    _compare_values(old, new, where, out)
    _compare_bounds(old, new, where, out)
    if "properties" in old or "properties" in new:
        _compare_object(old, new, old_root, new_root, path, out)
    for key in ("items", "additionalProperties", "propertyNames"):
        o, n = old.get(key), new.get(key)
        if isinstance(o, dict) and isinstance(n, dict):
            _compare(o, n, old_root, new_root, f"{path}.{key}" if path else key, out)
        elif o != n:
            out.append(f"{where}: {key} changed from {o!r} to {n!r} (either reader may fail)")
    for key in sorted((old.keys() | new.keys()) - _HANDLED - ANNOTATIONS):
        if old.get(key) != new.get(key):
            out.append(f"{where}: {key} changed from {old.get(key)!r} to {new.get(key)!r}")


def _values(schema: Schema) -> set[Any] | None:
    if "const" in schema:
        return {schema["const"]}
    if "enum" in schema:
        return set(schema["enum"])
    return None


def _compare_values(old: Schema, new: Schema, where: str, out: list[str]) -> None:
    o, n = _values(old), _values(new)
    if o is None and n is None:
        return
    if n is not None and (o is None or o - n):
        removed = sorted(map(repr, (o - n) if o is not None else set()))
        what = f"values {', '.join(removed)} removed" if removed else "values restricted"
        out.append(f"{where}: {what} ({NEW_READER})")
    if o is not None and (n is None or n - o):
        added = sorted(map(repr, (n - o) if n is not None else set()))
        what = f"values {', '.join(added)} added" if added else "values no longer restricted"
        out.append(f"{where}: {what} ({OLD_READER})")


def _compare_bounds(old: Schema, new: Schema, where: str, out: list[str]) -> None:
    for key in _LOWER + _UPPER + _SAME:
        o, n = old.get(key), new.get(key)
        if o == n:
            continue
        if key in _SAME:
            out.append(f"{where}: {key} changed from {o!r} to {n!r} (either reader may fail)")
            continue
        narrower = o is None or (n is not None and (n > o if key in _LOWER else n < o))
        if narrower:
            out.append(f"{where}: {key} narrowed from {o!r} to {n!r} ({NEW_READER})")
        else:
            out.append(f"{where}: {key} widened from {o!r} to {n!r} ({OLD_READER})")


def _compare_object(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str, out: list[str]
) -> None:
    where = path or "the event"
    old_p, new_p = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
    for name in sorted(old_p.keys() - new_p.keys()):
        out.append(f"{where}: field {name!r} removed ({NEW_READER})")
        if name in old_req:
            out.append(f"{where}: required field {name!r} no longer written ({OLD_READER})")
    for name in sorted(new_p.keys() - old_p.keys()):
        if old.get("additionalProperties") is False:
            out.append(f"{where}: field {name!r} added to a closed object ({OLD_READER})")
        if name in new_req:
            out.append(f"{where}: new field {name!r} is required ({NEW_READER})")
    for name in sorted(old_p.keys() & new_p.keys()):
        if name in new_req and name not in old_req:
            out.append(f"{where}: field {name!r} made required ({NEW_READER})")
        if name in old_req and name not in new_req:
            out.append(f"{where}: field {name!r} made optional ({OLD_READER})")
        child = f"{path}.{name}" if path else name
        _compare(old_p[name], new_p[name], old_root, new_root, child, out)
