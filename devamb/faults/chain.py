"""The shared wrapper (enabled, match, after, probability, times, for) and the per-exchange plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from devamb.faults.base import (
    DOWNSTREAM,
    UPSTREAM,
    Fault,
    FaultContext,
    Pieces,
    Shaper,
    Stream,
)
from devamb.faults.registry import KINDS
from devamb.faults.spec import FaultSpec


class FaultState:
    """One fault with its counters. The wrapper decides *whether*; the kind decides *what*."""

    __slots__ = ("enabled_at", "fault", "fired", "last_fired", "on_expire", "per_command",
                 "seen", "spec")

    def __init__(self, spec: FaultSpec, ctx: FaultContext, protocol: str,
                 on_expire: Callable[[FaultState, str, bool], None],
                 fault: Fault | None = None) -> None:
        self.spec = spec
        self.fault: Fault = fault or KINDS[spec.kind].build(
            spec.params, ctx, spec.direction, protocol
        )
        self.seen = 0
        self.fired = 0
        self.last_fired: float | None = None
        self.enabled_at = ctx.clock() if spec.enabled else None
        self.on_expire = on_expire
        self.per_command = spec.per_command

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    def disabled(self, ctx: FaultContext) -> FaultState:
        """This fault turned off: the same behaviour object (a hold it started stays tied to
        it) and the same counters, so a list still shows what it did."""
        state = FaultState(dataclasses.replace(self.spec, enabled=False), ctx,
                           self.fault.protocol, self.on_expire, self.fault)
        state.seen, state.fired, state.last_fired = self.seen, self.fired, self.last_fired
        return state

    def expired(self, now: float) -> bool:
        duration = self.spec.duration
        return duration is not None and self.enabled_at is not None and (
            now - self.enabled_at >= duration
        )

    def roll(self, ctx: FaultContext, request: tuple[str, str, Mapping[str, str]] | None,
             command: Mapping[str, str] | None = None) -> bool:
        spec = self.spec
        if self.per_command != (command is not None):
            return False  # rolled for each command, or for each connection / request
        now = ctx.clock()
        if self.expired(now):
            self.on_expire(self, f"its time ({spec.duration:g}s) is up", True)
            return False
        if spec.match is not None and command is not None:
            if not spec.match.matches_command(command):
                return False
        elif spec.match is not None and request is not None and not spec.match.matches(*request):
            return False
        self.seen += 1
        if self.seen <= spec.after:
            return False
        if spec.probability < 1.0 and ctx.rng.random() >= spec.probability:
            return False
        self.fired += 1
        self.last_fired = now
        if spec.times is not None and self.fired >= spec.times:
            # off for the next exchanges; this one (a hold, say) still gets the fault
            self.on_expire(self, f"it fired {spec.times} times", False)
        return True

    def to_json(self) -> dict[str, object]:
        data = self.spec.to_json()
        data.update(fired=self.fired, seen=self.seen, last_fired=self.last_fired)
        return data


class ShaperChain:
    """The shapers of one stream, in the plan's order: each piece one lets out goes through
    the next (push-style: `feed` each chunk, `finish` at the end)."""

    __slots__ = ("shapers",)

    def __init__(self, shapers: Sequence[Shaper]) -> None:
        self.shapers = tuple(shapers)

    def feed(self, chunk: bytes) -> Pieces:
        first, *rest = self.shapers
        return _through(first.feed(chunk), rest)

    async def finish(self) -> Pieces:
        shapers = self.shapers
        for i, shaper in enumerate(shapers):
            async for piece in _through(shaper.finish(), shapers[i + 1:]):
                yield piece


def _through(pieces: Pieces, shapers: Sequence[Shaper]) -> Pieces:
    for shaper in shapers:
        pieces = _then(pieces, shaper)
    return pieces


async def _then(pieces: Pieces, shaper: Shaper) -> Pieces:
    async for piece in pieces:
        async for out in shaper.feed(piece):
            yield out


@dataclass
class Shaping:
    """The byte-shaping part of a plan: the HTTP service applies it to whatever response and
    request body the target produces (service/shaping.py), the TCP relay to both streams."""

    first_byte: list[Fault] = field(default_factory=list)
    end: list[Fault] = field(default_factory=list)
    down: list[Fault] = field(default_factory=list)
    up: list[Fault] = field(default_factory=list)

    async def before_first_byte(self) -> None:
        for fault in self.first_byte:
            await fault.before_first_byte()

    async def before_end(self) -> None:
        for fault in self.end:
            await fault.before_end()

    def downstream(self, stream: Stream) -> Stream:
        for fault in self.down:
            stream = fault.shape(stream, DOWNSTREAM)
        return stream

    def upstream(self, stream: Stream) -> Stream:
        for fault in self.up:
            stream = fault.shape(stream, UPSTREAM)
        return stream

    def shapers(self, direction: str) -> ShaperChain | None:
        """New push-style shapers for one stream flowing in `direction`; None: no fault
        reshapes it."""
        faults = self.down if direction == DOWNSTREAM else self.up
        return ShaperChain([f.shaper(direction) for f in faults]) if faults else None

    def close_delay(self) -> float:
        return max((f.close_delay() for f in self.end), default=0.0)


@dataclass
class Plan:
    """The faults that fired for one exchange (or TCP connection), in the fixed kind order."""

    fired: list[Fault]
    names: list[str]

    @property
    def refuses(self) -> bool:
        return any(f.refuses() for f in self.fired)

    def shaping(self) -> Shaping | None:
        shaping = Shaping(
            first_byte=[f for f in self.fired if type(f).before_first_byte
                        is not Fault.before_first_byte],
            end=[f for f in self.fired if type(f).before_end is not Fault.before_end],
            down=[f for f in self.fired if f.shapes(DOWNSTREAM)],
            up=[f for f in self.fired if f.shapes(UPSTREAM)],
        )
        if shaping.first_byte or shaping.end or shaping.down or shaping.up:
            return shaping
        return None


class FaultChain:
    """An immutable, ordered set of fault states; replaced whole when faults change."""

    __slots__ = ("armed", "command_armed", "states")

    def __init__(self, states: tuple[FaultState, ...] = ()) -> None:
        self.states = tuple(sorted(states, key=lambda s: type(s.fault).ORDER))
        self.armed = any(s.enabled and not s.per_command for s in self.states)
        self.command_armed = any(s.enabled and s.per_command for s in self.states)

    def roll(self, ctx: FaultContext,
             request: tuple[str, str, Mapping[str, str]] | None = None,
             command: Mapping[str, str] | None = None) -> Plan | None:
        """Which faults fire for this exchange (or, given `command`, this command of a
        postgres/redis connection); None when none does."""
        fired = [s for s in self.states if s.enabled and s.roll(ctx, request, command)]
        if not fired:
            return None
        return Plan([s.fault for s in fired], [s.spec.name for s in fired])
