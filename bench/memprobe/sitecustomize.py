"""bench/peak_rss.py --probe: on SIGUSR2, the engine writes where its memory is to stderr.

Put on PYTHONPATH only for the probed engine (as `sitecustomize`, imported at start):
glibc's mallinfo2 (heap in use, free, mmapped), pymalloc's arenas.
"""

import ctypes
import gc
import signal
import sys


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _report(*_: object) -> None:
    mib = 1024 * 1024
    out = sys.stderr
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Mallinfo2
        info = libc.mallinfo2()
        out.write(f"PROBE glibc heap {info.arena / mib:.1f} MiB: in use {info.uordblks / mib:.1f}"
                  f", free {info.fordblks / mib:.1f} (top {info.keepcost / mib:.1f}); mmapped "
                  f"{info.hblkhd / mib:.1f} MiB in {info.hblks}\n")
    except (OSError, AttributeError) as exc:
        out.write(f"PROBE no mallinfo2: {exc}\n")
    import os
    import tempfile

    with tempfile.TemporaryFile("w+") as tmp:
        fd = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(fd, 2)
            os.close(fd)
        tmp.seek(0)
        stats = tmp.read()
    for line in stats.splitlines():
        if line.startswith(("# arenas allocated current", "# arenas highwater",
                            "# bytes in allocated blocks", "# bytes in available blocks",
                            "Total ")):
            out.write(f"PROBE pymalloc {line.strip()}\n")
    out.write(f"PROBE gc objects {len(gc.get_objects())}\n")
    pools = _read_buffer_pools()
    if pools:  # the upstream read buffers (256 KiB mmaps) kept, and how many a view still holds
        from devamb.proxy.upstream import FREE_REFS

        kept = busy = 0
        for pool in pools:
            for buffer in pool.kept:  # (the shape of ReadBuffers.take's loop: its FREE_REFS)
                kept += 1
                busy += sys.getrefcount(buffer) > FREE_REFS
        out.write(f"PROBE read buffers {kept} kept in {len(pools)} pools, {busy} in use\n")
    for store in _stores():
        out.write(f"PROBE store {len(store)} records counted {store.bytes / mib:.1f} MiB\n")
    kinds: dict[str, int] = {}
    name = ""
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                path = head[5] if len(head) > 5 else ""
                if path.startswith("/dev/zero"):
                    name = "shared anon (a MAP_SHARED mmap)"
                elif path.startswith("/"):
                    name = "files (libraries)"
                elif path:
                    name = path
                else:
                    name = "anon (pymalloc arenas, mmaps, stacks)"
            elif head[0] == "Rss:":
                kinds[name] = kinds.get(name, 0) + int(head[1])
    for name, kib in sorted(kinds.items(), key=lambda item: -item[1]):
        if kib >= 256:
            out.write(f"PROBE rss {name}: {kib / 1024:.1f} MiB\n")
    out.flush()


_STORES: list = []


def _stores() -> list:
    """The engine's stores, found once (bench/peak_rss.py reports right after the start, when
    they exist already): finding them walks every object with the frozen ones unfrozen, and
    freezing again would freeze whatever garbage was waiting for a collection too (a finished
    TCP relay's cycle and its previews, a closed connection's cancelled task), which then
    never goes, and reads as memory the records hold after `--drop`."""
    if not _STORES:
        frozen = gc.get_freeze_count()
        if frozen:
            gc.unfreeze()
        _STORES.extend(o for o in gc.get_objects() if type(o).__name__ == "ExchangeStore")
        if frozen:
            gc.freeze()
    return _STORES


def _read_buffer_pools() -> list:
    """The upstream pools' read buffers (made at a target's first request: not by the start)."""
    upstream = sys.modules.get("devamb.proxy.upstream")
    if upstream is None:
        return []
    return [pool for pools in list(upstream._LOOP_BUFFERS.values()) for pool in list(pools)]


def _clear(*_: object) -> None:
    """SIGUSR1: what the records really held: report; collect (what cycles held) and trim,
    report; drop every record, collect, trim, report."""
    _report()
    found = gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    sys.stderr.write(f"PROBE -- after a full collection ({found} objects in cycles) and "
                     "malloc_trim:\n")
    _report()
    for store in _stores():
        store.clear()
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    sys.stderr.write("PROBE -- after dropping every record, gc and malloc_trim:\n")
    _report()


signal.signal(signal.SIGUSR2, _report)
signal.signal(signal.SIGUSR1, _clear)
