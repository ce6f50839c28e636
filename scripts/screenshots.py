"""Write SVG screenshots of the TUI into screenshots/, from the app running on the demo profile.

    python scripts/screenshots.py [--profile profiles/demo.yaml] [--out screenshots]

It starts the real engine in-process, sends a little traffic through its listeners (and switches
a target, so the events pane has something to say), then drives the app with Pilot and saves one
SVG per screen (faults and diff too: it adds two faults to `api` and replays one exchange to
another target). If the demo's ports are taken, it runs a copy of the profile on free ports.
The demo has no pool, so target-detail.svg comes from the UI tests' fake engine; the gRPC shots
(grpc-traffic.svg, grpc-detail.svg) run profiles/grpc.yaml with a grpcio client (a test extra).
`--only databases` (sql-traffic.svg, sql-detail.svg, slow-statements.svg) starts a throwaway
PostgreSQL cluster and a redis-server (tests/wire/pg.py, Debian's postgresql and redis-server)
and sends them an app's statements with psycopg and redis-py through a postgres and a redis
service.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from devamb.engine.assembly import load_profile  # noqa: E402
from devamb.engine.core import Engine  # noqa: E402
from ui.app import make_app  # noqa: E402
from ui.messages import SwitchRequested  # noqa: E402
from ui.screens.choose_target import ChooseTarget  # noqa: E402
from ui.screens.diff import DiffScreen  # noqa: E402
from ui.screens.faults import FaultsScreen  # noqa: E402
from ui.screens.target_detail import TargetDetail  # noqa: E402
from ui.widgets.traffic_list import TrafficList  # noqa: E402

SIZE = (120, 34)


async def start_engine(profile: Path) -> Engine:
    engine = Engine(load_profile(profile))
    try:
        await engine.start()
    except OSError:
        # the demo's fixed ports are in use: run a copy on free ports instead
        text = re.sub(r"(?m)^(\s+listen:\s*)\d+", r"\g<1>0", profile.read_text())
        copy = Path(tempfile.mkdtemp()) / profile.name
        copy.write_text(text)
        engine = Engine(load_profile(copy))
        await engine.start()
    return engine


def url(engine: Engine, service: str) -> str:
    bound = engine.services[service].bound
    assert bound is not None
    return f"http://{bound[0]}:{bound[1]}"


async def send_traffic(engine: Engine, seconds: float) -> None:
    """A plausible mix of requests through the web and api listeners, at a rate that varies."""
    web, api = url(engine, "web"), url(engine, "api")
    requests = [
        ("GET", f"{web}/products?page=2", None),
        ("POST", f"{api}/orders", {"sku": "A-1042", "quantity": 2}),
        ("GET", f"{api}/users/42", None),
        ("GET", f"{web}/cart", None),
        ("DELETE", f"{api}/sessions/9f3c", None),
    ]
    loop = asyncio.get_running_loop()
    start = loop.time()
    index = 0
    async with aiohttp.ClientSession() as client:
        while (elapsed := loop.time() - start) < seconds:
            method, address, body = requests[index % len(requests)]
            index += 1
            try:
                async with client.request(method, address, json=body) as response:
                    await response.read()
            except aiohttp.ClientError:
                pass
            rate = 30 + 25 * math.sin(elapsed / 2)  # requests per second, between 5 and 55
            await asyncio.sleep(1 / rate)


async def send_tcp(engine: Engine, count: int = 5) -> None:
    bound = engine.services["cache"].bound
    assert bound is not None
    for _ in range(count):
        reader, writer = await asyncio.open_connection(*bound)
        writer.write(b"PING\r\n")
        await writer.drain()
        await reader.read(6)
        writer.close()
        await writer.wait_closed()


async def wait_for(
    pilot: Pilot, condition: Callable[[], bool], seconds: float = 10.0, required: bool = True
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            if required:
                notes = [n.message for n in pilot.app._notifications]
                raise SystemExit(f"{pilot.app.screen} did not become the expected screen {notes}")
            return False
        await pilot.pause(0.05)
    return True


async def shoot(pilot: Pilot, out: Path, name: str) -> None:
    await pilot.pause()
    path = pilot.app.save_screenshot(filename=f"{name}.svg", path=str(out))
    print(f"wrote {path}", file=sys.__stdout__)  # the running app captures sys.stdout


async def main(profile: Path, out: Path, only: str | None = None) -> None:
    if only == "grpc":
        await shoot_grpc(out)
        return
    if only == "bastion":
        await shoot_bastion(out)
        return
    if only == "databases":
        await shoot_databases(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    engine = await start_engine(profile)
    try:
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            await app.connected.wait()
            traffic = asyncio.create_task(send_traffic(engine, 60.0))  # runs through every shot
            await asyncio.sleep(6)
            app.post_message(SwitchRequested("api", "local"))  # nothing listens there: 502s
            await asyncio.sleep(2)
            app.post_message(SwitchRequested("api", "echo"))
            await send_tcp(engine)
            await asyncio.sleep(8)
            await shoot(pilot, out, "dashboard")

            await pilot.press("t")
            await pilot.pause()
            await shoot(pilot, out, "target-picker")
            await pilot.press("escape")

            await pilot.press("ctrl+p", *"switch api")
            await pilot.pause(0.3)
            await shoot(pilot, out, "command-palette")
            await pilot.press("escape")
            await pilot.pause()

            await pilot.press("x")
            await pilot.pause()
            await pilot.press("space")  # pause, so the list holds still
            for _ in range(4):
                await pilot.press("up")
            await shoot(pilot, out, "traffic")

            rows = app.main.query_one(TrafficList)
            while rows.current is not None and rows.current["service"] != "web":
                await pilot.press("up")  # web's: the engine keeps its request to replay
            await pilot.press("enter")
            await pilot.pause()
            await shoot(pilot, out, "exchange-detail")

            for _ in range(3):  # replay to the other target and compare
                await pilot.press("d")
                if await wait_for(pilot, lambda: isinstance(app.screen, ChooseTarget), 3, False):
                    break
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
            app.clear_notifications()
            await shoot(pilot, out, "diff")
            await pilot.press("escape")
            await pilot.press("escape")

            await pilot.press("d", "down")  # the api service
            await engine.add_fault("api", {"name": "slow", "kind": "latency", "delay": "40ms",
                                           "probability": 0.5, "match": {"method": ["POST"]}})
            await engine.add_fault("api", {"name": "flaky", "kind": "abort", "status": 503,
                                           "probability": 0.1, "enabled": False})
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, FaultsScreen))
            await asyncio.sleep(1.5)  # a refresh: fired counts
            await shoot(pilot, out, "faults")
            await pilot.press("escape")

            await pilot.press("question_mark")
            await pilot.pause()
            await shoot(pilot, out, "help")
            await pilot.press("escape")

            await pilot.press("ctrl+t")
            await pilot.pause()
            await shoot(pilot, out, "dashboard-light")
            traffic.cancel()
    finally:
        await engine.stop()
    await shoot_target_detail(out)
    await shoot_grpc(out)


def grpc_calls(port: int, count: int) -> None:
    """Ping and Watch through the grpc profile's service, as a grpcio client (a test extra)."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        ping = channel.unary_unary("/demo.ping.Pinger/Ping")
        watch = channel.unary_stream("/demo.ping.Pinger/Watch")
        for i in range(count):
            text = f"hello {i}".encode()
            try:
                if i % 4 == 3:
                    list(watch(b"\x0a" + bytes([len(text)]) + text, timeout=5))
                else:
                    ping(b"\x0a" + bytes([len(text)]) + text, timeout=5)
            except grpc.RpcError:
                pass  # the mock's UNAVAILABLE and the fault's RESOURCE_EXHAUSTED: on screen


