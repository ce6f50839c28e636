"""WebSocket upgrades passed through in both directions."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from devamb.proxy.errors import UpstreamFailed

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange

_HANDSHAKE = (
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
)


class WebSocketClient:
    """The aiohttp session a target opens WebSockets with: upgrades are rare, so it is made when
    first needed (the plain HTTP path uses the lean pool in upstream.py instead)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl or True),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _valid_handshake(request: web.BaseRequest, protocols: list[str]) -> bool:
    try:  # aiohttp raises plain ValueErrors for some bad keys (non-ASCII, not base64)
        return web.WebSocketResponse(protocols=protocols).can_prepare(request).ok
    except ValueError:
        return False


async def relay_websocket(
    session: aiohttp.ClientSession,
    request: web.BaseRequest,
    url: URL,
    headers: CIMultiDict[str],
    exchange: Exchange,
    timeout: float,
) -> web.StreamResponse:
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    if not _valid_handshake(request, protocols):  # checked before the upstream is bothered
        raise UpstreamFailed(400, "bad-websocket-handshake",
                             "the WebSocket upgrade request is malformed")
    for name in _HANDSHAKE:
        headers.popall(name, None)
    ws_url = url.with_scheme("wss" if url.scheme == "https" else "ws")
    try:
        upstream = await session.ws_connect(
            ws_url, headers=headers, protocols=protocols, timeout=aiohttp.ClientWSTimeout(timeout)
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise UpstreamFailed(502, "websocket-refused", f"upstream refused: {exc.status}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamFailed(502, "connect-failed", f"websocket to {url.host}: {exc}") from None
    downstream = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else ())
    try:
        await downstream.prepare(request)
    except BaseException:  # the client went away during the handshake: let go of the upstream
        await upstream.close(code=1001)
        raise
    exchange.status = 101

    async def pump(source, sink, inbound: bool) -> None:  # type: ignore[no-untyped-def]
        async for msg in source:
            if msg.type == WSMsgType.TEXT:
                await sink.send_str(msg.data)
                data = msg.data.encode()
            elif msg.type == WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
                data = msg.data
            else:
                break
            (exchange.request_body if inbound else exchange.response_body).add(data)
        await sink.close(code=source.close_code or 1000)

    tasks = [
        asyncio.create_task(pump(downstream, upstream, True)),
        asyncio.create_task(pump(upstream, downstream, False)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        await downstream.close()
    return downstream
