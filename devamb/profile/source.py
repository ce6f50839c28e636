"""YAML loading that remembers where every key and value stood in the file.

A profile is read by people's editors and by `devamb`; the loader is bounded so that no file
can make it hang or exhaust memory: a file is at most MAX_FILE_BYTES, holds at most MAX_NODES
YAML nodes nested at most MAX_DEPTH deep, and its aliases add at most MAX_ALIAS_VALUES values
(a "billion laughs" alias bomb stops there, with the position of the alias that crossed it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, Event
from yaml.resolver import Resolver

from devamb.profile.problems import Problem, ProfileError

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 8 * 1024 * 1024  # a profile or mock file; keep big bodies in body files
MAX_NODES = 1_000_000  # YAML nodes (keys and values) in one file: 20,000 recorded routes fit
MAX_ALIAS_VALUES = 100_000  # values that aliases add when expanded
MAX_DEPTH = 64  # nesting a profile never needs; deeper is refused, not recursed into


@dataclass
class Source:
    """Plain data from a YAML file plus the 1-based (line, col) of each value and each key."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    containers: set[Path_] = field(default_factory=set)

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Where `path` stands; falls back to the nearest ancestor that is in the file.

        A block mapping or list is placed at its key: its own start is its first child.
        """
        table = self.keys if key or (path in self.containers and path in self.keys) else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.values:
                return self.values[path]
        return (1, 1)


# -- reading a file ------------------------------------------------------------------------------


def read_source(path: Path, file: str) -> Source:
    """Read and parse a YAML file; raises OSError when unreadable, ProfileError when wrong."""
    return load_source(read_text(path, file), file)


def read_text(path: Path, file: str) -> str:
    """The file's text: at most MAX_FILE_BYTES, UTF-8; otherwise a positioned ProfileError."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        actual = f"{size / 2**20:.1f} MiB" if size > MAX_FILE_BYTES else "larger"
        message = (
            f"the file is {actual}; devamb reads YAML files of at most "
            f"{MAX_FILE_BYTES // 2**20} MiB (keep large bodies in body files)"
        )
        raise ProfileError([Problem(file, 1, 1, "", message)])
    return decode_utf8(data, file)


def decode_utf8(data: bytes, file: str) -> str:
    """Decode UTF-8; the first byte that is not UTF-8 is reported at its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[line_start : exc.start].decode("utf-8")) + 1
        raise ProfileError([Problem(file, line, col, "", "not UTF-8")]) from None


# -- parsing -------------------------------------------------------------------------------------


class _Limit(Exception):
    """A bound of the loader was crossed at `mark`."""

    def __init__(self, mark: Any, message: str, path: Path_ = ()) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.path = path


@dataclass(frozen=True)
class Alias:
    """Where an alias (`*name`) stood, and the node it names."""

    node: yaml.Node
    mark: Any


class _BoundedComposer(Composer):
    """PyYAML's composer, counting nodes and depth as it goes, keeping aliases visible."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes = 0
        self.depth = 0

    if TYPE_CHECKING:  # given by the parser each loader mixes in (yaml's Parser or CParser)
        def check_event(self, *choices: type[Event]) -> bool: ...
        def peek_event(self) -> Event: ...

    def compose_node(self, parent: Any, index: Any) -> Any:
        """The node, or an `Alias` in its place (the graph then holds Alias objects too)."""
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            assert node is not None  # an alias names a node composed before it (or raises)
            return Alias(node, mark)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            mark = self.peek_event().start_mark
            raise _Limit(mark, f"more than {MAX_NODES} YAML nodes (keys and values) in one file")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Limit(self.peek_event().start_mark, "nested too deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _PyLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
                _BoundedComposer, Resolver):
    """The pure-Python parser: slow, but its error messages are the ones devamb shows."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _BoundedComposer.__init__(self)
        Resolver.__init__(self)


try:
    from yaml._yaml import CParser

    class _CLoader(_BoundedComposer, CParser, Resolver):
        """libyaml's parser (several times faster) under the same bounded composer."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            Resolver.__init__(self)

except ImportError:  # PyYAML built without libyaml
    _CLoader = None  # type: ignore[assignment,misc]  # the class name, None: "no libyaml here"


REPARSE_BYTES = 1024 * 1024  # above this, libyaml's own error message is shown


