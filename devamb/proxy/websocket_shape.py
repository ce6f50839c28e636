"""Faults on a relayed WebSocket's frames, after the handshake.

A direction with faults goes through a `FrameFlow`: a task that cuts the bytes at frame
boundaries (so latency delays each message), passes them through the faults' shapers
(bandwidth, slicer, cuts after N bytes) and then writes them to the other side and the record.
slow_close delays the upstream's close frame. The faults come from `request.frame_shaping`, which
the service fills (faults.chain.Shaping); this module knows them only by the Protocols below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

from devamb.proxy.errors import CutConnection
from devamb.proxy.flow import FlowQueue

if TYPE_CHECKING:
    from devamb.proxy.websocket import _Session, _Side

FRAME_GATHER = 256 * 1024  # a frame up to this size is shaped whole; a longer one in pieces
MAX_FRAME = 2**31  # a longer frame is taken for garbage: bytes then pass as they come
UPSTREAM, DOWNSTREAM = "upstream", "downstream"  # client -> upstream, upstream -> client

Stream = AsyncIterator[bytes]


class FrameFault(Protocol):
    """A fault as the relay sees it (faults.base.Fault): `FRAMES` kinds act on frames."""

    FRAMES: ClassVar[bool]  # whether this kind acts on a WebSocket's frames after the handshake
    ORDER: ClassVar[int]
    direction: str  # upstream | downstream | both

    def shape(self, stream: Stream, direction: str) -> Stream: ...


class FrameShaping(Protocol):
    """What `request.frame_shaping` (faults.chain.Shaping) holds for this relay: the fired faults
    with byte or timing hooks, and the slow_close delay."""

    @property
    def first_byte(self) -> Sequence[FrameFault]: ...

    @property
    def end(self) -> Sequence[FrameFault]: ...

    @property
    def down(self) -> Sequence[FrameFault]: ...

    @property
    def up(self) -> Sequence[FrameFault]: ...

    def close_delay(self) -> float: ...

log = logging.getLogger("devamb.proxy")


def frame_faults(shaping: FrameShaping | None,
                 direction: str) -> tuple[list[FrameFault], float]:
    """The faults that act on frames flowing in `direction`, in their kinds' order, and the
    slow_close delay (downstream only: the upstream's close comes late)."""
    if shaping is None:
        return [], 0.0
    fired: dict[int, FrameFault] = {}
    for fault in (*shaping.first_byte, *shaping.end, *shaping.down, *shaping.up):
        if getattr(fault, "FRAMES", False) and fault.direction in (direction, "both"):
            fired.setdefault(id(fault), fault)
    faults = sorted(fired.values(), key=lambda f: f.ORDER)
    return faults, shaping.close_delay() if direction == DOWNSTREAM else 0.0


class FrameFlow(FlowQueue):
    """One direction of a faulted session: what `source` receives, cut at frame boundaries,
    through the faults' shapers, then written to its peer and recorded, in a task."""

    def __init__(self, session: _Session, source: _Side, faults: list[FrameFault],
                 direction: str, close_delay: float) -> None:
        super().__init__(source.pause_reading, self._resume_source)
        self.session = session
        self.source = source
        self.close_delay = close_delay  # slow_close: the upstream's close frame comes late
        stream: Stream = split_frames(self.chunks(), self._before_close if close_delay else None)
        for fault in faults:
            stream = fault.shape(stream, direction)
        self.task = asyncio.get_running_loop().create_task(self._run(stream))

    def _resume_source(self) -> None:
        """Read the source again, unless its peer's buffer is still full (its own resume_writing
        resumes it then)."""
        if self.source.peer is None or not self.source.peer.write_paused:
            self.source.resume_reading()

    async def _before_close(self) -> None:
        delay, self.close_delay = self.close_delay, 0.0  # once
        await asyncio.sleep(delay)

    async def _run(self, stream: Stream) -> None:
        source = self.source
        try:
            async for piece in stream:
                sink = source.peer
                if sink is None or sink.lost:
                    return
                sink.write(piece)
                if source.recorder is not None:
                    source.recorder.feed(piece)
                if not sink.writable.is_set():
                    await sink.writable.wait()
        except CutConnection as exc:
            self.session.cut(exc.reason, with_reset=exc.reset)
            return
        except Exception:  # a bug must not leave the session hanging
            log.exception("websocket frame shaping failed")
            self.session.cut("devamb: frame shaping failed", with_reset=True)
            return
        if self.close_delay:  # the upstream closed without a close frame
            await self._before_close()
        source.pass_end(source.error)
        self.session.ending.set()


async def split_frames(stream: Stream,
                       before_close: Callable[[], Awaitable[None]] | None = None) -> Stream:
    """The same bytes, one WebSocket frame per chunk (a frame longer than FRAME_GATHER in
    pieces); `before_close` is awaited before a close frame. Bytes that do not read as frames
    pass as they come."""
    buffer = bytearray()
    need: int | None = None  # bytes of the current frame still to come, once its header is read
    following = True
    async for chunk in stream:
        if not following:
            yield chunk
            continue
        buffer += chunk
        pos = 0  # what is before it was passed on (cut once per chunk: no copy per frame)
        while pos < len(buffer):
            if need is None:
                need = _frame_size(buffer, pos)
                if need is None:
                    break  # the header is not all here yet
                if need < 0:
                    following = False
                    break
                if before_close is not None and buffer[pos] & 0x0F == 0x8:
                    await before_close()
                    before_close = None
            if len(buffer) - pos >= need:
                yield bytes(buffer[pos : pos + need])
                pos += need
                need = None
            elif len(buffer) - pos >= FRAME_GATHER:
                piece = bytes(buffer[pos:])
                need -= len(piece)
                pos = len(buffer)
                yield piece
            else:
                break
        del buffer[:pos]
        if not following and buffer:
            piece = bytes(buffer)
            buffer.clear()
            yield piece
    if buffer:
        yield bytes(buffer)


def _frame_size(buffer: bytearray, at: int) -> int | None:
    """The whole size of the frame at `at`, from its header; None if the header is cut, -1 if
    it is not a frame."""
    if len(buffer) - at < 2:
        return None
    b1 = buffer[at + 1]
    length = b1 & 0x7F
    extra = 2 if length == 126 else 8 if length == 127 else 0
    if len(buffer) - at < 2 + extra:
        return None
    if extra:
        length = int.from_bytes(buffer[at + 2 : at + 2 + extra])
        if length > MAX_FRAME:
            return -1
    return 2 + extra + (4 if b1 & 0x80 else 0) + length
