"""YAML that remembers where each value was written.

Error messages name the line of the offending field, so the loader keeps a map
from field path (a tuple of keys and list indices) to line number. Duplicate
keys are an error here: PyYAML would silently keep the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

from natlab.errors import NatlabError

Path = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Plain Python data plus the line where each field path starts."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of the deepest known prefix of path."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def read_source(path: FilePath, kind: str, example: str) -> str:
    """The text of a topology or scenario file; a clear NatlabError if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NatlabError(
            f"no such {kind} file",
            file=str(path),
            fix=f"give the path of a YAML file, e.g. {example}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NatlabError(f"cannot read the file: {exc}", file=str(path)) from None


def read_yaml(text: str, filename: str) -> YamlDocument:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except yaml.YAMLError as exc:
        raise NatlabError(f"not valid YAML: {exc}", file=filename) from None
    doc = YamlDocument(data=None)
    if root is None:
        return doc
    doc.data = _convert(root, (), doc, filename)
    return doc


def _syntax_error(exc: yaml.MarkedYAMLError, filename: str) -> NatlabError:
    """Where the parser gave up, and where the construct it was reading began."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = f"not valid YAML: {exc.problem or exc.context}"
    fix = "check the indentation and punctuation on that line"
    started = exc.context_mark.line + 1 if exc.context_mark and exc.problem else None
    if started is not None and started != line:
        problem += f" ({exc.context} that starts on line {started})"
        fix = f"check the indentation and punctuation from line {started} to line {line}"
    if "'\\t'" in problem:
        fix = "indent with spaces; YAML does not allow tabs"
    return NatlabError(problem, file=filename, line=line, fix=fix)


def _convert(node: yaml.Node, path: Path, doc: YamlDocument, filename: str) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                raise NatlabError(
                    f"duplicate key '{key}'",
                    file=filename,
                    line=key_node.start_mark.line + 1,
                    field=dotted(path) or None,
                    fix="each key may appear once in a mapping; merge or rename the two",
                )
            child = (*path, str(key))
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, child, doc, filename)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, index), doc, filename) for index, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def dotted(path: Path) -> str:
    """A field path as users write it: routers.main.forwards[0].port."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