def _compose(text: str) -> yaml.Node | None:
    """The document's node graph. libyaml parses it; if libyaml finds it wrong, the Python
    parser reads it again, for the error message users know (or a result, where they differ),
    unless the file is so large that the slower parser would take long to say so."""
    if _CLoader is not None:
        loader = _CLoader(text)
        try:
            return loader.get_single_node()
        except yaml.YAMLError:
            if len(text) > REPARSE_BYTES:
                raise
        except UnicodeError:  # lone surrogates in a str: the Python reader names them
            pass
        finally:
            loader.dispose()
    py_loader = _PyLoader(text)
    try:
        return py_loader.get_single_node()
    finally:
        py_loader.dispose()


def load_source(text: str, file: str) -> Source:
    """Parse YAML text; syntax errors, duplicate keys and crossed bounds raise ProfileError."""
    try:
        root = _compose(text)
    except _Limit as exc:
        line, col = exc.mark.line + 1, exc.mark.column + 1
        raise ProfileError([Problem(file, line, col, "", _limit_message(exc.message))]) from None
    except yaml.MarkedYAMLError as exc:
        raise ProfileError([_syntax_problem(exc, file)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (e.g. a control)
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - before.rfind("\n")
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"YAML syntax: character {char} is not allowed"
        raise ProfileError([Problem(file, line, col, "", message)]) from None
    except RecursionError:
        raise ProfileError([Problem(file, 1, 1, "", "YAML syntax: nested too deep")]) from None
    source = Source(file, None)
    if root is None:
        return source
    converter = _Converter(source)
    try:
        source.data = converter.convert(root, (), frozenset())
    except _Limit as exc:
        dotted = ".".join(map(str, exc.path))
        problem = Problem(file, exc.mark.line + 1, exc.mark.column + 1, dotted, exc.message)
        raise ProfileError([problem]) from None
    if converter.problems:
        raise ProfileError(converter.problems)
    return source


def _limit_message(message: str) -> str:
    if message == "nested too deep":
        return f"YAML: nested more than {MAX_DEPTH} levels deep"
    return f"YAML: {message}; split it (a mock target per file) or keep bodies in body files"


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem == "second occurrence":  # a duplicate anchor
        message = exc.context.split(";")[0]
    return Problem(file, line, col, "", f"YAML syntax: {message}")


class _Converter:
    """Turns the node graph into plain data, recording positions, within the alias budget."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()  # one per file: it caches what it built
        self.expanding = 0  # > 0 while inside an alias's expansion
        self.outer_alias: tuple[Any, Path_] | None = None
        self.added = 0  # values aliases added

    def convert(self, node: yaml.Node | Alias, path: Path_, inside: frozenset[int]) -> Any:
        if isinstance(node, Alias):
            return self._expand(node, path, inside)
        if self.expanding:
            self.added += 1
            if self.added > MAX_ALIAS_VALUES:
                assert self.outer_alias is not None
                mark, where = self.outer_alias
                raise _Limit(
                    mark,
                    f"aliases expand to more than {MAX_ALIAS_VALUES} values "
                    "(a YAML alias bomb?); a profile never needs that many",
                    where,
                )
        source = self.source
        pos = (node.start_mark.line + 1, node.start_mark.column + 1)
        source.values[path] = pos
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in inside or len(path) > MAX_DEPTH:  # `&a [*a]`, or absurdly deep
                why = "an alias that contains itself" if id(node) in inside else "nested too deep"
                self.problems.append(Problem(source.file, *pos, ".".join(map(str, path)), why))
                return None
            inside = inside | {id(node)}
            if not node.flow_style:
                source.containers.add(path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, inside)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i), inside) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:  # a tag SafeLoader does not know: !!python/object
            dotted = ".".join(map(str, path))
            self.problems.append(Problem(source.file, *pos, dotted, f"YAML: {exc.problem}"))
            return None

    def _expand(self, alias: Alias, path: Path_, inside: frozenset[int]) -> Any:
        if not self.expanding:
            self.outer_alias = (alias.mark, path)
        self.expanding += 1
        try:
            return self.convert(alias.node, path, inside)
        finally:
            self.expanding -= 1

    def _mapping(self, node: yaml.MappingNode, path: Path_, inside: frozenset[int]) -> Any:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, Alias):
                key_node = key_node.node
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = (*path, key)
            pos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                dotted = ".".join(str(p) for p in child)
                message = f"duplicate key {key!r}"
                self.problems.append(Problem(self.source.file, *pos, dotted, message))
                continue
            self.source.keys[child] = pos
            out[key] = self.convert(value_node, child, inside)
        return out
