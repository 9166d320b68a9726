"""YAML that remembers where each value was written, read within fixed bounds.

Error messages name the line of the offending field, so the loader keeps a map
from field path (a tuple of keys and list indices) to line number. Duplicate
keys are an error here: PyYAML would silently keep the last one.

A file is untrusted input: a few hundred bytes of nested aliases expand to
gigabytes, an anchor can contain itself, and PyYAML's composer recurses once
per nesting level. So the file's size, its nesting depth and the number of
values it expands to are bounded, and the expanded size is counted on the
composed graph (each anchor once) before anything is expanded. Keys are names,
so a key YAML would read as a boolean, number or null is refused as written.
Merge keys (`<<: *anchor`) work as in YAML 1.1; tags other than YAML's own
scalar types are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

from natlab.errors import NatlabError

Path = tuple[str | int, ...]

MAX_BYTES = 256 * 1024  # a large topology or scenario is a few kilobytes
MAX_DEPTH = 32  # mappings and lists inside each other; files need about 6
MAX_VALUES = 20_000  # every key and value once aliases are expanded

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{kind}" for kind in ("str", "int", "float", "bool", "null", "timestamp")}
_MERGE = f"{_TAG}merge"
_VALUE = f"{_TAG}value"  # a plain `=`: PyYAML resolves it but cannot construct it
_KEY_KINDS = {"int": "a number", "float": "a number", "bool": "a boolean", "null": "null"}


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
        with path.open("rb") as source:
            raw = source.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise NatlabError(
            f"no such {kind} file",
            file=str(path),
            fix=f"give the path of a YAML file, e.g. {example}",
        ) from None
    except OSError as exc:
        raise NatlabError(f"cannot read the file: {exc.strerror or exc}", file=str(path)) from None
    if len(raw) > MAX_BYTES:
        raise NatlabError(
            f"the file is larger than {MAX_BYTES // 1024} KiB; a {kind} is a few kilobytes",
            file=str(path),
            fix=f"give a {kind} file (YAML), e.g. {example}",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NatlabError(
            f"not a text file: byte {exc.start} is not UTF-8",
            file=str(path),
            fix=f"give a {kind} file (YAML), e.g. {example}",
        ) from None


def read_yaml(text: str, filename: str) -> YamlDocument:
    """text (read_source bounds a file's size) as plain data; a NatlabError names file and line."""
    try:
        composer = _Composer(text, filename)  # the reader refuses control characters at once
        try:
            root = composer.get_single_node()
        finally:
            composer.dispose()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except yaml.reader.ReaderError as exc:
        raise NatlabError(
            f"not valid YAML: character #x{exc.character:04x} is not allowed",
            file=filename,
            line=text.count("\n", 0, exc.position) + 1,
            fix='remove it; in double quotes it may be written escaped, e.g. "\\x01"',
        ) from None
    except yaml.YAMLError as exc:
        raise NatlabError(f"not valid YAML: {exc}", file=filename) from None
    doc = YamlDocument(data=None)
    if root is not None:
        _measure(root, filename)
        doc.data = _Converter(filename, doc.lines).convert(root, ())
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


@dataclass
class _Alias:
    """An alias as written (`*name` on `line`) in the composed graph, pointing at its anchor."""

    anchor: str
    line: int
    node: yaml.Node


def _shown(text: str) -> str:
    """A scalar as written, cut short for a message."""
    return text if len(text) <= 40 else text[:37] + "..."


def _tag(node: yaml.Node) -> str:
    """A tag as written: !!binary for YAML's own, !custom for the user's."""
    return "!!" + node.tag.removeprefix(_TAG) if node.tag.startswith(_TAG) else node.tag


def _target(node: Any) -> yaml.Node:
    return node.node if isinstance(node, _Alias) else node


class _Composer(yaml.SafeLoader):
    """PyYAML's composer, keeping aliases visible and refusing nesting past MAX_DEPTH.

    Its recursion is the only one that follows the file's nesting, so the
    depth is bounded here, before Python's own recursion limit is reached.
    """

    def __init__(self, text: str, filename: str) -> None:
        super().__init__(text)
        self.filename = filename
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)  # the anchored node, as PyYAML has it
            return _Alias(event.anchor, event.start_mark.line + 1, node)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise NatlabError(
                    f"nested deeper than {MAX_DEPTH} levels",
                    file=self.filename,
                    line=self.peek_event().start_mark.line + 1,
                    fix="a topology or scenario nests a few levels; check the brackets or "
                    "indentation here",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _measure(root: yaml.Node, filename: str) -> None:
    """Refuse a graph that refers to itself, or expands too deep or to too many values.

    Sizes are counted per node and remembered, so each anchored node is
    counted once however often it is aliased: the cost is the file's, not
    the expansion's. The error names the alias that crossed the bound.
    """
    measured: dict[int, tuple[int, int]] = {}  # node -> (values, levels incl. its own), once done
    inside: set[int] = set()

    def fail(alias: _Alias | None, problem: str, fix: str) -> NatlabError:
        if alias is None:
            return NatlabError(problem, file=filename, fix=fix)
        return NatlabError(
            f"alias *{alias.anchor} {problem}", file=filename, line=alias.line, fix=fix
        )

    def measure(node: Any, depth: int, alias: _Alias | None) -> int:
        """The values under node, expanded; raises once depth plus its levels is too deep."""
        if isinstance(node, _Alias):
            alias = node
            node = node.node
        if id(node) in inside:
            raise fail(
                alias,
                "refers to the mapping or list that contains it, which would never end",
                "an anchored value cannot contain an alias to itself; remove the alias",
            )
        if id(node) not in measured:
            measured[id(node)] = expand(node, depth, alias)
        values, levels = measured[id(node)]
        if depth + levels - 1 > MAX_DEPTH:
            raise fail(
                alias,
                f"nests values deeper than {MAX_DEPTH} levels",
                "use fewer aliases in aliases",
            )
        return values

    def expand(node: yaml.Node, depth: int, alias: _Alias | None) -> tuple[int, int]:
        if isinstance(node, yaml.ScalarNode):
            return 1, 1
        children = node.value if isinstance(node, yaml.SequenceNode) else sum(node.value, ())
        inside.add(id(node))
        values, levels = 1, 1
        for child in children:
            values += measure(child, depth + 1, alias)
            levels = max(levels, 1 + measured[id(_target(child))][1])
            if values > MAX_VALUES:
                culprit = child if isinstance(child, _Alias) else alias
                raise fail(
                    culprit,
                    f"expands the file to more than {MAX_VALUES} values",
                    "a topology or scenario needs far fewer; write the values out, "
                    "or alias smaller pieces",
                )
        inside.discard(id(node))
        return values, levels

    measure(root, 1, None)


class _Converter:
    """The composed graph as plain dicts, lists and scalars, each path's line recorded."""

    def __init__(self, filename: str, lines: dict[Path, int], constructor: Any = None) -> None:
        self.filename = filename
        self.lines = lines
        self.constructor = constructor or yaml.SafeLoader("")  # builds scalars only

    def fail(self, node: Any, path: Path, problem: str, fix: str) -> NatlabError:
        return NatlabError(
            problem,
            file=self.filename,
            line=node.start_mark.line + 1,
            field=dotted(path) or None,
            fix=fix,
        )

    def convert(self, node: Any, path: Path) -> Any:
        node = _target(node)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node, path, f"{_TAG}map")
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, path, f"{_TAG}seq")
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        return self.scalar(node, path)

    def check_tag(self, node: yaml.Node, path: Path, *allowed: str) -> None:
        if node.tag not in allowed:
            raise self.fail(
                node,
                path,
                f"tag {_tag(node)} is not something natlab reads",
                "remove the tag: natlab files are plain YAML (text, numbers, true/false, "
                "mappings and lists)",
            )

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag in (_VALUE, _MERGE):  # `=`, or `<<` not as a key: text
            return node.value
        self.check_tag(node, path, *_SCALAR_TAGS)
        try:
            return self.constructor.construct_object(node)
        # e.g. a date 2024-13-01; `!!bool maybe` (PyYAML looks the word up: KeyError)
        except (ValueError, OverflowError, KeyError, yaml.YAMLError):
            raise self.fail(
                node,
                path,
                f"'{_shown(node.value)}' is not a valid {node.tag.removeprefix(_TAG)}",
                f"quote it if it is text: '{_shown(node.value)}'",
            ) from None

    def key(self, node: Any, path: Path) -> str:
        """A key is a name: the text written, refused if YAML would read it as anything else."""
        node = _target(node)
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(
                node, path, "a key must be a name, not a list or mapping", "write a name"
            )
        if node.tag == f"{_TAG}str":
            return node.value
        self.check_tag(node, path, *_SCALAR_TAGS)
        kind = _KEY_KINDS.get(node.tag.removeprefix(_TAG), "a date")
        raise self.fail(
            node,
            (*path, _shown(node.value)),
            f"name '{_shown(node.value)}' is not text: YAML reads it as {kind}",
            f"quote it: '{_shown(node.value)}'",
        )

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        """Keys in the order written; a merge key's keys where the `<<` is, written keys win."""
        written = {self.key(key, path): key for key, _ in node.value if _target(key).tag != _MERGE}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if _target(key_node).tag == _MERGE:
                self.merge(value_node, path, result, written)
                continue
            key = _target(key_node).value
            if key in result:
                raise self.fail(
                    _target(key_node),
                    path,
                    f"duplicate key '{key}'",
                    "each key may appear once in a mapping; merge or rename the two",
                )
            child = (*path, key)
            self.lines[child] = _target(key_node).start_mark.line + 1
            result[key] = self.convert(value_node, child)
        return result

    def merge(self, value: Any, path: Path, result: dict[str, Any], written: dict) -> None:
        """`<<: *a` or `<<: [*a, *b]`: keys not written here and not merged before."""
        node = _target(value)
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in map(_target, sources):
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(
                    source,
                    path,
                    "a merge key '<<' takes a mapping or a list of mappings",
                    "write <<: *anchor, where &anchor names a mapping",
                )
            lines: dict[Path, int] = {}
            merged = _Converter(self.filename, lines, self.constructor).mapping(source, path)
            for key, item in merged.items():
                if key in written or key in result:
                    continue
                result[key] = item
                child = (*path, key)
                self.lines.update({p: n for p, n in lines.items() if p[: len(child)] == child})


def dotted(path: Path) -> str:
    """A field path as users write it: routers.main.forwards[0].port."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
