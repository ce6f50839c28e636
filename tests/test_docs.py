"""The docs cannot drift: README.md and docs/**/*.md are checked against devamb itself.

- Every fenced ```yaml block validates with devamb's own loader
  (`devamb.engine.assembly.load_profile`, what `devamb validate` runs).
- Every relative link points to a file that exists, and every `#anchor` to a heading of it (under
  both GitHub's and MkDocs' heading ids).
- Every `devamb COMMAND …` shown in code (a ```sh block, an inline `code` span, or a `#   devamb …`
  comment of a shipped profile) is a command of the CLI, with the subcommands and `--options` it
  has (for `fault add`, the `--KEY` settings of the fault kind, as the loader knows them).
- Every key the loader accepts, every target kind and every fault kind is named on its page, and
  every control API route is listed in docs/control-api.md.

Snippet convention (YAML blocks)
--------------------------------
A ```yaml block with a top-level `services:` key is a whole profile and must load as written.
Every other ```yaml block says what it is in an HTML comment on the line just before its fence:

    <!-- snippet: KIND [tcp] [invalid] -->

KIND is one of:

- `service`   the keys of one service (`targets:`, `faults:`, …): it is placed under
              `services: {example: …}`, given `listen: 0` and, when it has several targets and no
              `target:`, its first target as the active one;
- `services`  a mapping of service names to services, placed under `services:`;
- `faults`    a mapping of fault names to faults, given to a service whose target is `echo`;
- `mock-file` a mock file, loaded through a `mock:` target that names it;
- `yaml`      other YAML: it only has to parse.

`tcp` makes the wrapping service a `protocol: tcp` one. `invalid` marks a block that shows a
mistake: it must fail to load; when it is a whole profile and the next fenced block is ```text,
each line of that block must be one of the problems reported, exactly (the file is devamb.yaml).

Before loading, every `${VAR}` of the snippet is set, and every file it names is created beside it
(a mock file as an empty mock, a `tls: {ca: FILE}` as a real PEM certificate, a mock's `file:`
body as a few bytes).
"""

from __future__ import annotations

import importlib
import re
import tempfile
import textwrap
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from devamb.cli.reference import loaded
from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from tests.certs import ca_pem, certificates

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
KINDS = ("profile", "service", "services", "faults", "mock-file", "yaml")
FLAGS = ("tcp", "invalid")

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<words>[\w\s-]+?)\s*-->\s*$")
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


# --- reading the pages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: tuple[str, ...] | None  # the words of a `<!-- snippet: … -->` just before it
    next_block: Block | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, in order, each knowing the one after it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str, str, tuple[str, ...] | None]] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m["indent"]), m["fence"], m["lang"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        previous = lines[start - 1] if start else ""
        marker = MARKER.match(previous)
        words = tuple(marker["words"].split()) if marker else None
        found.append((start + 1, lang, "\n".join(body) + "\n", words))
    result: list[Block] = []
    for line, lang, text, words in reversed(found):
        result.append(Block(page, line, lang, text, words, result[-1] if result else None))
    return result[::-1]


def prose(page: Path) -> str:
    """The page without its fenced blocks (links and inline code are looked for in this)."""
    out: list[str] = []
    fence: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence = m["fence"]
            out.append("")
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(
            fence[0]
        ):
            fence = None
            out.append("")
        else:
            out.append("" if fence is not None else line)
    return "\n".join(out)


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page)]


def yaml_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.lang in ("yaml", "yml")]


# --- YAML snippets ------------------------------------------------------------------------------


def _structure(text: str) -> Any:
    """The snippet's shape, every scalar a string (so `on:` stays a key named "on")."""
    return yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader builds no objects


