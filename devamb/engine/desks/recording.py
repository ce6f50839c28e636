"""The recording desk: a service's exchanges turned into mock routes, written to a file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devamb.control.protocol import Conflict, ControlError
from devamb.engine.context import EngineContext
from devamb.inspect.exchange import Exchange
from devamb.service.core import Service

if TYPE_CHECKING:  # the mock writer is imported when a recording starts
    from devamb.targets.mock.recording import RecordingSession


class RecordingDesk:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.sessions: dict[str, RecordingSession] = {}  # by service

    def to_json(self) -> list[dict[str, Any]]:
        """The recordings in progress, for status."""
        return [session.to_json() for session in self.sessions.values()]

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        """Turn the service's exchanges from now on into mock routes (written by stop)."""
        svc = self.ctx.service(service)
        if svc.spec.protocol not in ("http", "http2", "grpc"):
            raise ControlError(f"service {service!r} is {svc.spec.protocol}: only HTTP/1.1 "
                               "exchanges and gRPC calls become mocks")
        folder = self.ctx.profile.path.resolve().parent
        path = Path(to) if to else Path("mocks") / f"{service}.yaml"
        path = path if path.is_absolute() else folder / path
        if filter:
            from devamb.engine.desks.inspection import compiled  # (with the first filter)

            compiled(filter)  # a bad filter is refused with its column
        served = svc.target().spec.watched_files()
        if path.resolve() in {Path(f).resolve() for f in served}:
            raise Conflict(f"{service!r} is answered by the mock in {path} right now: "
                           f"recording would overwrite it with its own answers")
        if service in self.sessions:
            raise Conflict(f"{service!r} is already being recorded into "
                           f"{self.sessions[service].to}; stop that recording first")
        from devamb.targets.mock.recording import RecordingSession

        session = RecordingSession(service, filter, path, notify=self.ctx.notice,
                                   grpc=svc.spec.protocol != "http")
        if not self.sessions:
            self.ctx.recorder.watchers.append(self._record)
        self.sessions[service] = session
        self.ctx.notice("info", f"recording {service} into {path}")
        return session.to_json()

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        """Write the mock file of each recording stopped; returns what was written."""
        names = [service] if service else list(self.sessions)
        if service and service not in self.sessions:
            raise Conflict(f"{service!r} is not being recorded")
        written = []
        for name in names:
            session = self.sessions.pop(name)
            path = await asyncio.to_thread(session.write)
            written.append({**session.to_json(), "file": str(path)})
            self.ctx.notice("info", f"recorded {session.recorded} exchanges of {name} "
                            f"into {path}")
        if not self.sessions and self._record in self.ctx.recorder.watchers:
            self.ctx.recorder.watchers.remove(self._record)
        return written

    def _record(self, service: Service, exchange: Exchange) -> None:
        session = self.sessions.get(service.name)
        if session is not None:
            session.add(exchange, service.redaction)
