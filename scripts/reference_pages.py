"""The docs site's generated reference: Markdown made from the code's own tables at each build.

scripts/mkdocs_hooks.py replaces a line `<!-- reference: NAME -->` in a page with `PAGES[NAME]()`,
so nothing generated is committed and nothing can be stale; tests/test_reference_pages.py holds
each page to the table it is made of. `python3 scripts/reference_pages.py NAME` prints one.

- profile: every key of devamb.yaml (devamb/engine/json_schema.py, from the loader's key tables;
  types, defaults and lines from devamb/engine/profile_docs.py), every target and fault kind
- control-api: every route of devamb/control/routes.py, its summary from EngineControl's docstring
- filters: every term of devamb/inspect/filter_terms.py and the grammar from devamb/inspect/filter
- events: every EngineEvent of devamb/control/events.py, with its fields
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Callable, Iterable


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(head)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _doc(obj: object) -> str:
    """A docstring as one paragraph."""
    return " ".join((inspect.getdoc(obj) or "").split())


# --- the profile --------------------------------------------------------------------------------


def profile() -> str:
    from devamb.engine.json_schema import profile_schema
    from devamb.engine.profile_docs import DOCS, places
    from devamb.faults.registry import KINDS

    out = []
    for section in places(profile_schema()):
        title = f"`{section.path}`" if section.path else "Top level"
        if section.kind and ".faults." in section.path:
            kind = KINDS[section.kind]
            title = f"Fault `{section.kind}`"
            note = (f"`kind: {section.kind}`, beside the keys every fault has; services: "
                    + ", ".join(kind.protocols)
                    + (" (tcp: postgres and redis too)" if "tcp" in kind.protocols else "") + ".")
        elif section.kind:
            title = f"Target `{section.kind}`"
            note = f"A target of kind `{section.kind}`: `{section.path.split('(')[0]}`."
        elif section.path.endswith(".faults.<fault>"):
            title = "Faults: every kind"
            note = (f"`{section.path}`: every fault has these keys, beside its kind's own "
                    "(below).")
        else:
            note = ""
        rows = []
        for key in section.keys:
            doc = DOCS[section.doc_path(key)]
            rows.append((f"`{key}`", doc.type, doc.default, doc.text))
        table = _table(("Key", "Type", "Default", "Description"), rows) if rows else \
            "No keys of its own.\n"
        out.append(f"## {title}\n\n" + (f"{note}\n\n" if note else "") + table)
    return "\n".join(out)


# --- the control API ----------------------------------------------------------------------------


def control_api() -> str:
    from devamb.control.protocol import EngineControl
    from devamb.control.routes import TABLE, Routes

    answers = {"json": "JSON", "text": "text (Prometheus)",
               "stream": "JSON lines (application/x-ndjson)"}
    out = [_table(("Method", "Path", "Summary"), (
        (r.method, f"[`{r.path}`](#{_anchor(r.name)})", _first(getattr(EngineControl, r.name)))
        for r in TABLE
    ))]
    returns = {name: str(hint) for name, hint in Routes.__annotations__.items()}
    for route in TABLE:
        summary = _doc(getattr(EngineControl, route.name)) or "—"
        args = [(f"`{a.key}`", a.where, a.type.__name__, "yes" if a.required else "no")
                for a in route.args]
        part = (f"### `{route.method} {route.path}` {{#{_anchor(route.name)}}}\n\n{summary}\n\n"
                f"Answer: {answers[route.kind]}{_shape_links(returns.get(route.name, ''))}. "
                f"Engine method: `EngineControl.{route.name}`.\n\n")
        if args:
            part += _table(("Parameter", "In", "Type", "Required"), args)
        out.append(part)
    shapes = _shapes_named(returns.values(), nested=True)
    out.append("## Shapes\n\nThe JSON objects the routes answer with, as the control protocol "
               "declares them (`devamb/control/protocol.py`).\n")
    out += [_shape(name, level=3) for name in shapes if name != "Event"]  # events.md has them
    return "\n".join(out)


def _shape_links(annotation: str) -> str:
    """`Route[list[ExchangeSummary]]` → ": a list of [ExchangeSummary](#exchangesummary)"."""
    names = _shapes_named([annotation])
    if not names:
        return ""
    many = "a list of " if annotation.startswith("Route[list[") else ""
    return ": " + many + ", ".join(
        "[event types](events.md)" if n == "Event" else f"[{n}](#{n.lower()})" for n in names)


def _first(obj: object) -> str:
    """A docstring's first sentence."""
    text = _doc(obj)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _anchor(name: str) -> str:
    return "route-" + name.replace("_", "-")


