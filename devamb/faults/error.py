"""error: answer a matching command of a protocol-aware TCP service with an error instead of
forwarding it (the server never sees it; the connection stays in sync).

PostgreSQL: an ErrorResponse with `sqlstate` (and `message`) then ReadyForQuery, as the server
would answer a failed statement (wire/postgres.py writes them). Redis: the `reply` error line
(wire/resp*.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devamb.faults.base import Fault
from devamb.profile.reader import Node
from devamb.wire.follower import Action, Answer

KEYS = ("sqlstate", "message", "reply")
SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


@dataclass(frozen=True)
class Params:
    sqlstate: str = ""  # postgres: the ErrorResponse's code, e.g. 40001
    message: str = ""  # postgres: its message ("" : one naming the fault)
    reply: str = ""  # redis: the error reply, e.g. "-READONLY You can't write"


def parse(node: Node, protocol: str) -> Params | None:
    own = {"postgres": ("sqlstate", "message"), "redis": ("reply",)}.get(protocol, ())
    for key in KEYS:
        if node.has(key) and key not in own:
            node.child(key).problem(f"{key!r} is not for {protocol} services", key=True)
            return None
    if protocol == "postgres":
        if not node.has("sqlstate"):
            node.problem("missing required key 'sqlstate' (e.g. sqlstate: '40001')")
            return None
        child = node.child("sqlstate")
        raw = child.value
        whole = isinstance(raw, int) and not isinstance(raw, bool) and 10000 <= raw <= 99999
        code = str(raw) if whole else raw  # 40001 unquoted is fine; 08006 must be quoted
        if not isinstance(code, str) or not SQLSTATE.match(code):
            child.problem(f"{raw!r} is not a SQLSTATE: five digits or capital letters, "
                          f"quoted (e.g. '40001')")
            return None
        message = node.child("message").string() if node.has("message") else ""
        return Params(sqlstate=code, message=message or "")
    if protocol == "redis":
        if not node.has("reply"):
            node.problem("missing required key 'reply' (e.g. reply: '-READONLY ...')")
            return None
        reply = node.child("reply").string()
        if reply is None:
            return None
        if not reply.startswith("-"):
            node.child("reply").problem("a Redis error reply starts with '-' (e.g. '-ERR ...')")
            return None
        return Params(reply=reply)
    return None


class ErrorFault(Fault):
    KIND = "error"
    ORDER = 20
    PROTOCOLS = ("postgres", "redis")
    params: Params

    def on_command(self, name: str) -> Action | None:
        return Answer(self.params, name)
