#!/usr/bin/env python3
"""Copy the OpenAI spec schemas our tests validate against into tests/spec/openai-schemas.json.

    python tools/vendor_openai_schemas.py [path/to/openai-openapi.yaml]

The tests must run without the reference folder, so they read this extract: the named
schemas and everything they reference, with OpenAPI 3.0 `nullable` rewritten as JSON Schema.
Re-run when the reference spec changes.
"""

from __future__ import annotations

import json
import pathlib
import sys

import yaml

ROOTS = [
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
]
HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parent.parent / "shared" / "reference" / "openai-openapi.yaml"
OUT = HERE.parent / "tests" / "spec" / "openai-schemas.json"
PREFIX = "#/components/schemas/"


def nullable_to_json_schema(node):
    if isinstance(node, list):
        return [nullable_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: nullable_to_json_schema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "type" not in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def references(node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(PREFIX):
                found.add(ref[len(PREFIX) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def main(argv: list[str]) -> int:
    spec_path = pathlib.Path(argv[0]) if argv else DEFAULT_SPEC
    with spec_path.open(encoding="utf-8") as f:
        schemas = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]["schemas"]
    wanted, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(references(schemas[name]) - wanted)
    extract = {"components": {"schemas": {n: nullable_to_json_schema(schemas[n]) for n in sorted(wanted)}}}
    OUT.write_text(json.dumps(extract, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(wanted)} schemas to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
