"""The Node client from npm (`toxiproxy-node-client`) against devamb's Toxiproxy API: a script
written against the client creates a proxy, adds a latency and a reset_peer toxic, checks
their effect on real connections to a real upstream, removes them, resets and populates."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.toxiproxy.conftest import Api, EchoServer

CLIENT = "toxiproxy-node-client@4"
SCRIPT = r"""
const net = require("net");
const { Toxiproxy } = require("toxiproxy-node-client");

const [api, upstream] = process.argv.slice(2);

function roundTrip(listen) {  // -> {data, ms} or {error}
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")),
                        Number(listen.slice(listen.lastIndexOf(":") + 1))];
  return new Promise((resolve) => {
    const start = Date.now();
    let data = "";
    const socket = net.connect(port, host, () => socket.end("ping"));
    socket.on("data", (chunk) => { data += chunk; });
    socket.on("error", (err) => resolve({ error: err.code }));
    socket.on("close", () => resolve({ data, ms: Date.now() - start }));
  });
}

(async () => {
  const toxiproxy = new Toxiproxy(api);
  const out = { version: await toxiproxy.getVersion() };
  const proxy = await toxiproxy.createProxy({ name: "node", upstream, listen: "127.0.0.1:0" });
  out.proxy = proxy.toJson();
  out.plain = await roundTrip(proxy.listen);

  const latency = await proxy.addToxic({ type: "latency", name: "lag", stream: "downstream",
                                         toxicity: 1, attributes: { latency: 300, jitter: 0 } });
  out.latencyToxic = { name: latency.name, type: latency.type, attributes: latency.attributes };
  out.delayed = await roundTrip(proxy.listen);
  await latency.remove();

  const reset = await proxy.addToxic({ type: "reset_peer", name: "cut", stream: "downstream",
                                       toxicity: 1, attributes: { timeout: 0 } });
  out.reset = await roundTrip(proxy.listen);
  await reset.remove();
  out.afterRemove = await roundTrip(proxy.listen);

  await proxy.addToxic({ type: "latency", name: "lag2", stream: "upstream", toxicity: 1,
                         attributes: { latency: 10 } });
  await toxiproxy.reset();
  out.afterReset = (await toxiproxy.getAll())["node"].toJson();

  try {
    await toxiproxy.createProxy({ name: "node", upstream });
    out.duplicate = "created";
  } catch (err) {
    out.duplicate = err.message;
  }
  const populated = await toxiproxy.populate([{ name: "pop", upstream, listen: "127.0.0.1:0" }]);
  out.populated = await roundTrip(populated["pop"].listen);
  await populated["pop"].remove();
  await proxy.remove();
  out.left = Object.keys(await toxiproxy.getAll());
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with toxiproxy-node-client installed from npm (skips without node, npm or the
    registry)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Node client's test")
    folder = tmp_path_factory.mktemp("node-client")
    (folder / "package.json").write_text('{"name": "devamb-toxiproxy-test", "private": true}')
    try:
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", CLIENT],
            cwd=folder, capture_output=True, text=True, timeout=200,  # under pytest's 300 s
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install {CLIENT} did not finish in 200s (no registry?)")
    if done.returncode != 0:
        pytest.skip(f"npm install {CLIENT} failed (no registry?): {done.stderr.strip()[-500:]}")
    (folder / "check.js").write_text(SCRIPT)
    return folder


def test_node_client(node_client: Path, toxiproxy_api: Api, echo: EchoServer) -> None:
    done = subprocess.run(["node", "check.js", toxiproxy_api.url, echo.address],
                          cwd=node_client, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert '"version"' in out["version"]
    assert out["proxy"]["name"] == "node" and out["proxy"]["enabled"] is True
    assert out["plain"]["data"] == "ping"
    assert out["latencyToxic"] == {"name": "lag", "type": "latency",
                                   "attributes": {"latency": 300, "jitter": 0}}
    assert out["delayed"]["data"] == "ping" and out["delayed"]["ms"] >= 290
    assert out["reset"] == {"error": "ECONNRESET"}
    assert out["afterRemove"]["data"] == "ping"
    assert out["afterReset"]["enabled"] is True
    assert out["duplicate"] == "Request failed with status code 409"
    assert out["populated"]["data"] == "ping"
    assert out["left"] == []
