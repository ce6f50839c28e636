"""A proxy created through the Toxiproxy API shows in the TUI's services table (the real
in-process engine), and goes when it is deleted."""

from __future__ import annotations

import aiohttp

from devamb.toxiproxy.api import ToxiproxyServer
from tests.conftest import EngineFactory
from tests.toxiproxy.test_api import PROFILE
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.widgets.services_table import ServicesTable


async def test_a_proxy_shows_in_the_tui(make_engine: EngineFactory) -> None:
    engine = await make_engine(PROFILE)
    server = ToxiproxyServer(engine, "127.0.0.1", 0)
    await server.start()
    app = make_app(engine, poll_status=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot, aiohttp.ClientSession() as http:
            await settled(pilot)
            table = app.main.query_one(ServicesTable)
            assert table.row_count == 1
            body = {"name": "redis", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0"}
            async with http.post(f"http://{server.address}/proxies", json=body) as response:
                assert response.status == 201
            await until(pilot, lambda: table.row_count == 2, "the proxy's service")
            async with http.delete(f"http://{server.address}/proxies/redis") as response:
                assert response.status == 204
            await until(pilot, lambda: table.row_count == 1, "the service to go")
    finally:
        await server.stop()
