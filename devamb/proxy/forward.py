"""Streams one HTTP exchange to an upstream and back, never holding a whole body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from yarl import URL

from devamb.proxy.errors import UpstreamFailed
from devamb.proxy.headers import request_headers, response_headers
from devamb.proxy.websocket import is_websocket, relay_websocket

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange


async def forward_http(
    session: aiohttp.ClientSession,
    request: web.BaseRequest,
    url: URL,
    exchange: Exchange,
    *,
    extra_headers: Mapping[str, str],
    keep_host: bool,
    timeout: float,
) -> web.StreamResponse:
    headers = request_headers(
        request.headers, client_ip=request.remote, keep_host=keep_host, extra=extra_headers
    )
    if is_websocket(request):
        return await relay_websocket(session, request, url, headers, exchange, timeout)
    data = _count_in(request, exchange) if request.body_exists else None
    try:
        async with asyncio.timeout(timeout):
            upstream = await session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False
            )
    except TimeoutError:
        raise UpstreamFailed(504, "timeout", f"no response within {timeout:g}s") from None
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamFailed(
            502,
            "connect-failed",
            f"cannot connect to {url.host}:{url.port}: {exc.os_error.strerror or exc.os_error}",
        ) from None
    except aiohttp.ServerDisconnectedError:
        raise UpstreamFailed(502, "upstream-closed", "upstream closed the connection") from None
    except aiohttp.ClientError as exc:
        raise UpstreamFailed(502, "upstream-error", f"{type(exc).__name__}: {exc}") from None
    try:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(response_headers(upstream.headers))
        exchange.status = upstream.status
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            exchange.bytes_out += len(chunk)
            await response.write(chunk)
        await response.write_eof()
        return response
    except aiohttp.ClientPayloadError as exc:
        exchange.error = f"upstream broke off the body: {exc}"
        _abort(request)
        return response
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        exchange.error = "client went away"
        return response
    finally:
        upstream.release()


async def _count_in(request: web.BaseRequest, exchange: Exchange) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_any():
        exchange.bytes_in += len(chunk)
        yield chunk


def _abort(request: web.BaseRequest) -> None:
    """The status line is gone already: the only honest signal left is to cut the connection."""
    transport = request.transport
    if transport is not None:
        transport.abort()
