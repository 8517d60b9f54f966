"""Validate documents against the official OpenAI schemas, from the extract in tests/spec/ (no network, no ../shared)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

EXTRACT = Path(__file__).resolve().parent.parent / "spec" / "openai-schemas.json"


@functools.cache
def _registry() -> Registry:
    spec = json.loads(EXTRACT.read_text(encoding="utf-8"))
    return Registry().with_resource("urn:openai", Resource(contents=spec, specification=DRAFT202012))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=_registry())


def problems(name: str, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator(name).iter_errors(document)
    ]


def assert_valid(name: str, document: Any) -> None:
    found = problems(name, document)
    assert not found, f"{name} does not validate:\n" + "\n".join(found)


def sse_payloads(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def assert_valid_stream(name: str, payloads: Iterable[str]) -> list[dict[str, Any]]:
    chunks = []
    for payload in payloads:
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        assert_valid(name, chunk)
        chunks.append(chunk)
    return chunks
