"""Push-style shapers: one kind's behaviour, fed chunk by chunk (HTTP) or pulled (TCP)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from devamb.faults.base import DOWNSTREAM, CutAfter, FaultContext, pulled
from devamb.faults.chain import ShaperChain
from devamb.faults.slicer import Params, SlicerFault
from devamb.proxy.errors import CutConnection
from tests.faults.conftest import FakeTime


def _slicer(size: int, time: FakeTime) -> SlicerFault:
    ctx = FaultContext(rng=random.Random(1), sleep=time.sleep, clock=time.clock)
    return SlicerFault(Params(size, 0.1), ctx, DOWNSTREAM, "http")


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_a_chain_passes_each_piece_through_the_next_shaper() -> None:
    time = FakeTime()
    chain = ShaperChain([_slicer(3, time).shaper(DOWNSTREAM), CutAfter(5, "cut", reset=True)])
    out = []
    with pytest.raises(CutConnection) as caught:
        for chunk in (b"abcd", b"efgh"):
            async for piece in chain.feed(chunk):
                out.append(piece)
    assert out == [b"abc", b"d", b"e"] and caught.value.reset
    assert time.slept == [0.1, 0.1]  # the slice that would have been third never left


async def test_pulling_gives_what_pushing_gives() -> None:
    time = FakeTime()
    fault = _slicer(2, time)
    pulled_out = [p async for p in fault.shape(_stream(b"abcde", b"f"), DOWNSTREAM)]
    chain = ShaperChain([fault.shaper(DOWNSTREAM)])
    pushed = [p for chunk in (b"abcde", b"f") async for p in chain.feed(chunk)]
    pushed += [p async for p in chain.finish()]
    assert pulled_out == pushed == [b"ab", b"cd", b"e", b"f"]
    assert [p async for p in pulled(_stream(b"xy"), CutAfter(5, "cut", reset=False))] == [b"xy"]