async def shoot_grpc(out: Path) -> None:
    """The traffic view with gRPC calls and one call's detail, on profiles/grpc.yaml."""
    engine = await start_engine(ROOT / "profiles" / "grpc.yaml")
    try:
        bound = engine.services["pinger"].bound
        assert bound is not None
        await asyncio.to_thread(grpc_calls, bound[1], 6)
        await engine.add_fault("pinger", {"name": "busy", "kind": "abort",
                                          "grpc_status": "RESOURCE_EXHAUSTED",
                                          "grpc_message": "try again later", "times": 2,
                                          "match": {"path": "/demo.ping.Pinger/Ping"}})
        await asyncio.to_thread(grpc_calls, bound[1], 6)
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            await app.connected.wait()
            await pilot.press("x")
            rows = app.main.query_one(TrafficList)
            await wait_for(pilot, lambda: len(rows.rows) == 12)
            await pilot.press("space")
            await shoot(pilot, out, "grpc-traffic")
            for _ in range(3):
                await pilot.press("up")
            await pilot.press("enter")
            await pilot.pause(0.5)
            await shoot(pilot, out, "grpc-detail")
    finally:
        await engine.stop()


async def shoot_target_detail(out: Path) -> None:
    """The demo profile has no pool: the target detail is shot on the UI tests' fake engine."""
    from tests.ui.fake_control import FakeControl, feature_status

    app = make_app(FakeControl(feature_status()), poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.connected.wait()
        await pilot.press("t", "down", "down", "i")  # payments: staging -> debug -> pool
        await wait_for(pilot, lambda: isinstance(app.screen, TargetDetail))
        await shoot(pilot, out, "target-detail")


async def shoot_bastion(out: Path) -> None:
    """A target reached through an SSH bastion (a real sshd started here, tests/sshd.py): the
    dashboard's bastions panel, the services table's `via` and the target detail's bastion
    line, after some traffic."""
    from tests.sshd import Sshd
    from tests.upstreams import HttpUpstream

    folder = Path(tempfile.mkdtemp(prefix="devamb-bastion-shot-"))
    sshd = Sshd(folder / "sshd").start()
    upstream = await HttpUpstream("orders").start()
    known = folder / "known_hosts"
    known.write_text(sshd.known_hosts_line() + "\n")
    profile = folder / "devamb.yaml"
    profile.write_text(
        "version: 1\nname: remote\nbastions:\n"
        f"  staging: {{host: 127.0.0.1, port: {sshd.port}, user: {sshd.user}, "
        f"identity_file: {sshd.client_key}, known_hosts: {known}}}\nservices:\n"
        "  api:\n    listen: 0\n    target: staging\n    targets:\n"
        "      local: http://127.0.0.1:9\n"
        f"      staging: {{url: 'http://localhost:{upstream.port}', via: staging}}\n"
    )
    engine = Engine(load_profile(profile))
    await engine.start()
    try:
        async with aiohttp.ClientSession() as client:
            for i in range(40):
                async with client.get(f"{url(engine, 'api')}/orders/{i}") as response:
                    await response.read()
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            await app.connected.wait()
            await asyncio.sleep(2.5)  # a status refresh brings the bastion's figures
            await shoot(pilot, out, "bastion-dashboard")  # the dashboard's bastions panel
            await pilot.press("i")
            await wait_for(pilot, lambda: isinstance(app.screen, TargetDetail))
            await asyncio.sleep(2.5)  # a status refresh brings the bastion's figures
            await shoot(pilot, out, "bastion")
    finally:
        await engine.stop()
        await upstream.stop()
        sshd.stop()


DB_PROFILE = """\
version: 1
name: shop
services:
  db:
    listen: 0
    protocol: postgres
    targets: {{local: 'tcp://127.0.0.1:{pg}'}}
    faults:
      conflict: {{kind: error, sqlstate: '40001', match: {{sql: "insert into orders"}},
                  probability: 0.25}}
  cache:
    listen: 0
    protocol: redis
    targets: {{local: 'tcp://127.0.0.1:{redis}'}}
"""


async def shop_traffic(engine: Engine, orders: int) -> None:
    """An app's statements: orders written in transactions (one in four meets the fault's
    serialization failure), read back by id and by customer, a slow report, sessions in Redis."""
    import psycopg
    import redis.asyncio

    from tests.wire.pg import Cluster

    db, cache = engine.services["db"].bound, engine.services["cache"].bound
    assert db is not None and cache is not None
    dsn = Cluster.dsn_at(db[1], "postgres") + " application_name=shop-api"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, "
                           "customer int, total numeric, status text)")
        r = redis.asyncio.Redis(port=cache[1])
        for n in range(orders):
            customer = 100 + n % 7
            await r.get(f"session:{customer}")
            try:
                async with conn.transaction():
                    await conn.execute("INSERT INTO orders (customer, total, status) "
                                       "VALUES (%s, %s, 'new')", (customer, 10 + n))
            except psycopg.errors.SerializationFailure:
                pass
            await conn.execute(f"SELECT id, total FROM orders WHERE customer = {customer} "
                               "AND status IN ('new', 'paid') ORDER BY id DESC LIMIT 10")
            await r.set(f"session:{customer}", f"cart-{n}", ex=300)
            await r.incr(f"orders:count:{customer}")
            if n % 5 == 0:
                await conn.execute("WITH pause AS (SELECT pg_sleep(0.03)) SELECT customer, "
                                   "sum(total) FROM orders, pause GROUP BY customer "
                                   "ORDER BY 2 DESC")
        await r.aclose()


