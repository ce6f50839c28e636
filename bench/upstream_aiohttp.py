"""Fallback upstream when nginx is missing: `python upstream_aiohttp.py PORT` serves /1k and /1m."""

from __future__ import annotations

import os
import sys

from aiohttp import web

BODIES = {"/1k": os.urandom(1024), "/1m": os.urandom(1024 * 1024)}


async def serve(request: web.Request) -> web.Response:
    body = BODIES.get(request.path)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type="application/octet-stream")


def main() -> None:
    app = web.Application()
    app.router.add_get("/{name}", serve)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
