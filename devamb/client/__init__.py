"""devamb's Python client: drive a running engine from a test suite or a script.

    from devamb.client import Client, faults as f

    with Client.connect("path/to/project") as engine:   # or a profile file, or the socket
        engine.switch("payments", "mock")
        engine.faults.add("payments", f.Abort(status=503, times=1))
        ...                                            # exercise the app
        engine.wait_for("~s payments & ~c 503", timeout=10)
        engine.faults.clear()

`AsyncClient` is the same API for asyncio code. Both are made of the control API's route table
(devamb/control/routes.py), like the CLI and the TUI. Errors are `ControlError` subclasses
carrying the engine's message: `NotFound` (unknown name), `Conflict` (state refuses),
`EngineUnavailable` (no engine answers), `WaitTimeout` (a wait ran out).
"""

from devamb.client import faults
from devamb.client.aio import AsyncClient
from devamb.client.errors import Conflict, ControlError, EngineUnavailable, NotFound, WaitTimeout
from devamb.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "ControlError",
    "EngineUnavailable",
    "NotFound",
    "WaitTimeout",
    "faults",
]