async def shoot_databases(out: Path) -> None:
    """SQL and Redis traffic through a postgres and a redis service, one statement's detail and
    the slowest statements of `db` (a real PostgreSQL cluster and redis-server, started here)."""
    from tests.targets.shards.real_redis import RedisServer
    from tests.wire.pg import start_cluster
    from ui.screens.exchange_detail import ExchangeDetail
    from ui.screens.slow import SlowStatements

    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="devamb-db-shot-"))
    cluster = start_cluster()
    server = RedisServer(folder, None).start()
    profile = folder / "shop.yaml"
    profile.write_text(DB_PROFILE.format(pg=cluster.port, redis=server.port))
    engine = Engine(load_profile(profile))
    await engine.start()
    try:
        await shop_traffic(engine, 24)
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            await app.connected.wait()
            await pilot.press("x")
            await pilot.press("slash", *"~s db | ~cmd \"GET|SET\"", "enter")
            rows = app.main.query_one(TrafficList)
            await wait_for(pilot, lambda: len(rows.rows) > 20)
            await pilot.press("escape")
            rows.focus()
            await pilot.press("space")
            for _ in range(6):
                await pilot.press("up")
            while rows.current is not None and "error" not in str(rows.current.get("error")):
                if rows.current.get("error"):
                    break
                await pilot.press("up")
            await shoot(pilot, out, "sql-traffic")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ExchangeDetail))
            await pilot.pause(0.5)
            await shoot(pilot, out, "sql-detail")
            await pilot.press("escape", "d")
            await pilot.pause()
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SlowStatements))
            await wait_for(pilot, lambda: app.screen.view is not None)  # type: ignore[attr-defined]
            await pilot.pause(0.3)
            await shoot(pilot, out, "slow-statements")
    finally:
        await engine.stop()
        server.kill()
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles" / "demo.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--only", choices=["grpc", "bastion", "databases"],
                        help="take only these shots")
    args = parser.parse_args()
    asyncio.run(main(args.profile, args.out, args.only))
