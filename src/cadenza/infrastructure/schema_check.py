"""JSON Schema checks for definition validation, backed by ``jsonschema`` (draft 2020-12)."""

from __future__ import annotations

import functools
import json

from jsonschema import Draft202012Validator

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.validation import child_path


class JsonSchemaChecks:
    """The ``schema`` part of ``cadenza.domain.validation.Checks``."""

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        """Every violation of ``schema`` by ``value``: (relative path like ``[0].port``, reason)."""
        validator = _validator(json.dumps(schema, sort_keys=True))
        found = [
            (functools.reduce(child_path, error.absolute_path, ""), error.message)
            for error in validator.iter_errors(value)
        ]
        return sorted(found)


# Keyed by the schema's text, not id(): an id can be reused once a schema is garbage collected.
@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    schema = json.loads(schema_text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
