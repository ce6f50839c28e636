"""A run of single-key commands from one read of a client, answered as one.

The common case of a pipelining client (redis-benchmark, a redis-py pipeline of GETs and SETs):
each command of the run goes to its shard as part of one write per shard, each shard's replies
to the run are taken in one piece (`RunPart.fill`), and once every shard has answered, the
replies are put back in the client's order and handed to the session as one reply: no object,
callback or queue entry per command. Other commands (multi-key, fan-out, local, transactions)
end the run and take the session's general path, in order.
"""

from __future__ import annotations

from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devamb.targets.shards.link import ShardLink
    from devamb.targets.shards.session import Session


_got = attrgetter("got")


class Run:
    """One queue entry of a session standing for `count` commands; `reply` is set (the
    replies joined in the client's order) once every part is answered."""

    __slots__ = ("count", "left", "order", "parts", "reply", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.reply: bytes | None = None
        self.count = 0
        self.parts: dict[ShardLink, RunPart] = {}
        self.order: list[int] | bytes = []  # for each command, the index of its part (bytes:
        # a run read whole over two shards, whose part indexes are 0 and 1)
        self.left = 0  # parts not answered whole yet

    def send(self) -> None:
        """Each part to its shard (called once, with the run complete and each part's `left`
        set to the commands it has)."""
        parts = self.parts
        self.left = len(parts)
        for link, part in parts.items():
            raws = part.raws
            link.send_many(raws[0] if len(raws) == 1 else b"".join(raws), part)
            part.raws = []

    def part_done(self) -> None:
        """Called by the last part answered (`RunPart.fill` counts them down)."""
        parts = list(self.parts.values())
        self.parts = {}
        if len(parts) == 1:  # (one reply, perhaps large, is not copied)
            got = parts[0].got
            self.reply = got[0] if len(got) == 1 else b"".join(got)
        else:  # the next reply of each command's part, in the client's order: in C (each
            # command's part's iterator picked by one itemgetter call, not a call per command)
            replies = list(map(iter, map(_got, parts)))
            order = self.order
            picked = itemgetter(*order)(replies) if len(order) > 1 else [replies[order[0]]]
            self.reply = b"".join(map(next, picked))
        self.session.ready()


class RunPart:
    """The commands of a run that one shard answers; an `Owed` for all of them at once."""

    __slots__ = ("got", "index", "left", "raws", "run")

    def __init__(self, run: Run, index: int = 0, left: int = 0) -> None:
        self.run = run
        self.index = index  # among the run's parts
        self.raws: list[bytes] = []  # its commands' bytes, to be joined
        self.got: list[bytes] = []
        self.left = left  # replies still to come

    def fill(self, replies: list[bytes], start: int) -> int:
        """Take this part's replies from `replies[start:]`; return the index after them."""
        left = self.left
        end = start + left
        count = len(replies)
        if start == 0 and end == count and not self.got:
            self.got = replies
        else:
            self.got += replies[start:end]
        taken = (end if end < count else count) - start
        self.left = left - taken
        if not self.left:
            run = self.run
            run.left -= 1
            if not run.left:
                run.part_done()
        return start + taken

    def done(self, reply: bytes) -> None:
        """Every reply still owed is `reply` (an error: the shard failed)."""
        if self.left:
            self.fill([reply] * self.left, 0)
