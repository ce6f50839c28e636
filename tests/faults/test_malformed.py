"""malformed: broken HTTP responses that make a real client raise; the upstream sees nothing."""

from __future__ import annotations

import aiohttp
import pytest

from tests.faults.conftest import SetupFactory, get, raw_exchange

EXPECTED = {
    "bad-chunk": (aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
    "garbage": aiohttp.ClientResponseError,
    "empty": aiohttp.ServerDisconnectedError,
    "short-body": aiohttp.ClientPayloadError,
}


@pytest.mark.parametrize("mode", list(EXPECTED))
async def test_a_client_raises(setup: SetupFactory, mode: str) -> None:
    s = await setup()
    await s.add("api", name="broken", kind="malformed", mode=mode)
    async with aiohttp.ClientSession() as client:
        with pytest.raises(EXPECTED[mode]):
            async with client.get(s.url + "/x") as r:
                await r.read()
    assert s.http.seen == []
    [record] = await s.recorded(1)
    assert record.faults == ["broken"]
    assert record.error == f"fault malformed: sent a {mode} response"


async def test_the_bytes_are_what_the_mode_says(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="broken", kind="malformed")  # bad-chunk by default
    received, error = await raw_exchange(s.engine.services["api"].bound[1], get())
    assert error is None
    assert received.startswith(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
    assert b"\r\n\r\nzz\r\n" in received


async def test_malformed_is_an_http_fault_with_known_modes(setup: SetupFactory) -> None:
    from devamb.control.protocol import ControlError

    s = await setup()
    with pytest.raises(ControlError, match="faults apply to http services only"):
        await s.add("raw", kind="malformed")
    with pytest.raises(ControlError, match="'weird' is not one of bad-chunk, garbage"):
        await s.add("api", kind="malformed", mode="weird")
