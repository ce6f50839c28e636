"""A real upstream with the kinds of answers recordings meet, and a script of calls to it."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from devamb.inspect.masking import MASK
from tests.upstreams import serve_app

TOKEN = "s3cret-token-value"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class RecordedUpstream:
    """JSON, text, binary, changing answers, secrets echoed back, volatile headers."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)
        app = web.Application()
        app.router.add_get("/users/{id}", self.user)
        app.router.add_get("/items", self.items)
        app.router.add_get("/counter", self.count)
        app.router.add_get("/static", self.static)
        app.router.add_post("/orders", self.order)
        app.router.add_get("/logo.png", self.logo)
        app.router.add_get("/whoami", self.whoami)
        app.router.add_get("/braces", self.braces)
        app.router.add_get("/gone", self.gone)
        self.app = app
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> RecordedUpstream:
        self.runner, port = await serve_app(self.app, shutdown_timeout=0.2)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @staticmethod
    def _volatile() -> dict[str, str]:
        return {"X-Request-Id": uuid.uuid4().hex, "X-Custom": "kept"}

    async def user(self, request: web.Request) -> web.Response:
        uid = int(request.match_info["id"])
        response = web.json_response(
            {"id": uid, "name": f"user {uid}", "password": "hunter2", "tags": ["a", "b"]},
            headers=self._volatile(),
        )
        response.set_cookie("session", "abc123", path="/")
        return response

    async def items(self, request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        return web.json_response({"page": page, "items": [page * 10, page * 10 + 1]})

    async def count(self, request: web.Request) -> web.Response:
        return web.Response(text=f"count {next(self.counter)}", headers=self._volatile())

    async def static(self, request: web.Request) -> web.Response:
        return web.Response(text="same\nevery time\n", headers=self._volatile())

    async def order(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"accepted": body["kind"], "qty": body["qty"], "price": 9.5 * body["qty"]},
            status=201,
        )

    async def logo(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers.get("Authorization")})

    async def braces(self, request: web.Request) -> web.Response:
        return web.Response(text="literal {{query.x}} stays")

    async def gone(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "gone"}, status=410)


CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/users/1", None),
    ("GET", "/users/2", None),
    ("GET", "/items", None),
    ("GET", "/items?page=2", None),
    ("GET", "/items?page=3", None),
    ("GET", "/counter", None),
    ("GET", "/counter", None),
    ("GET", "/counter", None),
    ("GET", "/static", None),
    ("GET", "/static", None),
    ("POST", "/orders", {"kind": "book", "qty": 1}),
    ("POST", "/orders", {"kind": "pen", "qty": 3}),
    ("POST", "/orders", {"kind": "book", "qty": 2}),
    ("GET", "/logo.png", None),
    ("GET", "/whoami", None),
    ("GET", "/braces?x=1", None),
    ("GET", "/gone", None),
    ("GET", "/users/1", None),
]


async def run_calls(base: str) -> list[dict[str, Any]]:
    """Each call's answer: status, the headers a client relies on, and the body (parsed JSON)."""
    answers = []
    async with aiohttp.ClientSession() as client:
        for method, path, payload in CALLS:
            async with client.request(method, base + path, json=payload) as resp:
                data = await resp.read()
                kind = resp.headers.get("Content-Type", "")
                answers.append(
                    {
                        "call": f"{method} {path}",
                        "status": resp.status,
                        "content_type": kind,
                        "x_custom": resp.headers.get("X-Custom"),
                        "set_cookie": resp.headers.get("Set-Cookie"),
                        "body": json.loads(data) if "json" in kind else data,
                    }
                )
    return answers


def live_profile(url: str) -> str:
    return f"""
    version: 1
    services:
      api:
        listen: 0
        target: live
        inspect: {{redact: [password]}}
        targets:
          live:
            url: {url}
            headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
    """


def mock_profile(url: str, mock: str = "mocks/api.yaml") -> str:
    return live_profile(url).replace("target: live", "target: mock") + f"""
          mock: {{mock: {mock}}}
    """


def redacted(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a recording keeps of each answer: named fields, cookies and secrets masked."""
    out = []
    for answer in answers:
        answer = dict(answer)
        if isinstance(answer["body"], dict) and "password" in answer["body"]:
            answer["body"] = {**answer["body"], "password": MASK}
        if answer["call"] == "GET /whoami":
            answer["body"] = {"auth": f"Bearer {MASK}"}
        if answer["set_cookie"]:
            answer["set_cookie"] = f"session={MASK}; Path=/"
        out.append(answer)
    return out
