"""What every JSON document natlab prints or writes is called: its kind and layout version.

Kept at the bottom of the layers because both the CLI (--json) and the scenario
layer (--json-file reports) write such documents. Every document names its kind
and the version of that kind's layout under SCHEMA_KEY: {"schema": "natlab/status/1",
...}. A version goes up when a field changes meaning or goes away, not when one is added.
"""

from __future__ import annotations

SCHEMA_KEY = "schema"
SCHEMA_VERSIONS = {
    "validate": 1,
    "up": 1,
    "status": 1,
    "verify": 1,
    "reach": 1,
    "probe": 1,
    "nat-show": 1,
    "nat-event": 1,
    "link": 1,
    "run": 1,
    "matrix": 1,
    "demos": 1,
    "topologies": 1,
    "scenarios": 1,
}


def json_document(kind: str, payload: dict) -> dict:
    """payload under its schema name, which comes first so a reader sees it first."""
    return {SCHEMA_KEY: f"natlab/{kind}/{SCHEMA_VERSIONS[kind]}", **payload}
