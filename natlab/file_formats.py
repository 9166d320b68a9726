"""JSON Schema of natlab's file formats, generated from the pydantic models that read them.

Editors and CI can check a topology, scenario or matrix file with it before
natlab runs (`natlab schema topology`). The models leave two shapes loose because
the loaders check them with better messages; the schema spells them out from
the same sources: a router's `nat` (a preset, or settings of Behaviour with
an optional preset) and a scenario's steps (one of STEP_SPECS each).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from natlab.core.behaviour import PRESETS, Behaviour
from natlab.scenario.expectations import TYPES
from natlab.scenario.matrix_file import MatrixSpec
from natlab.scenario.model import STEP_SPECS, ScenarioSpec
from natlab.scenario.program_matrix import OUTCOMES
from natlab.topology.schema import TopologySpec

FORMATS = ("topology", "scenario", "matrix")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a topology, scenario or matrix file."""
    if kind == "topology":
        schema = TopologySpec.model_json_schema(by_alias=True)
        _add_nat_forms(schema)
        schema["$defs"]["RouterSpec"]["properties"]["nat"] = {
            "$ref": "#/$defs/Nat",
            "default": "port-restricted",
        }
        schema["title"] = "natlab topology"
    elif kind == "scenario":
        schema = _scenario_schema()
        schema["title"] = "natlab scenario"
    elif kind == "matrix":
        schema = _matrix_schema()
    else:
        raise ValueError(f"no file format {kind!r}; formats: {', '.join(FORMATS)}")
    return {"$schema": DIALECT, **schema}


def _add_nat_forms(schema: dict[str, Any]) -> None:
    """$defs.Nat: a preset's name, or {preset?, setting: value...} (Behaviour's fields)."""
    behaviour = TypeAdapter(Behaviour).json_schema(by_alias=True)
    schema.setdefault("$defs", {}).update(behaviour.pop("$defs", {}))
    presets = {"enum": list(PRESETS), "type": "string"}
    hairpin = behaviour["properties"]["hairpin"]
    default = hairpin.pop("default", None)
    behaviour["properties"]["hairpin"] = {  # true / false still mean on / off
        "anyOf": [hairpin, {"type": "boolean"}],
        "default": default,
    }
    schema["$defs"]["Nat"] = {
        "anyOf": [
            presets,
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"preset": presets, **behaviour["properties"]},
            },
        ],
    }
    schema["$defs"]["NatByRouter"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/Nat"},
        "minProperties": 1,
    }


def _scenario_schema() -> dict[str, Any]:
    steps = list(STEP_SPECS.values())
    _, top = models_json_schema(
        [(ScenarioSpec, "validation"), *((spec, "validation") for spec in steps)],
        by_alias=True,
    )
    defs = top["$defs"]
    schema: dict[str, Any] = defs.pop(ScenarioSpec.__name__)
    schema["$defs"] = defs
    _add_nat_forms(schema)
    schema["properties"]["nat"] = {"$ref": "#/$defs/NatByRouter"}
    schema["properties"]["steps"]["items"] = {
        "oneOf": [{"$ref": f"#/$defs/{spec.__name__}"} for spec in steps]
    }
    defs["NatStepSpec"]["properties"]["nat"] = {"$ref": "#/$defs/NatByRouter"}
    return schema


def _matrix_schema() -> dict[str, Any]:
    """MatrixSpec's, with the NAT types, cells and outcomes the loader accepts spelled out."""
    schema = MatrixSpec.model_json_schema(by_alias=True)
    properties = schema["properties"]
    properties["types"]["items"] = {"enum": list(TYPES), "type": "string"}
    kinds = "|".join(TYPES)
    properties["expect"]["propertyNames"] = {"pattern": rf"^\s*({kinds})\s+x\s+({kinds})\s*$"}
    properties["expect"]["additionalProperties"] = {"enum": list(OUTCOMES), "type": "string"}
    schema["title"] = "natlab matrix"
    return schema
