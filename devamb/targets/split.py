"""Split targets: weighted request splitting across other targets of the service, plus mirroring.

```yaml
canary:
  split: {local: 90, staging: 10}    # relative weights of sibling targets
  sticky: header:X-User-Id           # optional: the same key always lands on the same member
  mirror: shadow                     # optional: a copy of each request goes there too
  mirror_max_body: 64KiB             # bodies above this are not mirrored (and counted as skipped)
```

A split needs its service's other targets, which exist only once the engine has built them all:
it looks its members up in its context's `siblings` (filled before any target starts).

Mirrored copies go back into the listener the request came in on, with `X-Devamb-Target:
MIRROR` and `X-Devamb-Mirror-Of: ID` (plus the engine's replay marker when the engine gives
it, which links the copy by `replay_of`), so each copy runs the whole request path (faults,
policies, recording) and is recorded as its own exchange, ready to be compared with the
original. A copy without a body leaves at once; a copy with a body leaves when the original
exchange is done, its body taken from what devamb kept of it (the retry buffer or the recorded
preview: devamb never buffers a body only to mirror it), so bodies above `mirror_max_body` or
above what was kept are skipped, and counted with the reason. Answers to copies are dropped;
a copy that fails (no answer, a timeout, or any 5xx) counts in `mirror.failed`. The listener
counts copies in the service's `stats.mirror`, apart from its own numbers (service/http.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from devamb.cluster.hashring import key_hash
from devamb.cluster.reachability import DOWN_STATES, UP_STATES
from devamb.cluster.request_key import RequestKey, parse_request_key, sources_for
from devamb.inspect.replay import NOT_REPLAYED, REPLAY_HEADER, TARGET_HEADER
from devamb.profile.reader import Node
from devamb.profile.schema import TargetSpec
from devamb.proxy.errors import ERROR_HEADER
from devamb.proxy.h2request import H2Request
from devamb.proxy.headers import HOP_BY_HOP
from devamb.targets.base import MIRROR_OF, Target, TargetContext, TargetUnavailable

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp

    from devamb.cluster.request_key import KeyedRequest
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("split", "sticky", "mirror", "mirror_max_body")
DEFAULT_MIRROR_MAX_BODY = 64 * 1024
MIRROR_PENDING = 64  # copies in flight at most; more are skipped, so a slow mirror cannot pile up
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class SplitTargetSpec(TargetSpec):
    KIND = "split"
    weights: tuple[tuple[str, int], ...] = ()  # (member target, weight), as written
    sticky: RequestKey | None = None
    mirror: str | None = None
    mirror_max_body: int = DEFAULT_MIRROR_MAX_BODY

    def describe(self) -> str:
        total = sum(w for _, w in self.weights)
        text = ", ".join(f"{n} {100 * w / total:g}%" for n, w in self.weights)
        if self.sticky is not None:
            text += f", sticky on {self.sticky}"
        if self.mirror is not None:
            text += f", mirrored to {self.mirror}"
        return text


def _siblings(node: Node) -> dict[str, Any]:
    """The other entries of the `targets:` mapping this target sits in."""
    value: Any = node.reader.source.data
    for key in node.path[:-1]:
        value = value.get(key) if isinstance(value, dict) else None
    return {k: v for k, v in (value or {}).items() if k != node.name}


def _sibling(node: Node, name: Any, siblings: dict[str, Any], what: str, *, key: bool) -> bool:
    """Whether `name` is another target of the service that is not a split itself."""
    if not isinstance(name, str) or name not in siblings:
        known = ", ".join(siblings) or "none"
        node.problem(
            f"{what} {name!r} is not another target of this service; known: {known}", key=key
        )
        return False
    sibling = siblings[name]
    if isinstance(sibling, dict) and "split" in sibling:
        node.problem(f"{what} {name!r} is a split target itself; splits do not nest", key=key)
        return False
    return True


def parse(name: str, node: Node, protocol: str) -> SplitTargetSpec | None:
    if not node.mapping(KEYS, required=("split",)):
        return None
    before = len(node.reader.problems)
    siblings = _siblings(node)
    split = node.child("split")
    weights: list[tuple[str, int]] = []
    if not isinstance(split.value, dict) or not split.value:
        split.problem("expected a mapping of target names to weights, e.g. {local: 90, dev: 10}")
    else:
        for member, child in split.items():
            if not _sibling(child, member, siblings, "member", key=True):
                continue
            weight = child.integer(low=0, high=MAX_WEIGHT)
            if weight is not None:
                weights.append((member, weight))
        if weights and not sum(w for _, w in weights):
            split.problem("at least one member needs a weight above 0")
    sticky = None
    if node.has("sticky"):
        if protocol == "tcp":
            node.child("sticky").problem("sticky splitting needs HTTP requests")
        else:
            sticky = parse_request_key(node.child("sticky"), sources_for(protocol))
    mirror = None
    if node.has("mirror"):
        if protocol != "http":
            node.child("mirror").problem(
                f"mirroring copies HTTP/1.1 requests; a {protocol} split cannot"
                + ("" if protocol == "tcp" else " (HTTP/2 calls are not mirrored yet)")
            )
        else:
            child = node.child("mirror")
            if _sibling(child, child.value, siblings, "mirror target", key=False):
                mirror = str(child.value)
    cap = DEFAULT_MIRROR_MAX_BODY
    if node.has("mirror_max_body"):
        cap = node.child("mirror_max_body").size() or 0
    if len(node.reader.problems) > before:
        return None
    return SplitTargetSpec(name, tuple(weights), sticky, mirror, cap)


class SplitTarget(Target):
    """Sends each exchange to one member target, in proportion to the weights."""

    spec: SplitTargetSpec

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        assert isinstance(spec, SplitTargetSpec)
        self.rng = random.Random()
        self._names = [n for n, w in spec.weights if w > 0]
        self._bounds = list(accumulate(w for _, w in spec.weights if w > 0))
        self._total = self._bounds[-1] if self._bounds else 0
        self._complete = False  # every member (and the mirror) was found among the siblings
        self.sent: dict[str, int] = {n: 0 for n, _ in spec.weights}
        self.mirror = MirrorStats()
        self._copies: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._warned_skip = False

    def _missing(self) -> str | None:
        """Why the members cannot be found among the service's targets, if they cannot."""
        if self._complete:
            return None
        wanted = [n for n, _ in self.spec.weights] + [m for m in (self.spec.mirror,) if m]
        missing = [n for n in wanted if n not in self.context.siblings]
        if not missing:
            self._complete = True  # the engine fills the siblings once, before start
            return None
        return f"{', '.join(map(repr, missing))} not among its service's targets"

    def _members(self) -> Mapping[str, Target]:
        """The service's targets, in which the members are looked up per exchange."""
        missing = self._missing()
        if missing is not None:
            raise TargetUnavailable(f"split target {self.name!r}: {missing}")
        return self.context.siblings

    # -- status ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """unavailable (no member can take traffic), degraded (some cannot, or are starting),
        unknown (some were never tried) or ready."""
        if self._missing() is not None:
            return "unavailable"
        states = [self.context.siblings[n].state for n in self._names]
        if all(s in DOWN_STATES for s in states):
            return "unavailable"
        if any(s not in UP_STATES and s != "unknown" for s in states):
            return "degraded"
        return "unknown" if "unknown" in states else "ready"

    def details(self) -> dict[str, Any]:
        total = sum(self.sent.values())
        siblings = self.context.siblings
        weight_total = sum(w for _, w in self.spec.weights)
        members = [
            {
                "target": name,
                "weight": weight,
                "configured_share": round(weight / weight_total, 4),
                "requests": self.sent[name],
                "share": round(self.sent[name] / total, 4) if total else 0.0,
                "state": siblings[name].state if name in siblings else "unknown",
            }
            for name, weight in self.spec.weights
        ]
        out: dict[str, Any] = {
            "members": members,
            "sticky": str(self.spec.sticky) if self.spec.sticky else None,
            "reason": self._missing(),
        }
        if self.spec.mirror is not None:
            out["mirror"] = {"target": self.spec.mirror, **self.mirror.to_json()}
        return out

    # -- lifecycle -------------------------------------------------------------------------

    async def activate(self) -> None:
        """Switching to the split readies its members (a Docker member starts its container)."""
        members = self._members()
        names = {*self._names, *([self.spec.mirror] if self.spec.mirror else [])}
        await asyncio.gather(*(members[n].activate() for n in names))

    async def close(self) -> None:
        copies = list(self._copies)
        for task in copies:
            task.cancel()
        for task in copies:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- routing ---------------------------------------------------------------------------

    def point(self, request: KeyedRequest | None) -> float:
        """Where in [0, 1) this exchange falls: a hash of the sticky key, or a random draw."""
        key = self.spec.sticky.of(request) if self.spec.sticky and request is not None else None
        if key is None:
            return self.rng.random()
        return key_hash(key) / 2**32

    def choose(self, request: KeyedRequest | None) -> Target:
        """The member for this exchange; members with nothing routable are passed over."""
        members = self._members()
        at = self.point(request)
        index = min(bisect_right(self._bounds, at * self._total), len(self._names) - 1)
        name = self._names[index]
        target = members[name]
        if target.state != "unavailable":
            return target
        usable = [(n, w) for n, w in self.spec.weights if w and members[n].state != "unavailable"]
        if not usable:
            return target  # it answers with its own reason
        bounds = list(accumulate(w for _, w in usable))
        index = min(bisect_right(bounds, at * bounds[-1]), len(usable) - 1)
        return members[usable[index][0]]

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        member = self.choose(request)
        self.sent[member.name] += 1
        mirroring = self.spec.mirror is not None
        if mirroring and not request.body_exists:
            self._mirror(request, exchange)
            mirroring = False
        try:
            return await member.handle_http(request, exchange)
        except asyncio.CancelledError:
            mirroring = False
            raise
        finally:
            if mirroring:
                self._mirror(request, exchange)

    def h2_target(self, headers: H2Headers) -> Target:
        """A member per call, by weight (or by the sticky key's hash)."""
        member = self.choose(H2Request(headers))
        self.sent[member.name] += 1
        return member

    async def tcp_address(self) -> tuple[str, int]:
        member = self.choose(None)
        self.sent[member.name] += 1
        return await member.tcp_address()

    # -- mirroring -------------------------------------------------------------------------

    def _mirror(self, request: FrontRequest, exchange: Exchange) -> None:
        """Send a copy of the request to the mirror target, or count why not."""
        skip = self._skip_reason(request, exchange)
        if skip is not None:
            self.mirror.skip(skip)
            if not self._warned_skip:
                self._warned_skip = True
                self.notify(
                    "warning",
                    f"{self.context.service}/{self.name}: a request was not mirrored: {skip} "
                    "(further skips are counted in status)",
                )
            return
        body = None
        if request.body_exists:
            buffered = exchange.body_buffer
            body = bytes(buffered if buffered is not None else exchange.request_body.data)
        transport = request.transport
        assert transport is not None  # _skip_reason skipped the copy of a client that is gone
        listener = transport.get_extra_info("sockname")
        task = asyncio.get_running_loop().create_task(
            self._send(request, listener[:2], exchange.id, body)
        )
        self._copies.add(task)
        task.add_done_callback(self._copies.discard)

    def _skip_reason(self, request: FrontRequest, exchange: Exchange) -> str | None:
        if self.replay_token is None and not self.context.target_header:
            return "target_header is off, so the listener would not honour the copy's target"
        if request.transport is None:
            return "the client connection is gone"
        if request.headers.get("Upgrade"):
            return "upgrade (WebSocket) requests are not mirrored"
        if len(self._copies) >= MIRROR_PENDING:
            return f"{MIRROR_PENDING} copies are still in flight"
        if not request.body_exists:
            return None
        body = exchange.request_body
        cap = self.spec.mirror_max_body
        if body.size > cap:
            return f"request body of {body.size} bytes is above mirror_max_body ({cap} bytes)"
        if exchange.body_buffer is not None:
            return None
        if body.truncated:
            return (
                f"request body of {body.size} bytes is above the service's inspect.bodies "
                f"({body.limit} bytes), the part devamb keeps"
            )
        declared = request.content_length
        if declared is not None and declared != body.size:
            return f"only {body.size} of {declared} request body bytes were read"
        return None

    def _copy_headers(self, request: FrontRequest, original: int) -> list[tuple[str, str]]:
        listed = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
        dropped = NOT_REPLAYED | HOP_BY_HOP | listed
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in dropped]
        headers.append((TARGET_HEADER, self.spec.mirror or ""))
        headers.append((MIRROR_OF, str(original)))
        if self.replay_token is not None:
            headers.append((REPLAY_HEADER, f"{self.replay_token}:{original}"))
        return headers

    async def _send(
        self,
        request: FrontRequest,
        listener: tuple[str, int],
        original: int,
        body: bytes | None,
    ) -> None:
        host, port = listener
        host = f"[{host}]" if ":" in host else host
        import aiohttp  # its client (~13 MiB): only once a mirror sends

        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=self.context.timeout + 5),
            )
        try:
            async with self._session.request(
                request.method,
                f"http://{host}:{port}{request.raw_path}",
                headers=self._copy_headers(request, original),
                data=body,
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
                reason = response.headers.get(ERROR_HEADER)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.mirror.failed(str(exc) or type(exc).__name__)
            return
        if status >= 500:  # the mirror's upstream failed, or devamb could not reach it
            self.mirror.failed(f"answered {status}" + (f" ({reason})" if reason else ""))
        else:
            self.mirror.sent += 1


class MirrorStats:
    """How many copies were answered (`sent`), failed (an error, a timeout or a 5xx answer) or
    were skipped, and the last reason for each."""

    def __init__(self) -> None:
        self.sent = 0
        self.failures = 0
        self.skipped = 0
        self.last_failure: str | None = None
        self.last_skip: str | None = None

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.last_skip = reason

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.last_failure = reason

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "failed": self.failures, "skipped": self.skipped,
            "last_failure": self.last_failure, "last_skip": self.last_skip,
        }
