"""What a Redis command and its reply look like in a record: name, keys, shown arguments (with
passwords redacted), and the reply's type and size."""

from __future__ import annotations

import re
from typing import Any

from devamb.resp.commands import ArityError, Command, lookup
from devamb.wire.resp_read import Message

REDACTED = "<redacted>"
ARG_SHOWN = 64  # characters of an argument shown
ARGS_SHOWN = 16  # arguments shown; the rest are counted
LINE_CHARS = 200  # of the one-line form (the exchange's path)

# Key positions of commands the sharding table refuses (it lists no keys for them) but a
# relayed connection runs: (first, last, step); a negative last counts from the end.
EXTRA_KEYS: dict[str, tuple[int, int, int]] = {
    "BLPOP": (1, -2, 1), "BRPOP": (1, -2, 1), "BZPOPMIN": (1, -2, 1), "BZPOPMAX": (1, -2, 1),
    "BRPOPLPUSH": (1, 2, 1), "BLMOVE": (1, 2, 1), "WATCH": (1, -1, 1), "MOVE": (1, 1, 1),
}
BLOCKING = frozenset({"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX", "BRPOPLPUSH", "BLMOVE",
                      "BLMPOP", "BZMPOP", "WAIT", "WAITAOF"})
SUBSCRIBE = frozenset({"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"})
UNSUBSCRIBE = frozenset({"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"})
CONFIRMS = frozenset({b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe",
                      b"punsubscribe", b"sunsubscribe"})
MESSAGES = frozenset({b"message", b"pmessage", b"smessage"})
REPLY_TYPES = {"+": "status", "-": "error", "!": "error", ":": "integer", "$": "bulk",
               "=": "bulk", "*": "array", "~": "set", "%": "map", ">": "push", "_": "null",
               ",": "double", "#": "boolean", "(": "big number", "|": "attribute"}


def name_of(msg: Message) -> str:
    """The command's name as Redis reads it (upper case; `CLIENT SETNAME` for containers)."""
    head = msg.items[0].decode("latin-1").upper() if msg.items else ""
    if head in CONTAINERS and len(msg.items) > 1:
        return f"{head} {msg.items[1].decode('latin-1').upper()}"
    return head


def keys_of(msg: Message) -> list[bytes]:
    """The command's keys among its kept arguments (a command's first 64)."""
    args = msg.items
    if not args:
        return []
    name = args[0].decode("latin-1").upper()
    extra = EXTRA_KEYS.get(name)
    if extra is not None:
        first, last, step = extra
        end = (msg.count + last if last < 0 else last) + 1
        return args[first:end:step]
    command: Command | None = lookup(list(args))
    if command is None or (not command.first and not command.numkeys and not command.streams):
        return []
    try:
        return command.keys(list(args))
    except (ArityError, ValueError, IndexError):
        return []


SIMPLE = re.compile(rb"[!#-~]{1,%d}" % ARG_SHOWN)  # printable ASCII, no space or quote
CONTAINERS = frozenset({"CLIENT", "CONFIG", "SCRIPT", "OBJECT", "XINFO", "XGROUP", "ACL", "CLUSTER",
                        "COMMAND", "FUNCTION", "MEMORY", "PUBSUB"})
SECRETS = frozenset({b"AUTH", b"HELLO", b"MIGRATE", b"CONFIG", b"ACL"})


def display(msg: Message) -> tuple[list[str], str]:
    """The arguments to show and the command on one line: plain words as they are (the common
    case, without a per-character loop), else cut, quoted and redacted."""
    items = msg.items if len(msg.items) <= ARGS_SHOWN else msg.items[:ARGS_SHOWN]
    simple = SIMPLE.fullmatch
    if (items and items[0].upper() not in SECRETS and msg.count == len(items)
            and all(simple(a) for a in items)):
        shown = [a.decode("ascii") for a in items]
        line = " ".join(shown)
        if len(line) <= LINE_CHARS:
            return shown, line
    shown = redacted(msg)
    return shown, line_of(shown, msg.count)


def redacted(msg: Message) -> list[str]:
    """The arguments to show: cut, with passwords (AUTH, HELLO ... AUTH, MIGRATE ... AUTH,
    CONFIG SET requirepass/masterauth) replaced."""
    args = [a.decode("utf-8", "replace") for a in msg.items[:ARGS_SHOWN]]
    upper = [a.upper() for a in args]
    hidden: set[int] = set()
    if upper and upper[0] == "AUTH":
        hidden.add(msg.count - 1)
    elif upper and upper[0] in ("HELLO", "MIGRATE"):
        for i, word in enumerate(upper):
            if word == "AUTH":
                hidden.add(i + 2 if upper[0] == "HELLO" else i + 1)
            elif word == "AUTH2":
                hidden.add(i + 2)
    elif upper[:2] == ["CONFIG", "SET"]:
        hidden.update(i + 1 for i, w in enumerate(upper) if w in ("REQUIREPASS", "MASTERAUTH"))
    elif upper[:2] == ["ACL", "SETUSER"]:
        hidden.update(i for i, w in enumerate(args) if w[:1] in (">", "#", "<", "!"))
    shown = []
    for i, arg in enumerate(args):
        if i in hidden:
            shown.append(REDACTED)
        else:
            cut = len(msg.items[i]) < (msg.sizes[i] if i < len(msg.sizes) else 0)
            shown.append(arg[:ARG_SHOWN] + ("…" if cut or len(arg) > ARG_SHOWN else ""))
    return shown


def line_of(shown: list[str], count: int) -> str:
    """The command on one line, as the traffic list shows it."""
    text = " ".join(_quoted(a) for a in shown)
    if count > len(shown):
        text += f" … (+{count - len(shown)} args)"
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def _quoted(arg: str) -> str:
    if arg and not any(c.isspace() or c == '"' for c in arg) and arg.isprintable():
        return arg
    return '"' + arg.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def reply_of(msg: Message) -> dict[str, Any]:
    """The reply's type and size (status text, error message, integer, bulk size, length)."""
    kind = msg.kind
    out: dict[str, Any] = {"type": REPLY_TYPES.get(kind, kind)}
    text = msg.text.decode("utf-8", "replace")
    if kind in "$=*~%>" and msg.count < 0:
        out["type"] = "null"
    elif kind == "+":
        out["text"] = text
    elif kind == "-":
        out["message"] = text
    elif kind == "!":
        out["message"] = msg.items[0].decode("utf-8", "replace") if msg.items else ""
    elif kind in ":,#(":
        out["value"] = text
    elif kind in "$=":
        out["size"] = msg.count
    elif kind in "*~%>":
        out["length"] = msg.count
    out["bytes"] = msg.size
    return out


def error_text(reply: dict[str, Any]) -> str | None:
    return reply.get("message") if reply["type"] == "error" else None
