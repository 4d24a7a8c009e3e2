"""JSON Schema of flow files, for editors that complete and check YAML as it is typed.

Point an editor at it (for example the YAML language server's
``# yaml-language-server: $schema=flow.schema.json`` comment). It covers the shape of
each file; references between nodes are checked by ``acd.ivr.validate``.
"""

from __future__ import annotations

from typing import Any

from acd.ivr.model import Flow

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema() -> dict[str, Any]:
    """The schema of one flow file, as a JSON-ready dict."""
    schema = Flow.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://acd.invalid/schemas/ivr-flow.json",
        "title": "acd IVR flow",
        "description": (
            "One IVR flow of the acd controller: flow name, start node and nodes "
            "(see ivr_flows/README.md)."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


if __name__ == "__main__":  # pragma: no cover - a convenience for editor setup
    import json

    print(json.dumps(flow_json_schema(), indent=2))
