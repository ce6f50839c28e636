"""Message types and methods known from a FileDescriptorSet (compiled `.proto` files, a
`descriptor_set:` file, or what server reflection sent), and JSON <-> protobuf with them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message import Message

# protobuf (~4 MiB) is imported when a schema is made or used: only profiles with gRPC do.


class SchemaError(ValueError):
    """The descriptors are not a consistent set (corrupt, or a file's imports are missing)."""


class Schema:
    """A descriptor pool; `origin` says where it came from: proto | descriptor_set |
    reflection. Equal when built from the same bytes (so a reload keeps equal specs equal)."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto], origin: str) -> None:
        import hashlib  # with protobuf: its import sets up OpenSSL's digests (issue 22: RSS)

        from google.protobuf import descriptor_pool

        self.origin = origin
        self.pool = descriptor_pool.DescriptorPool()
        ordered = list(files)
        digest = hashlib.sha256()  # of the files in any order
        for blob in sorted(p.SerializeToString(deterministic=True) for p in ordered):
            digest.update(hashlib.sha256(blob).digest())
        self.fingerprint = digest.hexdigest()
        _add_in_order(self.pool, ordered)
        self._classes: dict[str, type[Message]] = {}

    @classmethod
    def from_set(cls, data: bytes, origin: str) -> Schema:
        """From a serialized FileDescriptorSet; SchemaError when it is not one."""
        from google.protobuf import descriptor_pb2
        from google.protobuf.message import DecodeError

        files = descriptor_pb2.FileDescriptorSet()
        try:
            files.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise SchemaError(f"not a FileDescriptorSet: {exc}") from None
        if not files.file:
            raise SchemaError("not a FileDescriptorSet: it holds no files")
        return cls(files.file, origin)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Schema({self.origin}, {self.fingerprint[:12]})"

    def method_types(self, service: str, method: str) -> tuple[str, str] | None:
        """(input type, output type) full names of `service`'s `method`, if known."""
        try:
            found = self.pool.FindServiceByName(service).FindMethodByName(method)
        except KeyError:
            return None
        if found is None:
            return None
        return found.input_type.full_name, found.output_type.full_name

    def has_service(self, service: str) -> bool:
        try:
            self.pool.FindServiceByName(service)
        except KeyError:
            return False
        return True

    def message_class(self, type_name: str) -> type[Message]:
        cls = self._classes.get(type_name)
        if cls is None:
            from google.protobuf import message_factory

            cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(type_name))
            self._classes[type_name] = cls
        return cls

    def to_json(self, type_name: str, data: bytes, full: bool = False) -> dict[str, Any]:
        """`data` as a `type_name` message in JSON (`full`: fields at their default value
        too); DecodeError when it is not one."""
        from google.protobuf import json_format

        message = self.message_class(type_name)()
        message.ParseFromString(data)
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=full)

    def from_json(self, type_name: str, value: Any) -> bytes:
        """A JSON value encoded as a `type_name` message; ValueError when it does not fit."""
        from google.protobuf import json_format

        message = self.message_class(type_name)()
        try:
            json_format.ParseDict(value, message)
        except json_format.ParseError as exc:
            raise ValueError(str(exc)) from None
        return message.SerializeToString()


def _add_in_order(pool: descriptor_pool.DescriptorPool,
                  files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    """Add files after their imports (reflection sends them in any order)."""
    pending = {f.name: f for f in files}
    added: set[str] = set()
    while pending:
        ready = [f for f in pending.values() if all(d in added for d in f.dependency)]
        if not ready:
            missing = sorted({d for f in pending.values() for d in f.dependency} - added
                             - set(pending))
            detail = f"missing imports: {', '.join(missing)}" if missing else "imports loop"
            raise SchemaError(f"the descriptors do not form a set ({detail})")
        for proto in ready:
            try:
                pool.Add(proto)
            except (TypeError, ValueError) as exc:
                raise SchemaError(f"{proto.name}: {exc}") from None
            added.add(proto.name)
            del pending[proto.name]
