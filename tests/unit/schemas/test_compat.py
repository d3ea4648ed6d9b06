"""Event contracts cannot drift silently: every change within a schema version stays readable.

The committed files in ``schemas/json/`` are the v1 contracts. Two checks against them:
- what the current model writes (instances generated from the current model, every optional
  field present or absent) validates against the committed schema: an old reader reads it;
- structurally (:func:`schemas.compat.breaking_changes`), committed vs newly exported: no field
  removed, added or made required, no type, enum value or range narrowed or widened.
Fixing a failure means undoing the change, or bumping ``schema_version`` (a new ``$id``).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from schemas import export
from schemas.codec import encode
from schemas.compat import NEW_READER, OLD_READER, breaking_changes
from schemas.events import EVENT_MODELS, JSON_SCHEMA_DIALECT, json_schemas, schema_id

NAMES = sorted(EVENT_MODELS)


def committed(name: str) -> dict[str, Any]:
    return json.loads((export.JSON_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_committed_schema_names_its_dialect_and_a_versioned_id(name: str) -> None:
    schema = committed(name)
    version = EVENT_MODELS[name].model_fields["schema_version"].default
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["$id"] == schema_id(name, version) == f"urn:ulasan:event:{name}:v{version}"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", NAMES)
def test_the_current_model_breaks_no_reader_of_the_committed_schema(name: str) -> None:
    changes = breaking_changes(committed(name), json_schemas()[name])
    assert not changes, (
        f"{name} changed incompatibly within {committed(name)['$id']}: "
        + "; ".join(changes)
        + ". Undo the change or bump schema_version, then `ulasan schemas export`."
    )


# -- instances of the current model, validated against the committed schema ---------------------


def from_schema(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """JSON values a JSON Schema (the subset pydantic writes) accepts."""
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    if "anyOf" in schema:
        return st.one_of([from_schema(s, root) for s in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return _object(schema, root)
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), root),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 4), 4),
        )
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
        low = schema.get("minLength", 0)
        return st.text(min_size=low, max_size=max(low, min(schema.get("maxLength", 40), 40)))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(
            schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise AssertionError(f"the generator does not know {schema!r}: teach it")


def _object(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    props = schema.get("properties")
    if props is None:  # a mapping: dict[str, X]
        keys = (
            from_schema(schema["propertyNames"], root)
            if "propertyNames" in schema
            else st.text(min_size=1, max_size=10)
        )
        values = from_schema(schema.get("additionalProperties", {}), root)
        return st.dictionaries(keys, values, max_size=3)
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {k: from_schema(v, root) for k, v in props.items() if k in required},
        optional={k: from_schema(v, root) for k, v in props.items() if k not in required},
    )


@pytest.mark.parametrize("name", NAMES)
def test_what_the_current_model_writes_validates_against_the_committed_schema(name: str) -> None:
    model = EVENT_MODELS[name]
    current = json_schemas()[name]
    reader = Draft202012Validator(committed(name))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(instance=from_schema(current, current))
    def check(instance: dict[str, Any]) -> None:
        try:
            event = model.model_validate(instance)
        except ValidationError:
            assume(False)  # the model's own rules (blank text, one subject) are stricter
            return
        written = json.loads(encode(event))
        errors = sorted(e.message for e in reader.iter_errors(written))
        assert not errors, f"a v1 reader of {name} rejects {written}: {errors}"

    check()


# -- the checker itself: each kind of breaking change is caught, annotations are not -------------


def mutated(change: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    base = json_schemas()["ReviewReceived"]
    new = copy.deepcopy(base)
    change(new)
    return base, new


BREAKING = {
    "field removed": (
        lambda s: s["properties"].pop("app_id"),
        "field 'app_id' removed",
        NEW_READER,
    ),
    "field made required": (
        lambda s: s["required"].append("rating"),
        "field 'rating' made required",
        NEW_READER,
    ),
    "field added": (
        lambda s: s["properties"].update(lang={"type": "string"}),
        "field 'lang' added to a closed object",
        OLD_READER,
    ),
    "type narrowed": (
        lambda s: s["properties"].update(rating={"type": "integer", "minimum": 1, "maximum": 5}),
        "rating: type null no longer accepted",
        NEW_READER,
    ),
    "type widened": (
        lambda s: s["properties"]["review_id"].update(type=["string", "integer"]),
        "review_id: type integer newly accepted",
        OLD_READER,
    ),
    "range narrowed": (
        lambda s: s["properties"]["text"].update(maxLength=1000),
        "text: maxLength narrowed from 5000 to 1000",
        NEW_READER,
    ),
    "version changed in place": (
        lambda s: s["properties"]["schema_version"].update(const=2),
        "schema_version: values 1 removed",
        NEW_READER,
    ),
}


@pytest.mark.parametrize("kind", sorted(BREAKING))
def test_each_kind_of_breaking_change_is_reported(kind: str) -> None:
    change, expected, side = BREAKING[kind]
    changes = breaking_changes(*mutated(change))
    assert any(expected in c and side in c for c in changes), changes


def test_an_enum_value_removed_is_reported() -> None:
    base = json_schemas()["LabelFeedback"]
    new = copy.deepcopy(base)
    new["properties"]["label"]["enum"] = ["negative", "positive"]
    assert any("'neutral' removed" in c for c in breaking_changes(base, new))


def test_annotations_and_a_new_version_are_not_breaking() -> None:
    def annotate(s: dict[str, Any]) -> None:
        s["description"] = "reworded"
        s["properties"]["text"]["title"] = "Review text"
        s["properties"]["source"]["examples"] = ["replay"]

    assert breaking_changes(*mutated(annotate)) == []
    base, new = mutated(lambda s: s["properties"].pop("app_id"))
    new["$id"] = "urn:ulasan:event:ReviewReceived:v2"
    assert breaking_changes(base, new) == []
