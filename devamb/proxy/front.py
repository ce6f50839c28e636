"""The client-facing HTTP front end: aiohttp's protocol with two guards a proxy needs.

- A header timeout: a client must finish a request's headers within `HEADER_TIMEOUT` seconds
  of its first byte, so slow-drip (slowloris) connections cannot pile up.
- Precise refusals: a header line over the limit answers 431, an over-long request line 414,
  other malformed requests 400 — without a traceback in the log for each.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

HEADER_TIMEOUT = 10.0
REQUEST_LINE = re.compile(rb"^(/|[A-Z]+ )")  # what an over-long request line starts with


class FrontHandler(RequestHandler):  # type: ignore[misc]
    header_timeout = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        waiting_before = len(self._messages)
        super().data_received(data)
        if len(self._messages) > waiting_before or self._upgraded:
            self._cancel_header_timer()  # a whole request head arrived
        elif self._header_timer is None and self._payload_parser is None and data:
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self._messages:
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, LineTooLong):
            line = exc.args[0] if exc.args else b""
            line = bytes(line) if isinstance(line, bytes | bytearray) else str(line).encode()
            status = 414 if REQUEST_LINE.match(line) else 431
            message = "request line too long" if status == 414 else "request header too large"
        if status < 500:  # the client's mistake: answer it, do not log a traceback
            response = web.Response(status=status, text=message or "bad request")
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


class FrontServer(web.Server):
    def __call__(self) -> RequestHandler:
        return FrontHandler(self, loop=self._loop, **self._kwargs)
