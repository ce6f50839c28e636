"""`devamb ui --web`: the TUI in a browser, served by textual-serve on loopback behind a token.

Each browser session runs `devamb attach` for the profile as a child process (textual-serve's
web driver), so the page is the same Textual app as in a terminal, and closing it leaves the
engine running. textual-serve has no authentication: a guard in front of it answers 403 unless
the request carries the random token of the URL printed at start (the page's first request
turns it into a SameSite=Strict cookie for the websocket and the static files), its Host header
names this machine (DNS rebinding) and its Origin, if any, is this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from textual_serve.server import Server

COOKIE = "devamb_ui_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def loopback_host(host: str | None) -> bool:
    """A Host header naming this machine: a loopback name or address, with or without port."""
    if not host:
        return False  # browsers always send one
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.lower() in LOOPBACK_NAMES or name.startswith("127.")


def attach_command(profile: Path) -> str:
    """What each browser session runs: this Python's devamb, attached to the profile's engine."""
    return shlex.join([sys.executable, "-m", "devamb", "attach", "--profile", str(profile)])


class WebUI(Server):
    """textual-serve's server bound to a loopback socket, with the token guard in front."""

    def __init__(
        self,
        command: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        title: str = "devamb",
        token: str | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))  # bound and listening now: the URL printed answers at once
        self.sock.listen(128)
        bound = self.sock.getsockname()[1]
        url_host = f"[{host}]" if ":" in host else host
        super().__init__(
            command, host=host, port=bound, title=title, public_url=f"http://{url_host}:{bound}"
        )
        self.token = token or secrets.token_urlsafe(24)

    @property
    def url(self) -> str:
        return f"{self.public_url}/?token={self.token}"

    def _authorised(self, request: web.Request) -> bool:
        offered = request.query.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(offered.encode(), self.token.encode())

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not loopback_host(request.headers.get("Host")):
            return web.Response(status=403, text="the Host header must name this machine\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin != self.public_url:
            return web.Response(status=403, text="requests from other sites are refused\n")
        if not self._authorised(request):
            return web.Response(status=403, text="open the URL devamb printed (with its token)\n")
        response = await handler(request)
        if "token" in request.query and not response.prepared:
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        print(f"devamb web UI: {self.url}", flush=True)
        print("each browser tab runs its own TUI on the engine; Ctrl-C stops serving", flush=True)

    def serve(self, debug: bool = False) -> None:
        """Serve until Ctrl-C or SIGTERM (blocking)."""
        self.debug = debug
        loop = asyncio.new_event_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        web.run_app(
            self._make_app(),
            sock=self.sock,
            handle_signals=False,
            loop=loop,
            print=lambda *args: None,
            access_log=None,
        )
