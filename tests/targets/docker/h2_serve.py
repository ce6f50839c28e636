"""Runs INSIDE a busybox container (the host's Python and this repository mounted in, read-only):
the grpcio Greeter on 0.0.0.0:8000 and the h2 upstream (named by $NAME) on 0.0.0.0:8001, in the
container's own network namespace. Prints `ready`, then `call <path>` for every gRPC call and
HTTP/2 request that arrives, so the test can tell they reached this process.

    python -m tests.targets.docker.h2_serve DESCRIPTOR_SET
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.grpc.greeter import Greeter, Types
from tests.upstreams_h2 import H2Upstream

GRPC_PORT = 8000
H2_PORT = 8001


async def main(descriptor_set: Path) -> None:
    types = Types(descriptor_set.read_bytes())
    with Greeter(types, host="0.0.0.0", port=GRPC_PORT) as greeter:
        up = await H2Upstream(os.environ.get("NAME", "container")).start(
            host="0.0.0.0", port=H2_PORT
        )
        print("ready", flush=True)
        told = {"grpc": 0, "h2": 0}
        while True:  # the calls each server saw, as they come
            for kind, seen in (("grpc", greeter.calls), ("h2", up.paths)):
                for path in seen[told[kind]:]:
                    print(f"call {path}", flush=True)
                told[kind] = len(seen)
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
