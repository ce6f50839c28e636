"""The schema keys of an http2 or grpc service in a profile:

    proto: [protos/*.proto]          # globs relative to the profile's folder, compiled at load
    descriptor_set: api.pb           # or a FileDescriptorSet (protoc --descriptor_set_out
                                     #   --include_imports)

Problems (a glob matching nothing, a proto protoc refuses, a corrupt set) are reported at the
key, with protoc's own message."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from devamb.grpc import SCHEMA_KEYS
from devamb.grpc.protoc import CompileError, compile_protos
from devamb.grpc.schema import Schema, SchemaError
from devamb.profile.reader import Node, type_name

KEYS = SCHEMA_KEYS


@dataclass(frozen=True)
class LoadedSchema:
    schema: Schema
    files: tuple[Path, ...]  # what it was read from (watched for reloads)


def parse_schema(node: Node) -> LoadedSchema | None:
    """The service's schema from `node` (the service's mapping); None when it names none or
    after a problem."""
    present = [key for key in KEYS if node.has(key)]
    if not present:
        return None
    if len(present) > 1:
        node.child("descriptor_set").problem("use 'proto' or 'descriptor_set', not both",
                                             key=True)
        return None
    folder = Path(node.reader.source.file).resolve().parent
    if present[0] == "proto":
        return _protos(node.child("proto"), folder)
    return _descriptor_set(node.child("descriptor_set"), folder)


def _protos(node: Node, folder: Path) -> LoadedSchema | None:
    items = node.elements() if isinstance(node.value, list) else [node]
    if isinstance(node.value, list) and not items:
        node.problem("list at least one .proto file or glob")
        return None
    if not isinstance(node.value, list | str):
        node.problem(f"expected a glob or a list of globs, got {type_name(node.value)}")
        return None
    files: list[Path] = []
    bases: list[Path] = []  # each glob's folder before its first wildcard
    ok = True
    for item in items:
        pattern = item.string()
        if pattern is None:
            ok = False
            continue
        matched = sorted(glob.glob(str(folder / pattern), recursive=True))
        if not matched:
            item.problem(f"{pattern!r} matches no file (in {folder})")
            ok = False
            continue
        files += [Path(m).resolve() for m in matched if Path(m).resolve() not in files]
        bases.append(_base(folder, pattern))
    if not files:
        return None
    # protoc names each file after the first include path that holds it: the glob's base
    # first, so that `protos/**/*.proto` files are `pkg/x.proto` as their imports say
    includes = [*bases, *(f.parent for f in files), folder]
    try:
        data = compile_protos(files, includes)
        schema = Schema.from_set(data, "proto")
    except (CompileError, SchemaError) as exc:  # shown beside a glob's problem, if any
        node.problem(f"cannot compile the .proto files:\n{exc}", key=True)
        return None
    return LoadedSchema(schema, tuple(files)) if ok else None


def _base(folder: Path, pattern: str) -> Path:
    """The folder of `pattern` up to its first wildcard (`protos/**/*.proto`: protos)."""
    fixed: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return folder.joinpath(*fixed).resolve()


def _descriptor_set(node: Node, folder: Path) -> LoadedSchema | None:
    text = node.string()
    if text is None:
        return None
    path = (folder / text).resolve()
    try:
        data = path.read_bytes()
    except OSError as exc:
        node.problem(f"cannot read descriptor set {text!r}: {exc.strerror or exc}")
        return None
    try:
        schema = Schema.from_set(data, "descriptor_set")
    except SchemaError as exc:
        node.problem(f"{text!r} is not a usable descriptor set: {exc}")
        return None
    return LoadedSchema(schema, (path,))
