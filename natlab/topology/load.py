"""Read a topology file and turn every mistake into one clear NatlabError."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ValidationError

from natlab.errors import NatlabError
from natlab.topology.model import Topology
from natlab.topology.resolve import resolve
from natlab.topology.schema import TopologySpec
from natlab.topology.yaml_source import Path, YamlDocument, dotted, read_yaml


def load_topology(path: str | FilePath) -> Topology:
    """Load and validate a topology file; raises NatlabError naming file, line and field."""
    path = FilePath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NatlabError(
            "no such topology file",
            file=str(path),
            fix="give the path of a YAML file, e.g. topologies/main-branch.yaml",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NatlabError(f"cannot read the file: {exc}", file=str(path)) from None
    return parse_topology(text, str(path))


def parse_topology(text: str, filename: str = "<topology>") -> Topology:
    doc = read_yaml(text, filename)
    if not isinstance(doc.data, dict):
        raise NatlabError(
            "a topology is a YAML mapping with name, segments, routers and hosts",
            file=filename,
            line=doc.line_of(()),
            fix="start from topologies/main-branch.yaml",
        )
    try:
        spec = TopologySpec.model_validate(doc.data)
    except ValidationError as exc:
        raise _explain(exc, doc, filename) from None
    return dataclasses.replace(resolve(spec, doc, filename), text=text)


_FIXES = {
    "ip_v4_network": "write a network address with its prefix, e.g. 10.0.0.0/24",
    "ip_v4_address": "write a dotted-quad IPv4 address, e.g. 10.0.0.10",
    "string_pattern_mismatch": "use letters, digits, '-', '_' and '.', "
    "starting with a letter or digit",
    "missing": "add the field",
}


def _explain(exc: ValidationError, doc: YamlDocument, filename: str) -> NatlabError:
    error = exc.errors()[0]
    path = _data_path(error["loc"], doc.data)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_fields(path[:-1])
        return NatlabError(
            f"unknown field '{path[-1]}'",
            file=filename,
            line=doc.line_of(path),
            field=dotted(path),
            fix=f"fields allowed here: {', '.join(known)}" if known else None,
        )
    if kind == "missing":
        problem = f"missing required field '{path[-1]}'"
    else:
        value = _value_at(doc.data, path)
        problem = f"{error['msg'][0].lower()}{error['msg'][1:]} (got {value!r})"
    return NatlabError(
        problem,
        file=filename,
        line=doc.line_of(path),
        field=dotted(path),
        fix=_FIXES.get(kind),
    )


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Drop pydantic's union-member tags from loc, keeping keys that exist in the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part.isidentifier():
            path.append(part)  # a missing or unknown field
            break
    return tuple(path)


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _known_fields(path: Path) -> list[str]:
    """The field names of the model that sits at path, for 'did you mean' fixes."""
    annotation: Any = TopologySpec
    for part in path:
        model = _model_in(annotation)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
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
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None
