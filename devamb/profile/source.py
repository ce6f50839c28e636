"""YAML loading that remembers where every key and value stood in the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from devamb.profile.problems import Problem, ProfileError

Path_ = tuple[str | int, ...]


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


def load_source(text: str, file: str) -> Source:
    """Parse YAML text; syntax errors and duplicate keys raise ProfileError with positions."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        raise ProfileError([Problem(file, line, col, "", f"YAML syntax: {message}")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (e.g. a control)
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - before.rfind("\n")
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"YAML syntax: character {char} is not allowed"
        raise ProfileError([Problem(file, line, col, "", message)]) from None
    except RecursionError:
        raise ProfileError([Problem(file, 1, 1, "", "YAML syntax: nested too deep")]) from None
    source = Source(file, None)
    problems: list[Problem] = []
    source.data = _convert(root, (), source, problems) if root is not None else None
    if problems:
        raise ProfileError(problems)
    return source


MAX_DEPTH = 64  # nesting a profile never needs; deeper is refused, not recursed into


def _convert(
    node: yaml.Node,
    path: Path_,
    source: Source,
    problems: list[Problem],
    inside: frozenset[int] = frozenset(),
) -> Any:
    pos = (node.start_mark.line + 1, node.start_mark.column + 1)
    source.values[path] = pos
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in inside or len(path) > MAX_DEPTH:  # `&a [*a]`, or absurdly deep
            why = "an alias that contains itself" if id(node) in inside else "nested too deep"
            problems.append(Problem(source.file, *pos, ".".join(map(str, path)), why))
            return None
        inside = inside | {id(node)}
        if not node.flow_style:
            source.containers.add(path)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = (*path, key)
            pos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                dotted = ".".join(str(p) for p in child)
                problems.append(Problem(source.file, *pos, dotted, f"duplicate key {key!r}"))
                continue
            source.keys[child] = pos
            out[key] = _convert(value_node, child, source, problems, inside)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, i), source, problems, inside)
            for i, item in enumerate(node.value)
        ]
    try:
        return _scalar(node)
    except yaml.MarkedYAMLError as exc:  # a tag SafeLoader does not know: !!python/object, ...
        dotted = ".".join(map(str, path))
        problems.append(Problem(source.file, *pos, dotted, f"YAML: {exc.problem}"))
        return None


_loader = yaml.SafeLoader("")


def _scalar(node: yaml.ScalarNode) -> Any:
    """Resolve a scalar the way SafeLoader would (ints, floats, bools, null, strings)."""
    return _loader.construct_object(node, deep=True)
