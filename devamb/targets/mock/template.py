"""A small, safe template syntax for mock responses: `{{source.key}}` with an optional default.

    {{path.id}}             a `{id}` parameter of the route's path
    {{query.page|1}}        a query parameter; `1` when the request has none
    {{headers.X-User}}      a request header (name case-insensitive)
    {{json.user.name}}      a field of the request's JSON body (dotted; list items by index)
    {{method}}              the request method

Nothing is evaluated: an expression only looks a value up. A missing value without a default
renders as ''. In a `json:` response, a string that is exactly one `{{json.…}}` expression keeps
the looked-up value's type (a number stays a number).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devamb.targets.mock.matching import RequestView

SOURCES = ("path", "query", "headers", "json", "method")
_OPEN, _CLOSE = "{{", "}}"
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


class TemplateError(ValueError):
    """A template that cannot be compiled; the message says what and where (1-based offset)."""


@dataclass(frozen=True)
class Expr:
    """One `{{source.key|default}}`; `default` is None when none was written."""

    source: str
    key: str
    default: str | None = None

    def lookup(self, view: RequestView) -> tuple[bool, Any]:
        """(found, value) for this expression in the request."""
        return view.lookup(self.source, self.key)

    def __str__(self) -> str:
        text = f"{self.source}.{self.key}" if self.key else self.source
        return f"{{{{{text}}}}}" if self.default is None else f"{{{{{text}|{self.default}}}}}"


@dataclass(frozen=True)
class Template:
    """Literal text and expressions, in order."""

    parts: tuple[str | Expr, ...]

    @property
    def expressions(self) -> tuple[Expr, ...]:
        return tuple(p for p in self.parts if isinstance(p, Expr))

    def render(self, view: RequestView) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            found, value = part.lookup(view)
            if not found or value is None:
                out.append(part.default or "")
            else:
                out.append(_text(value))
        return "".join(out)

    def render_value(self, view: RequestView) -> Any:
        """Like render, but a lone `{{json.…}}` keeps the type of what it finds."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expr):
            expr = self.parts[0]
            if expr.source == "json":
                found, value = expr.lookup(view)
                if found:
                    return value
        return self.render(view)


def compile_template(text: str) -> Template:
    """Split `text` into literals and expressions; raises TemplateError for bad expressions."""
    parts: list[str | Expr] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            break
        end = text.find(_CLOSE, start + 2)
        if end < 0:
            raise TemplateError(f"unclosed '{{{{' at offset {start + 1}")
        if start > pos:
            parts.append(text[pos:start])
        parts.append(_expression(text[start + 2 : end], start + 1))
        pos = end + 2
    if pos < len(text):
        parts.append(text[pos:])
    return Template(tuple(parts))


def _expression(inner: str, offset: int) -> Expr:
    ref, bar, default = inner.partition("|")
    ref = ref.strip()
    source, _, key = ref.partition(".")
    if source not in SOURCES:
        raise TemplateError(
            f"unknown template value {ref!r} at offset {offset}; "
            f"expected {', '.join(s + '.NAME' if s != 'method' else s for s in SOURCES)}"
        )
    if source == "method":
        if key:
            raise TemplateError(f"'method' takes no name (offset {offset})")
    elif not key or not _KEY.match(key):
        raise TemplateError(f"{ref!r} needs a name after '{source}.' (offset {offset})")
    return Expr(source, key, default.strip() if bar else None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, ensure_ascii=False)
        except RecursionError:  # a request body nested too deep to write back out
            return ""
    return str(value)