def kind_of(block: Block) -> tuple[str, set[str]]:
    words = block.marker or ()
    kinds = [w for w in words if w in KINDS]
    unknown = [w for w in words if w not in KINDS and w not in FLAGS]
    assert not unknown, f"{block.where}: unknown snippet words {unknown}; use {KINDS} {FLAGS}"
    flags = {w for w in words if w in FLAGS}
    if kinds:
        assert len(kinds) == 1, f"{block.where}: one snippet kind, not {kinds}"
        return kinds[0], flags
    data = _structure(block.text)
    if isinstance(data, dict) and "services" in data:
        return "profile", flags
    raise AssertionError(
        f"{block.where}: a ```yaml block without 'services:' needs a marker on the line before "
        f"it, e.g. <!-- snippet: service --> (see the top of tests/test_docs.py)"
    )


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(textwrap.dedent(text), " " * spaces)


def wrap(kind: str, text: str, tcp: bool) -> str:
    """A whole profile around a fragment (see the module docstring)."""
    protocol = "tcp" if tcp else "http"
    if kind == "profile":
        return text
    if kind == "services":
        return "version: 1\nservices:\n" + _indent(text, 2)
    if kind == "faults":
        return (
            f"version: 1\nservices:\n  example:\n    listen: 0\n    protocol: {protocol}\n"
            f"    targets: {{echo: echo}}\n    faults:\n" + _indent(text, 6)
        )
    if kind == "mock-file":
        return (
            "version: 1\nservices:\n  example:\n    listen: 0\n"
            "    targets: {mock: {mock: mocks/example.yaml}}\n"
        )
    assert kind == "service"
    data = _structure(textwrap.dedent(text))
    assert isinstance(data, dict), "a service snippet is a mapping of service keys"
    head = ["listen: 0"] if "listen" not in data else []
    if tcp and "protocol" not in data:
        head.append("protocol: tcp")
    targets = data.get("targets")
    if "target" not in data and isinstance(targets, dict) and len(targets) > 1:
        head.append(f"target: {next(iter(targets))}")
    return (
        "version: 1\nservices:\n  example:\n"
        + "".join(f"    {line}\n" for line in head)
        + _indent(text, 4)
    )


def _walk(data: Any) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(key, value, the mapping holding it) for every mapping entry, depth first."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield key, value, data
            yield from _walk(value)
    elif isinstance(data, list):
        for item in data:
            yield from _walk(item)


def create_named_files(folder: Path, data: Any) -> None:
    """The mock files, CA files and gRPC schemas a profile names (a schema is the example
    profile's profiles/protos/ping.proto, or its descriptor set)."""
    for key, value, _holder in _walk(data):
        if key == "proto" and isinstance(value, str | list):
            for pattern in [value] if isinstance(value, str) else value:
                path = folder / str(pattern).replace("**/", "").replace("*", "ping")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes((ROOT / "profiles" / "protos" / "ping.proto").read_bytes())
        if key == "descriptor_set" and isinstance(value, str):
            from devamb.grpc.protoc import compile_protos

            ping = ROOT / "profiles" / "protos" / "ping.proto"
            (folder / value).write_bytes(compile_protos([ping], [ping.parent]))
        if key == "mock" and isinstance(value, str) and not (folder / value).exists():
            path = folder / value
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("routes: []\n")
        if key == "tls" and isinstance(value, dict) and isinstance(value.get("ca"), str):
            path = folder / value["ca"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(ca_pem())
        if key == "tls" and isinstance(value, dict) and isinstance(value.get("cert"), str):
            made = certificates(Path(tempfile.mkdtemp(dir=folder)))  # a listener's cert, key
            for name, source in ((value["cert"], made[1]), (value.get("key"), made[2])):
                if isinstance(name, str):
                    path = folder / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(source.read_bytes())


def create_body_files(mock_file: Path, data: Any) -> None:
    """The `file:` bodies a mock file names (relative to it)."""
    for key, value, _holder in _walk(data):
        if key == "file" and isinstance(value, str):
            path = mock_file.parent / value
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"%PDF-1.4 docs example\n")


SNIPPETS = yaml_blocks()


