"""JSON Schemas of every document imagine reads or writes, shipped as package data."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from imagine.kernel import Finding


@cache
def load(name: str) -> dict[str, Any]:
    """The schema ``<name>.schema.json`` as a dict."""
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def validate(doc: Any, name: str, *, file: str | None = None, max_errors: int = 50) -> list[Finding]:
    """Validate ``doc`` against schema ``name``; one Finding per error, placed by JSON pointer."""
    import jsonschema

    schema = load(name)
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        out.append(Finding("schema", err.message, file=file, place=_pointer(err.absolute_path)))
        if len(out) >= max_errors:
            break
    return out
