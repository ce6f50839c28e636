"""Which schema decodes a call: the profile's (`proto:` / `descriptor_set:`), else what the
upstream's server reflection says (asked once per upstream and service, the answer or the
failure cached), else none (the raw wire decode)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Sequence
from typing import Any

from devamb.grpc.reflection import Call, ReflectionError, reflect
from devamb.grpc.schema import Schema
from devamb.grpc.tap import GrpcTap
from devamb.proxy.h2upstream import H2Upstream

REFLECTION_TIMEOUT = 5.0
RETRY_AFTER = 30.0  # s before an upstream that could not be asked is asked again
log = logging.getLogger("devamb.grpc")


class Catalog:
    def __init__(self, schema: Schema | None, where: str = "") -> None:
        self.schema = schema  # the profile's
        self.where = where  # the service's name, for log lines
        self._reflected: dict[tuple[Hashable, str], asyncio.Task[Schema | None]] = {}
        self._retry: dict[tuple[Hashable, str], float] = {}  # loop time to ask again at

    def known(self, tap: GrpcTap) -> bool:
        """Decide at once when the profile's schema knows the call's service."""
        if self.schema is not None and self.schema.has_service(tap.service):
            tap.use(self.schema)
            return True
        return False

    def reflect(self, tap: GrpcTap, key: Hashable, upstream: H2Upstream, authority: str,
                scheme: str = "http", headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """Decode the call with the cached reflection of its service at `upstream` (asked
        now when new; `headers` are the target's own, credentials say)."""
        if not tap.service:  # not /pkg.Service/Method: nothing to ask about
            tap.use(None)
            return
        slot = (key, tap.service)
        task = self._reflected.get(slot)
        retry_at = self._retry.get(slot)  # (the loop asked for only when it is needed: its
        # look-up is a getpid system call on 3.11)
        if task is None or (retry_at is not None
                            and asyncio.get_running_loop().time() >= retry_at):
            self._retry.pop(slot, None)
            task = asyncio.get_running_loop().create_task(
                self._ask(slot, upstream, Call(authority, scheme, tuple(headers)))
            )
            self._reflected[slot] = task
        tap.waiting = task
        if task.done():
            tap.use(None if task.cancelled() else task.result())
        else:
            task.add_done_callback(lambda done: _decide(tap, done))

    async def _ask(self, slot: tuple[Hashable, str], upstream: H2Upstream,
                   call: Call) -> Schema | None:
        authority, service = call.authority, slot[1]
        try:
            schema = await reflect(upstream, call, service, REFLECTION_TIMEOUT)
        except ReflectionError as exc:
            if exc.transient:  # asked again by a call after RETRY_AFTER
                self._retry[slot] = asyncio.get_running_loop().time() + RETRY_AFTER
            log.info("%s: no server reflection for %s at %s (%s); messages are decoded raw",
                     self.where, service, authority, exc)
            return None
        except Exception as exc:  # a bug here must not break the calls: raw it is
            log.warning("%s: server reflection for %s failed: %r", self.where, service, exc)
            return None
        log.info("%s: %s described by server reflection at %s", self.where, service, authority)
        return schema

    @staticmethod
    async def settle(tap: GrpcTap) -> None:
        """The call ended: wait (bounded) for the reflection it waits for, then close it."""
        task = tap.waiting
        if task is not None and not task.done():  # (the current task asked only then: a
            # Python call and a getpid system call on 3.11, per call)
            current = asyncio.current_task()
            if current is None or current.cancelling() == 0:  # at shutdown: no wait
                await asyncio.wait({task}, timeout=REFLECTION_TIMEOUT)
        Catalog.settle_now(tap, force=True)

    @staticmethod
    def settle_now(tap: GrpcTap, force: bool = False) -> bool:
        """`settle` when the reflection is not under way (most calls: no coroutine); False
        (nothing done) when it is, unless `force` (then the call is closed without it)."""
        task = tap.waiting
        if task is not None:
            if task.done():  # its done-callback may not have run yet
                _decide(tap, task)
            elif not force:
                return False
        tap.close()
        return True

    def forget(self) -> None:
        for task in self._reflected.values():
            task.cancel()
        self._reflected.clear()
        self._retry.clear()


def _decide(tap: GrpcTap, done: asyncio.Future[Any]) -> None:
    if not tap.decided:
        tap.use(None if done.cancelled() else done.result())
