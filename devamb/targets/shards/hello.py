"""HELLO, answered by the sharded target itself: its options, and the reply in RESP2 or RESP3."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.targets.shards import encoder
from devamb.targets.shards.parser import ProtocolError, is_error, reply_items

DEFAULT_VERSION = "7.0.0"  # said when no shard can describe itself (every one is ejected)


class HelloError(Exception):
    """The reply to a HELLO that changes nothing (`reply` is the error, ready to write)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reply = encoder.error(message)


@dataclass(frozen=True, slots=True)
class Hello:
    protocol: int | None  # None: HELLO without a version answers in the current protocol
    auth: list[bytes] | None  # [username, password] when given
    name: bytes | None  # SETNAME


def parse(args: list[bytes]) -> Hello:
    """`HELLO [protover [AUTH username password] [SETNAME clientname]]` as redis-server reads it."""
    if len(args) == 1:
        return Hello(None, None, None)
    try:
        protocol = int(args[1])
    except ValueError:
        raise HelloError("ERR Protocol version is not an integer or out of range") from None
    if protocol not in (2, 3):
        raise HelloError("NOPROTO sorry, this protocol version is not supported.")
    auth: list[bytes] | None = None
    name: bytes | None = None
    i = 2
    while i < len(args):
        option = bytes(args[i]).upper()
        left = len(args) - i - 1
        if option == b"AUTH" and left >= 2:
            auth = [args[i + 1], args[i + 2]]
            i += 3
        elif option == b"SETNAME" and left >= 1:
            name = args[i + 1]
            i += 2
        else:
            text = bytes(args[i]).decode("utf-8", "replace")
            raise HelloError(f"ERR Syntax error in HELLO option '{text}'")
    return Hello(protocol, auth, name)


def from_shard(answer: bytes, protocol: int, client_id: int) -> bytes:
    """A shard's answer to a plain `HELLO` (its server, version, modules...) as the client's
    own: its connection id; devamb's own description if the shard could not answer."""
    if is_error(answer):
        return reply(protocol, client_id)
    try:
        items = reply_items(answer)
    except ProtocolError:
        return reply(protocol, client_id)
    id_key = encoder.bulk(b"id")
    for i in range(0, len(items) - 1, 2):
        if bytes(items[i]) == id_key:
            items[i + 1] = encoder.integer(client_id)
    count = len(items) // 2
    head = b"%%%d\r\n" % count if protocol == 3 else b"*%d\r\n" % (2 * count)
    return head + b"".join(bytes(item) for item in items[: 2 * count])


def reply(protocol: int, client_id: int, version: str | None = None) -> bytes:
    """The server's description, as redis-server 7 gives it: a map in RESP3, pairs in RESP2."""
    fields = [
        (b"server", encoder.bulk(b"redis")),
        (b"version", encoder.bulk((version or DEFAULT_VERSION).encode())),
        (b"proto", encoder.integer(protocol)),
        (b"id", encoder.integer(client_id)),
        (b"mode", encoder.bulk(b"standalone")),
        (b"role", encoder.bulk(b"master")),
        (b"modules", encoder.EMPTY_ARRAY),
    ]
    head = b"%%%d\r\n" % len(fields) if protocol == 3 else b"*%d\r\n" % (2 * len(fields))
    return head + b"".join(encoder.bulk(key) + value for key, value in fields)


PLAIN = encoder.command([b"HELLO"])  # asks a shard to describe itself, changing nothing
