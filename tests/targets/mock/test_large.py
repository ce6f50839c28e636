"""A mock file of many routes: the first matching route in file order answers, found through the
path index; an unmatched request still names close routes, from a bounded scan."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from multidict import CIMultiDict, MultiDict

from devamb.targets.mock.matching import RequestView
from devamb.targets.mock.target import CLOSEST_SCAN, MockTarget
from tests.conftest import EngineFactory, listen_url

COUNT = CLOSEST_SCAN + 500


def _mock_file(path: Path, *, catch_all: bool = True) -> None:
    lines = ["routes:"]
    for i in range(COUNT):
        lines.append(f"  - match: {{method: GET, path: '/items/{i}/{{id}}'}}")
        lines.append(f"    respond: {{body: 'item {i} {{{{path.id}}}}'}}")
    if catch_all:
        lines.append("  - match: {path: '/items/**'}")  # a regex path: always a candidate
        lines.append("    respond: {body: catch-all}")
    lines.append("  - match: {method: GET, path: /exact}")
    lines.append("    respond: {body: first}")
    lines.append("  - match: {path: /exact}")
    lines.append("    respond: {body: second}")
    path.write_text("\n".join(lines) + "\n")


async def test_many_routes_answer_in_file_order(tmp_path: Path, make_engine: EngineFactory) -> None:
    _mock_file(tmp_path / "big.yaml")
    engine = await make_engine("""
    services:
      api:
        listen: 0
        targets: {mock: {mock: big.yaml}}
    """)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        for target, expected in [
            (f"/items/{COUNT - 1}/7", f"item {COUNT - 1} 7"),
            ("/items/3/x", "item 3 x"),
            ("/items/3/x/y", "catch-all"),
            ("/items/nope/x", "catch-all"),
            ("/exact", "first"),
        ]:
            async with client.get(url + target) as resp:
                assert await resp.text() == expected, target
        async with client.post(url + "/exact") as resp:
            assert await resp.text() == "second"
        async with client.post(url + f"/items/{COUNT - 1}") as resp:
            assert await resp.text() == "catch-all"
        async with client.post(url + f"/other/{COUNT - 1}/7") as resp:
            assert resp.status == 404
            closest = (await resp.json())["closest"]
            assert len(closest) == 3  # named from a bounded scan
    mock = engine.services["api"].targets["mock"]
    assert isinstance(mock, MockTarget) and mock.details()["unmatched_count"] == 1


async def test_an_unmatched_request_names_a_route_whose_path_fits_beyond_the_scan(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    _mock_file(tmp_path / "big.yaml", catch_all=False)
    engine = await make_engine("""
    services:
      api:
        listen: 0
        targets: {mock: {mock: big.yaml, fallback: {status: 404}}}
    """)
    mock = engine.services["api"].targets["mock"]
    assert isinstance(mock, MockTarget)
    view = RequestView("POST", f"/items/{COUNT - 1}/7", MultiDict(), CIMultiDict(), b"")
    best = mock.closest(view)[0]
    assert best["index"] == COUNT - 1 and "method POST is not GET" in best["why"]
