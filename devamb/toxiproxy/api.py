"""A Toxiproxy-compatible HTTP API (Toxiproxy 2.x's routes, JSON shapes, status codes and error
bodies), served by the engine when `devamb up --toxiproxy-api` asks for it.

Like Toxiproxy's own server, errors answer `{"error": MESSAGE, "status": CODE}` as text/plain
(Go's http.Error), and browsers are refused. Unlike it, the API listens on loopback only and
refuses requests whose Host is not a loopback name (DNS rebinding) or that carry an Origin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devamb import __version__
from devamb.profile.schema import LOOPBACK_HOSTS
from devamb.toxiproxy.errors import ApiError, bad_request_body, missing_field
from devamb.toxiproxy.proxies import ProxyTable, RuntimeEngine

log = logging.getLogger("devamb.toxiproxy")
TOXIPROXY_VERSION = "2.12.0"  # the Toxiproxy API this one follows
TABLE = web.AppKey("proxies", ProxyTable)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(exc: ApiError) -> web.Response:
    """As Go's http.Error writes it: the JSON, a newline, text/plain."""
    return web.Response(
        status=exc.status, text=json.dumps(exc.to_json(), separators=(",", ":")) + "\n",
        content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"},
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, separators=(",", ":")).encode(),
                        content_type="application/json")


def _loopback_host(host: str | None) -> bool:
    """A Host header naming this machine: a loopback name or address, with or without port."""
    if host is None:
        return True  # HTTP/1.0 clients send none
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host
    else:
        name = host.split(":")[0] if host.count(":") == 1 else host
    return name.lower() in LOOPBACK_HOSTS or name.startswith("127.")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse browsers (Origin, or a Mozilla User-Agent as Toxiproxy does) and other Hosts;
    turn ApiErrors and routing refusals into Toxiproxy's answers."""
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed\n",
                            content_type="text/plain", charset="utf-8")
    if "Origin" in request.headers:
        return _error(ApiError("requests from browsers are refused", 403))
    if not _loopback_host(request.headers.get("Host")):
        return _error(ApiError("the Host header must name this machine (127.0.0.1, "
                               "localhost or ::1)", 403))
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc)
    except web.HTTPNotFound:
        return web.Response(status=404, text="404 page not found\n", content_type="text/plain",
                            charset="utf-8")
    except web.HTTPMethodNotAllowed:
        return web.Response(status=405)


async def _body(request: web.Request) -> object:
    """The request's JSON (Go's decoder: an empty body is EOF)."""
    text = await request.text()
    if not text.strip():
        raise bad_request_body("EOF")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise bad_request_body(str(exc)) from None


def _table(request: web.Request) -> ProxyTable:
    return request.app[TABLE]


async def proxy_index(request: web.Request) -> web.Response:
    proxies = _table(request).proxies
    return _json({name: proxies[name].to_json() for name in sorted(proxies)})


async def proxy_create(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise bad_request_body("json: cannot unmarshal into Go value of type toxiproxy.Proxy")
    name, upstream, listen = body.get("name"), body.get("upstream"), body.get("listen", "")
    enabled = body.get("enabled", True)
    if not isinstance(name, str) or not name:
        raise missing_field("name")
    if not isinstance(upstream, str) or not upstream:
        raise missing_field("upstream")
    if not isinstance(listen, str) or not isinstance(enabled, bool):
        raise bad_request_body("json: listen must be a string and enabled a boolean")
    table = _table(request)
    async with table.changing():
        proxy = await table.create(name, listen, upstream, enabled)
    return _json(proxy.to_json(), 201)


async def populate(request: web.Request) -> web.Response:
    table = _table(request)
    body = await _body(request)
    async with table.changing():
        proxies, error = await table.populate(body)
    data: dict[str, Any] = error.to_json() if error is not None else {}
    data["proxies"] = [p.to_json() for p in proxies] or None  # Go's nil slice: null
    return _json(data, error.status if error is not None else 201)


async def reset(request: web.Request) -> web.Response:
    table = _table(request)
    async with table.changing():
        await table.reset()
    return web.Response(status=204)


async def proxy_show(request: web.Request) -> web.Response:
    return _json(_table(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    table = _table(request)
    async with table.changing():
        proxy = table.get(request.match_info["proxy"])
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request_body("json: cannot unmarshal into Go value of type toxiproxy.Proxy")
        proxy = await table.update(proxy, body)
    return _json(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    table = _table(request)
    async with table.changing():
        await table.delete(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    proxy = _table(request).get(request.match_info["proxy"])
    return _json([t.to_json() for t in proxy.toxic_list()])


async def toxic_create(request: web.Request) -> web.Response:
    table = _table(request)
    async with table.changing():
        proxy = table.get(request.match_info["proxy"])
        toxic = await table.add_toxic(proxy, await _body(request))
    return _json(toxic.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    table = _table(request)
    proxy = table.get(request.match_info["proxy"])
    return _json(table.toxic(proxy, request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    table = _table(request)
    async with table.changing():
        proxy = table.get(request.match_info["proxy"])
        toxic = await table.update_toxic(proxy, request.match_info["toxic"],
                                         await _body(request))
    return _json(toxic.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    table = _table(request)
    async with table.changing():
        proxy = table.get(request.match_info["proxy"])
        await table.remove_toxic(proxy, request.match_info["toxic"])
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    text = json.dumps({"version": f"{TOXIPROXY_VERSION}+devamb.{__version__}"}) + "\n"
    return web.Response(body=text.encode(),
                        headers={"Content-Type": "application/json;charset=utf-8"})


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/reset", reset),
    ("GET", "/proxies", proxy_index),
    ("POST", "/proxies", proxy_create),
    ("POST", "/populate", populate),
    ("GET", "/proxies/{proxy}", proxy_show),
    ("POST", "/proxies/{proxy}", proxy_update),
    ("PATCH", "/proxies/{proxy}", proxy_update),
    ("DELETE", "/proxies/{proxy}", proxy_delete),
    ("GET", "/proxies/{proxy}/toxics", toxic_index),
    ("POST", "/proxies/{proxy}/toxics", toxic_create),
    ("GET", "/proxies/{proxy}/toxics/{toxic}", toxic_show),
    ("POST", "/proxies/{proxy}/toxics/{toxic}", toxic_update),
    ("PATCH", "/proxies/{proxy}/toxics/{toxic}", toxic_update),
    ("DELETE", "/proxies/{proxy}/toxics/{toxic}", toxic_delete),
    ("GET", "/version", version),
)


def make_app(engine: RuntimeEngine) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[TABLE] = ProxyTable(engine)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app


class ToxiproxyServer:
    """The API on a loopback address; `port` 0 picks a free one (see `address`)."""

    def __init__(self, engine: RuntimeEngine, host: str, port: int) -> None:
        self.app = make_app(engine)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    @property
    def proxies(self) -> ProxyTable:
        return self.app[TABLE]

    async def start(self) -> None:
        runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=1.0,
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]  # the port it got, when 0 was asked
        log.info("Toxiproxy API on http://%s", self.address)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