def test_there_are_snippets_to_check() -> None:
    assert len(SNIPPETS) >= 10


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_snippet_marker_is_on_a_yaml_block(page: Path) -> None:
    """A marker that is not on the line just before a ```yaml fence would be ignored."""
    markers = sum(1 for line in page.read_text(encoding="utf-8").splitlines()
                  if MARKER.match(line))
    marked = sum(1 for b in blocks(page) if b.marker is not None and b.lang in ("yaml", "yml"))
    assert markers == marked, f"{page.relative_to(ROOT)}: a snippet marker is not just before a "\
        "```yaml fence"


@pytest.mark.parametrize("block", SNIPPETS, ids=[b.where for b in SNIPPETS])
def test_yaml_snippet_validates(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, flags = kind_of(block)
    if kind == "yaml":
        _structure(block.text)
        return
    monkeypatch.chdir(tmp_path)  # problems then name the file `devamb.yaml`
    profile_text = wrap(kind, block.text, "tcp" in flags)
    profile = tmp_path / "devamb.yaml"
    profile.write_text(profile_text, encoding="utf-8")
    if kind == "mock-file":
        mock_file = tmp_path / "mocks" / "example.yaml"
        mock_file.parent.mkdir()
        mock_file.write_text(textwrap.dedent(block.text), encoding="utf-8")
        create_body_files(mock_file, _structure(textwrap.dedent(block.text)))
    create_named_files(tmp_path, _structure(profile_text))
    environ = {name: f"docs-value-of-{name.lower()}" for name in VAR.findall(block.text)}
    if "invalid" not in flags:
        try:
            load_profile(profile, environ=environ)
        except ProfileError as exc:
            pytest.fail(f"{block.where}: the {kind} snippet does not validate:\n{exc}\n"
                        f"--- as loaded:\n{profile_text}")
        return
    with pytest.raises(ProfileError) as raised:
        load_profile(profile, environ=environ)
    shown = block.next_block
    if kind == "profile" and shown is not None and shown.lang == "text":
        problems = {str(p) for p in raised.value.problems}
        for line in shown.text.splitlines():
            if line.strip():
                assert line.strip() in problems, (
                    f"{shown.where}: {line.strip()!r} is not what devamb reports; it reports:\n"
                    + "\n".join(sorted(problems))
                )


# --- links --------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _heading_text(raw: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # a link in a heading: its text
    return re.sub(r"[`*_]{1,3}(?=\S)|(?<=\S)[`*_]{1,3}", "", text)


def github_slug(text: str) -> str:
    text = _heading_text(text).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc.slugify, MkDocs' default."""
    text = unicodedata.normalize("NFKD", _heading_text(text)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


@cache
def anchors(page: Path) -> frozenset[str]:
    """Ids that work on GitHub and in MkDocs alike (first heading of each name)."""
    found: set[str] = set()
    for line in prose(page).splitlines():
        m = HEADING.match(line)
        if m:
            a, b = github_slug(m[2]), mkdocs_slug(m[2])
            if a == b:
                found.add(a)
    found |= set(re.findall(r'<a\s+(?:name|id)="([^"]+)"', page.read_text(encoding="utf-8")))
    return frozenset(found)


def links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(page))
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    broken: list[str] = []
    for link in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
            continue
        path_text, _, anchor = link.partition("#")
        target = (page.parent / path_text).resolve() if path_text else page
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with that id in {target.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_reachable_from_the_index() -> None:
    seen: set[Path] = set()
    todo = [DOCS / "index.md"]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.exists():
            continue
        seen.add(page)
        for link in links(page):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", link) and link.split("#")[0]:
                todo.append((page.parent / link.split("#")[0]).resolve())
    orphans = [p.relative_to(ROOT) for p in DOCS.rglob("*.md") if p.resolve() not in seen]
    assert not orphans, f"docs pages no link from docs/index.md leads to: {orphans}"


def test_readme_links_the_docs_index() -> None:
    assert "docs/index.md" in links(ROOT / "README.md")


# --- commands -----------------------------------------------------------------------------------


@cache
def cli() -> click.Group:
    """The `devamb` console script, found as pyproject.toml declares it."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["devamb"].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Group)
    return loaded(command)  # every command family imported (devamb/cli/lazy.py)


def shown_commands() -> list[tuple[str, str]]:
    """(where, text) of each `devamb …` command line in shell blocks and inline code."""
    found: list[tuple[str, str]] = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang in ("sh", "shell", "bash", "console"):
                for n, line in enumerate(block.text.splitlines(), block.line + 1):
                    for part in re.split(r"\s+(?:·|&&|\|\||;|\|)\s+|`", line):
                        part = part.strip().removeprefix("$ ")
                        if part.startswith("devamb "):
                            found.append((f"{block.where.split(':')[0]}:{n}", part))
        text = prose(page)
        for m in INLINE_CODE.finditer(text):
            code = m[2].strip()
            if code.startswith("devamb "):
                line = text.count("\n", 0, m.start()) + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", code))
    for profile in sorted((ROOT / "profiles").glob("*.yaml")):  # their `#   devamb …` comments
        for n, line in enumerate(profile.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"^#\s{3,}devamb ", line):
                for part in re.split(r"\s{3,}|\s+->\s", line[1:].strip()):
                    if part.startswith("devamb "):
                        found.append((f"{profile.relative_to(ROOT)}:{n}", part))
    return found


def _option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def check_command(text: str) -> str | None:
    """Why `text` is not a command line of the CLI (None when it is)."""
    words = text.split("#")[0].split()[1:]
    group: click.Command = cli()
    top_options = _option_names(group)
    i = 0
    while i < len(words) and words[i].startswith("-"):  # devamb -p demo switch …
        if words[i] not in top_options | {"--version"}:
            return f"devamb has no option {words[i]}"
        i += 2 if words[i] in ("-p", "--profile") else 1
    path = ["devamb"]
    while isinstance(group, click.Group) and i < len(words):
        word = words[i].strip("[]")
        if word.startswith("-"):
            break
        names = [w for w in re.split(r"\\?\|", word) if w]
        if not all(re.fullmatch(r"[a-z][a-z0-9-]*", n) for n in names):
            break  # a placeholder: COMMAND, …
        for name in names:
            if name not in group.commands:
                return f"{' '.join(path)} has no command {name!r}"
        group = group.commands[names[0]]
        path.append(names[0])
        i += 1
    if isinstance(group, click.Group):
        return None
    options = _option_names(group) | top_options
    takes_value = {o for p in group.params if isinstance(p, click.Option) and not p.is_flag
                   for o in p.opts}
    free_options = bool(group.context_settings.get("ignore_unknown_options"))
    positional: list[str] = []
    unknown: list[str] = []
    rest = words[i:]
    j = 0
    while j < len(rest):
        m = re.match(r"^\[?(--?[A-Za-z][\w-]*)", rest[j])
        if m is None:
            positional.append(rest[j])
        elif m[1] in options:
            j += m[1] in takes_value and "=" not in rest[j]
        elif free_options:  # `fault add SERVICE KIND --KEY VALUE`: the kind's own settings
            unknown.append(m[1])
            j += 1
        else:
            return f"{' '.join(path)} has no option {m[1]}"
        j += 1
    if unknown and path[-2:] == ["fault", "add"] and len(positional) >= 2:
        kind = positional[1]
        if kind not in fault_kinds():
            return f"{kind!r} is not a fault kind"
        keys = fault_keys(kind)
        bad = [o for o in unknown if o.removeprefix("--").replace("-", "_") not in keys]
        if bad:
            return f"a {kind} fault has no setting {bad[0]} (it has {', '.join(keys)})"
    return None


def fault_keys(kind: str) -> list[str]:
    """The keys a fault of `kind` takes (the wrapper's and its own), as the loader lists them."""
    return known_keys()[f"services.web.faults.k{fault_kinds().index(kind)}"][1]


COMMANDS = shown_commands()


def test_there_are_commands_to_check() -> None:
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where,text", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_shown_command_exists(where: str, text: str) -> None:
    problem = check_command(text)
    assert problem is None, f"{where}: `{text}`: {problem}"


def _all_commands(group: click.Group, path: str = "devamb") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if command.hidden:
            continue
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _all_commands(command, f"{path} {name}")


def test_cli_page_documents_every_command_and_option() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing: list[str] = []
    for path, command in _all_commands(cli()):
        if f"`{path}" not in page:
            missing.append(path)
            continue
        for param in command.params:
            shown = any(opt in page for opt in getattr(param, "opts", ()))
            if isinstance(param, click.Option) and not param.hidden and not shown:
                missing.append(f"{path} {param.opts[0]}")
    assert not missing, f"docs/cli.md does not mention: {missing}"


# --- every key, kind and route ------------------------------------------------------------------

# A profile in which each mapping has a key no version knows: the loader answers with the keys it
# knows at each place ("unknown key 'zzz'; expected one of …"), so the docs are compared with the
# loader itself rather than with a list kept here.
PROBE = """\
version: 1
zzz: 1
inspect: {zzz: 1}
bastions: {b: {host: h, zzz: 1}}
services:
  web:
    listen: 0
    zzz: 1
    target: a
    inspect: {zzz: 1}
    retries: {zzz: 1}
    circuit_breaker: {zzz: 1}
    faults:
      f: {kind: latency, delay: 1s, zzz: 1, match: {zzz: 1}}
%(faults)s
    targets:
      a: {url: "http://127.0.0.1:1", zzz: 1, tls: {zzz: 1}}
      b: {endpoints: ["http://127.0.0.1:1"], zzz: 1, health: {path: /, zzz: 1}, outlier: {zzz: 1}}
      c: {split: {a: 1}, zzz: 1}
      d: {shards: ["http://127.0.0.1:1"], key: "header:X", zzz: 1}
      e: {docker: {container: x, port: 1, zzz: 1}}
      m: {mock: {zzz: 1, routes: [{zzz: 1, match: {zzz: 1}, respond: {zzz: 1}}]}, zzz: 1}
      z: {zzz: 1}
scenarios:
  s: {zzz: 1, steps: [{at: 0s, service: web, clear: true, zzz: 1}]}
"""
# Where each kind of key is documented (a dotted problem path, with names replaced by *).
KEY_HOMES = {
    "": "profile.md",
    "inspect": "profile.md",
    "services.*": "profile.md",
    "services.*.inspect": "inspect.md",
    "services.*.retries": "policies.md",
    "services.*.circuit_breaker": "policies.md",
    "services.*.faults.*": "faults.md",
    "services.*.faults.*.match": "faults.md",
    "services.*.targets.a": "targets.md",
    "services.*.targets.a.tls": "targets.md",
    "services.*.targets.b": "pools.md",
    "services.*.targets.b.health": "policies.md",
    "services.*.targets.b.outlier": "policies.md",
    "services.*.targets.c": "pools.md",
    "services.*.targets.d": "sharding.md",
    "services.*.targets.e.docker": "docker.md",
    "services.*.targets.m": "mocks.md",
    "services.*.targets.m.mock": "mocks.md",
    "services.*.targets.m.mock.routes.0": "mocks.md",
    "services.*.targets.m.mock.routes.0.match": "mocks.md",
    "services.*.targets.m.mock.routes.0.respond": "mocks.md",
    "scenarios.*": "faults.md",
    "scenarios.*.steps.0": "faults.md",
    "bastions.*": "bastions.md",
}


@cache
def fault_kinds() -> list[str]:
    with pytest.raises(ProfileError) as raised:
        _probe_load({"services": {"w": {"listen": 0, "targets": {"e": "echo"},
                                        "faults": {"f": {"kind": "zzz"}}}}})
    [message] = [p.message for p in raised.value.problems]
    return message.split("is not one of ", 1)[1].split(", ")


def _probe_load(data: Any) -> None:
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "devamb.yaml"
        path.write_text(json.dumps(data) if not isinstance(data, str) else data)
        load_profile(path, environ={})


@cache
def known_keys() -> dict[str, tuple[str, list[str]]]:
    """{problem path: (the page that documents it, the keys the loader knows there)}."""
    extra = "\n".join(f"      k{i}: {{kind: {kind}, zzz: 1}}" for i, kind in enumerate(
        fault_kinds()))
    with pytest.raises(ProfileError) as raised:
        _probe_load(PROBE % {"faults": extra})
    found: dict[str, tuple[str, list[str]]] = {}
    for problem in raised.value.problems:
        if "expected one of " not in problem.message:
            continue
        where = problem.path.rpartition(".")[0] if problem.path != "zzz" else ""
        keys = problem.message.split("expected one of ", 1)[1].split(", ")
        if re.fullmatch(r"services\.web\.faults\.k\d+", where):
            home = "faults.md"
        else:
            pattern = re.sub(r"^services\.web", "services.*", where)
            pattern = re.sub(r"^(services\.\*\.faults)\.f", r"\1.*", pattern)
            pattern = re.sub(r"^scenarios\.s", "scenarios.*", pattern)
            pattern = re.sub(r"^bastions\.b", "bastions.*", pattern)
            home = KEY_HOMES[pattern]
        found[where] = (home, keys)
    return found


def _documented(page: str, key: str) -> bool:
    text = (DOCS / page).read_text(encoding="utf-8")
    written = rf"(^|[\s{{,`])({re.escape(key)}):"  # `key` or `key:` (in YAML, or `key: value`)
    return f"`{key}`" in text or re.search(written, text, re.M) is not None


def test_the_probe_reaches_every_place() -> None:
    places = {re.sub(r"^services\.web", "services.*", w) for w in known_keys()}
    assert len(places) >= len(KEY_HOMES) - 3  # the probe itself is not out of date


def test_every_profile_key_is_documented_on_its_page() -> None:
    missing = [
        f"{home}: {where or '(top level)'}.{key}"
        for where, (home, keys) in known_keys().items()
        for key in keys
        if not _documented(home, key)
    ]
    assert not missing, "keys the loader knows that their page does not name:\n" + "\n".join(
        missing)


def test_every_fault_kind_is_documented() -> None:
    text = (DOCS / "faults.md").read_text(encoding="utf-8")
    missing = [kind for kind in fault_kinds() if f"`{kind}`" not in text]
    assert not missing, f"docs/faults.md does not name the fault kinds {missing}"


def test_every_target_kind_is_documented() -> None:
    problems = [p for p in _probe_problems() if p.path.endswith("targets.z")]
    message = problems[0].message  # "a target needs one of the keys url, echo, …"
    kinds = message.split("one of the keys ", 1)[1].split(", ")
    text = (DOCS / "targets.md").read_text(encoding="utf-8")
    missing = [kind for kind in kinds if f"`{kind}" not in text]
    assert not missing, f"docs/targets.md does not name the target kinds {missing}"


@cache
def _probe_problems() -> tuple[Any, ...]:
    with pytest.raises(ProfileError) as raised:
        _probe_load(PROBE % {"faults": ""})
    return tuple(raised.value.problems)


ROUTE_LINE = re.compile(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`\s?]*)")


def _routes() -> list[tuple[str, str, re.Pattern[str]]]:
    """(method, path as written in the server, a pattern its concrete paths match)."""
    server = importlib.import_module("devamb.control.server")
    routes = importlib.import_module("devamb.control.routes")
    router = server.Router(routes.TABLE)
    return [(route.method, route.path, pattern) for route, pattern in router.routes]


def test_control_api_page_lists_every_route_and_no_other() -> None:
    text = (DOCS / "control-api.md").read_text(encoding="utf-8")
    shown = set(ROUTE_LINE.findall(text))
    routes = _routes()
    missing = [
        f"{method} {path}" for method, path, pattern in routes
        if not any(m == method and (p == path or pattern.fullmatch(p)) for m, p in shown)
    ]
    unknown = [
        f"{m} {p}" for m, p in shown
        if not any(m == method and (p == path or pattern.fullmatch(p))
                   for method, path, pattern in routes)
    ]
    assert not missing, f"docs/control-api.md does not list {missing}"
    assert not unknown, f"docs/control-api.md lists routes the engine does not have: {unknown}"