# --- filters ------------------------------------------------------------------------------------


def filters() -> str:
    from devamb.inspect import filter as grammar
    from devamb.inspect.filter_terms import FLAGS, OPERATORS

    terms: dict[type, list[str]] = {}  # one row a term, with its aliases (`~d`, `~dur`)
    for code, make in [*OPERATORS.items(), *FLAGS.items()]:
        terms.setdefault(make if isinstance(make, type) else type(make), []).append(code)
    rows = []
    for term, codes in terms.items():
        written = " / ".join(f"`~{c}{' ' + term.ARG if term.ARG else ''}`" for c in codes)
        rows.append((written, term.HELP))
    combine = (grammar.__doc__ or "").split("\n\n")[-1].strip()
    return (_table(("Term", "Matches"), rows) + "\n## Combining terms\n\n"
            + " ".join(combine.split()) + "\n")


# --- events -------------------------------------------------------------------------------------


def events() -> str:
    from devamb.control import events as ev

    kinds = [c for c in vars(ev).values()
             if isinstance(c, type) and issubclass(c, ev.EngineEvent) and c.TYPE]
    rows = []
    for kind in kinds:
        fields = [f for f in dataclasses.fields(kind)
                  if f.name != "time" and not f.metadata.get("local")]
        keys = ", ".join(f"`{f.name}` ({f.type})" for f in fields) or "—"
        rows.append((f"`{kind.TYPE}`", keys, _doc(kind)))
    shapes = [_shape(name) for name in _shapes_named(str(f.type) for k in kinds
                                                     for f in dataclasses.fields(k))]
    return ("Every event has `type` and `time` (unix seconds); the other keys depend on the "
            "type.\n\n" + _table(("type", "Other keys", "When"), rows) + "\n" + "\n".join(shapes))


def _shapes_named(types: Iterable[str], nested: bool = False) -> list[str]:
    """The control protocol's TypedDicts that these annotations name, in order (`nested`: and
    those their keys name, after them)."""
    from devamb.control import protocol

    found: dict[str, None] = {}
    todo = list(types)
    while todo:
        for word in re.findall(r"\w+", todo.pop(0)):
            value = getattr(protocol, word, None)
            if isinstance(value, type) and hasattr(value, "__required_keys__") \
                    and word not in found:
                found[word] = None
                if nested:
                    todo += [getattr(h, "__forward_arg__", str(h))
                             for h in value.__annotations__.values()]
    return list(found)


def _shape(name: str, level: int = 2) -> str:
    """A TypedDict of the control protocol as a table of its keys."""
    from devamb.control import protocol

    shape = getattr(protocol, name)
    rows = []
    for key, hint in shape.__annotations__.items():
        text = getattr(hint, "__forward_arg__", str(hint))  # annotations are strings there
        bare = re.sub(r"^NotRequired\[(.*)\]$", r"\1", text)
        optional = key in shape.__optional_keys__ or bare != text
        rows.append((f"`{key}`", bare, "no" if optional else "yes"))
    return f"{'#' * level} {name}\n\n" + _table(("Key", "Type", "Always there"), rows)


PAGES: dict[str, Callable[[], str]] = {
    "profile": profile,
    "control-api": control_api,
    "filters": filters,
    "events": events,
}


def expand(markdown: str) -> str:
    """The page with each `<!-- reference: NAME -->` line replaced by that reference."""
    lines = []
    for line in markdown.split("\n"):
        stripped = line.strip()
        if stripped.startswith("<!-- reference:") and stripped.endswith("-->"):
            name = stripped.removeprefix("<!-- reference:").removesuffix("-->").strip()
            lines.append(PAGES[name]())  # KeyError: a marker names no generator
        else:
            lines.append(line)
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PAGES:
        print(f"usage: reference_pages.py {{{','.join(PAGES)}}}", file=sys.stderr)
        return 2
    print(PAGES[argv[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

