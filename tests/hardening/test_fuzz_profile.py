"""Fuzzing the profile loader with hypothesis: random YAML full of anchors and aliases (bombs
among them), random bytes (not UTF-8 among them), and shipped profiles with aliases spliced in.
Whatever the input, loading ends in a Profile or a ProfileError whose every problem has a file,
line, column and message: never another exception, a hang, or unbounded memory."""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from tests.hardening.fuzzing import fuzz

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
SHIPPED = sorted(p.name for p in PROFILES.glob("*.yaml"))
SECONDS_PER_LOAD = 30.0  # generous: a bounded load takes well under a second
MEMORY_GROWTH = 512 * 2**20  # generous: the loader's caps keep one load near 100 MB




def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


@pytest.fixture(scope="module")
def rss_before() -> int:
    return peak_rss()


def load_bounded(path: Path, rss_before: int) -> None:
    """Load; only ProfileError may come out, with positions, in bounded time and memory."""
    started = time.monotonic()
    try:
        load_profile(path, environ={})
    except ProfileError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file and problem.line >= 1 and problem.col >= 1, problem
            assert problem.message, problem
    assert time.monotonic() - started < SECONDS_PER_LOAD
    assert peak_rss() - rss_before < MEMORY_GROWTH


# -- random YAML with anchors and aliases ---------------------------------------------------------

SCALARS = st.one_of(
    st.integers(-(2**40), 2**40), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.sampled_from(["echo", "http://127.0.0.1:1", "tcp://127.0.0.1:2", "10s", "64KiB", "${X}",
                     "lol", "", "<<", "services", "listen"]),
    st.text(max_size=8),
)
KEYS = st.sampled_from(["version", "name", "services", "api", "listen", "targets", "target",
                        "timeout", "protocol", "url", "mock", "routes", "faults", "<<"]) | st.text(
    max_size=6
)


@st.composite
def shared_documents(draw: st.DrawFn) -> Any:
    """Plain data in which containers are reused by reference: yaml.dump writes each reuse as
    an alias of the first (&id001 ... *id001), so reuse nests into bombs of any size."""
    pool: list[Any] = []
    for _ in range(draw(st.integers(1, 12))):
        width = draw(st.integers(1, 12))
        parts = [
            draw(st.sampled_from(pool)) if pool and draw(st.booleans()) else draw(SCALARS)
            for _ in range(width)
        ]
        if draw(st.booleans()):
            pool.append(parts)
        else:
            pool.append({draw(KEYS) + str(i): part for i, part in enumerate(parts)})
    root: dict[str, Any] = {"version": 1}
    if draw(st.booleans()):
        root["services"] = {"api": {"listen": 0, "targets": {"x": draw(st.sampled_from(pool))
                                                               if draw(st.booleans()) else "echo"}}}
    for i, node in enumerate(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))):
        root[f"x{i}"] = node
    return root


@fuzz(120)
@given(document=shared_documents())
def test_loader_on_yaml_with_aliases(tmp_path: Path, rss_before: int, document: Any) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(yaml.dump(document, sort_keys=False, allow_unicode=True))
    load_bounded(path, rss_before)


@fuzz(60)
@given(levels=st.integers(1, 14), width=st.integers(1, 16), as_map=st.booleans(),
       tail=st.sampled_from(["", "services:\n  api:\n    listen: 0\n    targets: {x: *a1}\n",
                             "x: &self [*self]\n", "<<: *a0\n"]))
def test_loader_on_alias_bombs(
    tmp_path: Path, rss_before: int, levels: int, width: int, as_map: bool, tail: str
) -> None:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        refs = [f"*a{i - 1}"] * width
        body = "{" + ", ".join(f"k{j}: {r}" for j, r in enumerate(refs)) + "}" if as_map else (
            "[" + ", ".join(refs) + "]"
        )
        lines.append(f"a{i}: &a{i} {body}")
    path = tmp_path / "devamb.yaml"
    path.write_text("\n".join(lines) + "\n" + tail)
    load_bounded(path, rss_before)


# -- random bytes ------------------------------------------------------------------------------

YAML_BYTES = [b"version: 1\n", b"services:\n", b"  api:\n", b"    listen: 0\n", b"    targets:",
              b" {x: echo}\n", b"&a ", b"*a", b"[*a, *a]", b"<<: *a\n", b"\xff", b"\xfe", b"\xc3",
              b"\xe9", b"\xef\xbb\xbf", b"\x00", b"\r\n", b"\t", b"'", b'"', b"\xf0\x9f\x98",
              "é".encode(), b"\xed\xa0\x80"]


@fuzz(300)
@given(data=st.lists(st.sampled_from(YAML_BYTES) | st.binary(max_size=8), max_size=40).map(
    b"".join))
def test_loader_on_random_bytes(tmp_path: Path, rss_before: int, data: bytes) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_bytes(data)
    load_bounded(path, rss_before)


@pytest.fixture(scope="module")
def profiles_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of profiles/ (with the mock files they refer to) to write mutants into."""
    folder = tmp_path_factory.mktemp("profiles") / "profiles"
    shutil.copytree(PROFILES, folder, ignore=shutil.ignore_patterns(".devamb"))  # not a run dir
    return folder


@fuzz(150)
@given(
    name=st.sampled_from(SHIPPED),
    splices=st.lists(
        st.tuples(st.integers(0, 100_000), st.sampled_from(
            ["&a ", "*a", "&b ", "*b", "[*a, *a, *a]", "{k: *a, j: *a}", "<<: *a", "\xff",
             "&a [*a]"]
        )),
        min_size=1, max_size=6,
    ),
)
def test_loader_on_shipped_profiles_with_aliases_spliced_in(
    profiles_copy: Path, rss_before: int, name: str, splices: list[tuple[int, str]]
) -> None:
    text = (PROFILES / name).read_text()
    for where, bit in splices:
        at = where % (len(text) + 1)
        text = text[:at] + bit + text[at:]
    path = profiles_copy / f"mutant-{name}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_bounded(path, rss_before)
