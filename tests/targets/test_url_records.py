"""A URL target's recorded URLs: its origin and prefix as yarl writes them (worked out at the
first exchange, when yarl is first needed: issue 22, RSS after start) and the raw path."""

from __future__ import annotations

import aiohttp
from yarl import URL

from devamb.targets.url import UrlTarget
from tests.conftest import EngineFactory, listen_url
from tests.replicas import Replica


async def test_recorded_urls_are_the_upstream_urls_from_the_first_exchange_on(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    port = replicas[0].port
    engine = await make_engine(f"""\
        services:
          api:
            listen: 0
            target: up
            targets:
              up: http://LocalHost:{port}/v1/
        """)
    target = engine.services["api"].targets["up"]
    assert isinstance(target, UrlTarget)
    paths = ["/a%20b?q=1&q=2", "/a%20b?q=1&q=2", "/c"]
    async with aiohttp.ClientSession() as session:
        for path in paths:
            async with session.get(URL(listen_url(engine, "api") + path, encoded=True)) as got:
                assert got.status == 200
    recorded = [e.url for e in engine.store.all()]
    written = [str(URL(f"http://LocalHost:{port}/v1{path}", encoded=True)) for path in paths]
    assert recorded == written
    assert [s.path_qs for s in replicas[0].seen] == [f"/v1{p}" for p in paths]
