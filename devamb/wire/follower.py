"""The seam between the TCP relay and a protocol reader: one `Follower` per relayed connection.

The relay (service/tcp.py) stays a relay: it hands the follower each chunk as it passes and,
unless the follower returns something else, forwards the chunk unchanged. A follower:

- reads both directions beside the relay (`client_data`, `server_data`), keeping at most a
  bounded part of each message (it skips bodies it does not show, never buffers a message whole
  to parse it), and reports completed commands as exchanges through its `Exchanges` sink;
- marks itself `opaque` (a reason) when it loses sync (unknown message, corrupt frame, TLS):
  from then on the relay stops consulting it and keeps relaying bytes;
- says whether the connection is at a safe point (`safe_point`: a drain on switch closes the
  connection there, between commands and outside a transaction);
- when command-level faults are armed (`gating` set by the relay), splits the client's stream
  at command boundaries: `client_data` then returns `Item`s in order: bytes for the server,
  `ToClient` bytes (an answer the follower synthesised, ordered after the server's replies to
  what was forwarded before), and `Decide(command)`: the relay rolls the command-level faults
  for `command` and calls `resolve` with one of `FORWARD`, `Delay`, `Answer`, `Close`, then
  calls `client_data(b"")` for the rest. On `Answer` the follower swallows the command (the
  server never sees it, so nothing is swallowed from the server) and answers it itself. While
  answers are queued behind the server's replies, `server_data` returns the pieces to write to
  the client, the queued answers between them.

PostgreSQL is wire/postgres.py; the Redis follower plugs in the same way (wire/resp*.py): a
`Follower` subclass registered in `FOLLOWERS` below by its protocol name.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from devamb.inspect.lazy import LazyExchange, Origin, singles

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange

_IDS = itertools.count(1_000_000_000)  # a sink's own ids (the relay's come from the recorder)


@dataclass(frozen=True)
class Command:
    """One command as command-level faults see it: the fields `match:` compares (postgres:
    `sql`; redis: `command`, `key`), with a short label for records."""

    fields: Mapping[str, str]
    label: str = ""


@dataclass(frozen=True)
class Forward:
    """Pass the command on."""


FORWARD = Forward()


@dataclass(frozen=True)
class Delay:
    """Hold the command `seconds`, then pass it on."""

    seconds: float


@dataclass(frozen=True)
class Answer:
    """Do not forward: answer the client with the follower's own reply (`params`: the fault's,
    e.g. a postgres error's `sqlstate` and `message`)."""

    params: Any
    fault: str = ""


@dataclass(frozen=True)
class Close:
    """Close the connection now, with a reset (RST) or not."""

    reset: bool = True
    reason: str = ""


Action = Forward | Delay | Answer | Close


@dataclass(frozen=True)
class ToClient:
    data: bytes


@dataclass(frozen=True)
class Decide:
    command: Command


Item = bytes | ToClient | Decide


class Exchanges(ABC):
    """Where a follower opens and completes its exchanges (the relay, with the recorder)."""

    @abstractmethod
    def begin(self) -> Exchange:
        """A new exchange on this connection (protocol, service, target, client filled in)."""

    @abstractmethod
    def finish(self, exchange: Exchange) -> None:
        """The exchange is complete: record it."""

    @abstractmethod
    def connection(self) -> Exchange:
        """The connection's own record (startup, opaque reason go in its notes)."""

    # A follower on a hot path completes `LazyExchange`s rather than exchanges: `new_id` when
    # the command starts, `record` when it completes (the Exchange is built when read).

    def origin(self) -> Origin:
        """What every record of this connection shares (service, target, client...)."""
        conn = self.connection()
        return Origin(conn.service, conn.target, conn.protocol, conn.client, conn.id)

    def new_id(self) -> int:
        return next(_IDS)

    def new_ids(self, count: int) -> int:
        """The first of `count` consecutive ids (a `LazyBatch`'s)."""
        first = next(_IDS)
        if count > 1:
            next(islice(_IDS, count - 2, None))
        return first

    def record(self, lazy: LazyExchange) -> None:
        """A lazy record is complete: by default built now and finished as an exchange (each
        of a `LazyBatch`'s records)."""
        for one in singles([lazy]):
            self.finish(one.materialise())

    def record_one(self, lazy: LazyExchange, duration_ms: float, failed: bool) -> None:
        """One entry complete on its own (a lone command's reply, or a batch's replies that
        all took `duration_ms` and ended alike): `record_many`, leaner."""
        self.record_many([lazy], [(duration_ms, failed, lazy.count)])

    def record_many(self, records: Sequence[LazyExchange],
                    runs: Sequence[tuple[float, bool, int]] | None = None) -> None:
        """Records completed together (the replies in one chunk from the server); `runs`, when
        the follower knows them: the records' (duration ms, failed, how many) in runs."""
        for lazy in records:
            self.record(lazy)


@dataclass
class FollowerOptions:
    """What a service says about how its connections are read."""

    redact_params: bool = False  # postgres: bound parameter values are not recorded
    extra: dict[str, Any] = field(default_factory=dict)


class Follower(ABC):
    """Reads one relayed connection beside the relay (see the module docstring)."""

    def __init__(self, sink: Exchanges, options: FollowerOptions) -> None:
        self.sink = sink
        self.options = options
        self.opaque: str | None = None  # why it stopped following; the relay ignores it then
        self.gating = False  # command-level faults armed: client_data splits at boundaries
        # True while every chunk passes unchanged whatever comes (the follower never held,
        # dropped or inserted anything: no command fault came into play), so the relay need
        # not ask `passes_unchanged` while `gating` is off; False: it asks each time
        self.plain = False

    def lose_sync(self, why: str) -> None:
        """Stop following: the connection is relayed as bytes from now on."""
        if self.opaque is None:
            self.opaque = why
            self.sink.connection().own_notes().setdefault(self.NOTE, {})["opaque"] = why
            self.abandon(why)

    NOTE = "wire"  # the key of the connection record's notes the follower writes

    @abstractmethod
    def client_data(self, data: bytes) -> list[Item] | None:
        """Bytes from the client; None: forward `data` as is."""

    @abstractmethod
    def server_data(self, data: bytes) -> list[bytes] | None:
        """Bytes from the server; None: forward `data` as is, else the pieces for the client."""

    def passes_unchanged(self, inbound: bool) -> bool:
        """The next chunk from the client (`inbound`) or the server is only read: its
        `client_data`/`server_data` will return None. The relay then passes it on first and
        hands it to the follower after, off the path the other end waits on."""
        return False

    def resolve(self, action: Action, faults: list[str] | None = None) -> None:
        """The relay's answer to the last `Decide` (`faults`: the names that fired)."""
        return None

    def safe_point(self) -> bool:
        """Between commands, outside a transaction: closing now cuts nothing."""
        return False

    def safe_close(self) -> bytes:
        """Bytes to send the server before closing at a safe point (postgres: Terminate)."""
        return b""

    def abandon(self, why: str) -> None:
        """Following stopped (opaque) or the connection ended: finish open exchanges."""
        return None

    def ended(self, error: str | None) -> None:
        """The connection closed."""
        self.abandon(error or "the connection closed")


FollowerFactory = Callable[[Exchanges, FollowerOptions], Follower]
FOLLOWERS: dict[str, FollowerFactory] = {}


def register(protocol: str, factory: FollowerFactory) -> None:
    FOLLOWERS[protocol] = factory


def follower_for(protocol: str) -> FollowerFactory | None:
    if not FOLLOWERS:
        from devamb.wire import registry  # noqa: F401  (registers the built-in followers)
    return FOLLOWERS.get(protocol)
