"""Routes → a tidy YAML mock file: what recording and HAR import produce, written atomically.

Drafts are plain: one exact request (method, path, query, distinguishing JSON fields) and the
answers it got, in order. Several different answers become a `sequence`. Binary bodies go to files
in a folder beside the mock (`payments.files/`); strings holding `{{` get `template: false`.
"""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

_NO_JSON = object()


@dataclass
class Answer:
    """One recorded response. Exactly one of `body` (text), `json` or `data` (bytes) may be set."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None
    json: Any = _NO_JSON
    data: bytes | None = None
    note: str | None = None  # written as a comment above the respond

    @property
    def has_json(self) -> bool:
        return self.json is not _NO_JSON

    def key(self) -> tuple[Any, ...]:
        """What makes two answers the same answer."""
        json_key = repr(self.json) if self.has_json else None
        return (self.status, tuple(self.headers), self.body, json_key, self.data)


@dataclass
class RouteDraft:
    method: str
    path: str  # a path pattern: recorded `*`, `{` and `}` are written as `*`
    query: list[tuple[str, str]] = field(default_factory=list)
    json: dict[str, Any] = field(default_factory=dict)  # dotted field -> value or {present: …}
    answers: list[Answer] = field(default_factory=list)
    name: str | None = None

    @property
    def constraints(self) -> int:
        return len(self.query) + len(self.json)

    def responds(self) -> list[Answer]:
        """The answers to write: one when they are all the same, else each in turn."""
        if all(a.key() == self.answers[0].key() for a in self.answers[1:]):
            return self.answers[:1]
        return self.answers


def literal_path(path: str) -> str:
    """A recorded path as a pattern that matches it: pattern characters become `*`."""
    return re.sub(r"[*{}]+", "*", path)


def mock_document(
    routes: list[RouteDraft], files_folder: str, comment: str = ""
) -> tuple[str, dict[str, bytes]]:
    """The YAML text, and the files (relative name -> bytes) its `file:` bodies refer to."""
    files: dict[str, bytes] = {}
    chunks: list[str] = []
    for line in comment.splitlines():
        chunks.append(f"# {line}".rstrip() + "\n")
    chunks.append("routes:\n")
    if not routes:
        chunks[-1] = "routes: []\n"
    for index, route in enumerate(routes):
        item: dict[str, Any] = {"name": route.name or _name(route)}
        match: dict[str, Any] = {"method": route.method, "path": route.path}
        if route.query:
            match["query"] = dict(route.query)
        if route.json:
            match["json"] = route.json
        item["match"] = match
        responds = route.responds()
        notes: list[str] = []
        written = []
        for turn, answer in enumerate(responds):
            respond = _respond(answer, files, files_folder, f"{index:03d}-{turn}")
            written.append(respond)
            if answer.note:
                where = f" (answer {turn + 1})" if len(responds) > 1 else ""
                notes.append(f"{answer.note}{where}")
        if len(written) == 1:
            item["respond"] = written[0]
        else:
            item["sequence"] = written
        chunks.append("\n")
        chunks.extend(f"  # {note}\n" for note in notes)
        text = yaml.dump([item], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        chunks.append(_indent(text, "  "))
    return "".join(chunks), files


def _name(route: RouteDraft) -> str:
    query = f"?{urlencode(route.query)}" if route.query else ""
    return f"{route.method} {route.path}{query}"


def write_mock_file(routes: list[RouteDraft], to: Path, comment: str = "") -> Path:
    """Write the mock file (and its body files) atomically: a watcher never sees half a file."""
    to = Path(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    folder = f"{to.stem}.files"
    text, files = mock_document(routes, folder, comment)
    for name, data in files.items():
        target = to.parent / name
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
    atomic_write(to, text.encode())
    return to


def _respond(answer: Answer, files: dict[str, bytes], folder: str, stem: str) -> dict[str, Any]:
    out: dict[str, Any] = {"status": answer.status}
    if answer.headers:
        out["headers"] = dict(answer.headers)
    if answer.has_json:
        out["json"] = answer.json
    elif answer.body is not None:
        out["body"] = answer.body
    elif answer.data is not None:
        name = f"{folder}/{stem}{_extension(answer.headers)}"
        files[name] = answer.data
        out["file"] = name
    texts = [v for _, v in answer.headers]
    if answer.body is not None:
        texts.append(answer.body)
    if answer.has_json:
        texts.extend(_strings(answer.json))
    if any("{{" in t for t in texts):
        out["template"] = False
    return out


def _extension(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            return mimetypes.guess_extension(value.split(";")[0].strip()) or ".bin"
    return ".bin"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(True))


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key, multi-line strings as `|` blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
