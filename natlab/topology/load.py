"""Read a topology file and turn every mistake into one clear NatlabError."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ValidationError

from natlab import catalog
from natlab.errors import NatlabError
from natlab.topology.messages import complaint, fix_for
from natlab.topology.model import Topology
from natlab.topology.resolve import resolve
from natlab.topology.schema import TopologySpec
from natlab.topology.yaml_source import Path, YamlDocument, dotted, read_source, read_yaml


def load_topology(path: str | FilePath) -> Topology:
    """Load and validate a topology file or built-in topology (by name); errors name the field."""
    path = catalog.locate("topology", path)
    text = read_source(path, "topology", "main-branch")
    return parse_topology(text, str(path))


def parse_topology(text: str, filename: str = "<topology>") -> Topology:
    doc = read_yaml(text, filename)
    if not isinstance(doc.data, dict):
        raise NatlabError(
            "a topology is a YAML mapping with name, segments, routers and hosts",
            file=filename,
            line=doc.line_of(()),
            fix="start from a copy of a built-in one (natlab topologies lists them)",
        )
    try:
        spec = TopologySpec.model_validate(doc.data)
    except ValidationError as exc:
        raise explain(exc, doc, filename) from None
    return dataclasses.replace(resolve(spec, doc, filename), text=text)


def explain(
    exc: ValidationError,
    doc: YamlDocument,
    filename: str,
    root: type[BaseModel] = TopologySpec,
    at: Path = (),
) -> NatlabError:
    """The one error worth showing: the one that reaches deepest into what the user wrote.

    For a union (stun: bool or a mapping) pydantic reports every member; the
    member that matches the shape written gets further, so its error wins.
    `root` is the model that validated the part of doc at `at` (scenario
    files reuse this for their steps).
    """
    data = _value_at(doc.data, at)
    path, error = max(
        (((*at, *_data_path(e, data)), e) for e in exc.errors()),
        key=lambda found: len(found[0]),
    )
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_fields(path[len(at) : -1], root)
        problem = f"unknown field '{path[-1]}'"
        fix = f"fields allowed here: {', '.join(known)}" if known else None
    elif kind == "missing":
        problem = f"missing required field '{path[-1]}'"
        parent = f"under {dotted(path[:-1])}" if path[:-1] else "at the top level"
        fix = f"add '{path[-1]}:' {parent}"
    elif kind == "model_type":
        problem = f"expected a mapping of fields (got {_value_at(doc.data, path)!r})"
        fix = f"fields allowed here: {', '.join(_known_fields(path[len(at) :], root))}"
    else:
        value = _value_at(doc.data, path)
        problem = f"{complaint(error)} (got {value!r})"
        if kind == "string_pattern_mismatch":
            problem = f"{value!r} is not a valid name"
        fix = fix_for(error, path[-1] if path else None)
    return NatlabError(problem, file=filename, line=doc.line_of(path), field=dotted(path), fix=fix)


def _data_path(error: Any, data: Any) -> Path:
    """Drop pydantic's union-member tags from loc, keeping keys that exist in the data.

    A key missing from the data stays only where the error is about that key:
    a missing or an unknown field.
    """
    loc = error["loc"]
    field_error = error["type"] in ("missing", "extra_forbidden")
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif field_error and index == len(loc) - 1:
            path.append(part)
    return tuple(path)


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _known_fields(path: Path, root: type[BaseModel]) -> list[str]:
    """The field names (as written: aliases) of the model at path, for 'did you mean' fixes."""
    annotation: Any = root
    for part in path:
        model = _model_in(annotation)
        if model is not None and isinstance(part, str) and part in _fields(model):
            annotation = _fields(model)[part].annotation
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        container = [a for a in args if typing.get_origin(a) in (dict, list)]
        origin = typing.get_origin(annotation)
        if origin in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        elif container:
            annotation = typing.get_args(container[0])[-1]
        else:
            return []
    model = _model_in(annotation)
    return list(_fields(model)) if model else []


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None
