"""request_lines gives the last call's lines again when its inputs are the same (proxy/headers.py):
whatever changes between two calls (a field, its case or order, the client, the Host to send,
the listener's Via, keep_host), the lines are made anew, as a call without the reuse makes them."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from devamb.proxy import headers
from devamb.proxy.headers import HOP, request_lines

FIELDS = [("Host", "app:8080"), ("User-Agent", "wrk"), ("Accept", "*/*")]


def incoming(fields: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(fields))


def made(fields: list[tuple[str, str]], **options: object) -> bytes:
    """The lines made from scratch (no reuse), for the same inputs."""
    options = {"client_ip": "10.0.0.1", "keep_host": False, "host": "up:9", **options}
    return headers._request_lines(incoming(fields), options["client_ip"], options["keep_host"],
                                  {}, options["host"])


def lines(fields: list[tuple[str, str]], **options: object) -> bytes:
    options = {"client_ip": "10.0.0.1", "keep_host": False, "host": "up:9", **options}
    return request_lines(incoming(fields), extra={}, **options)  # type: ignore[arg-type]


def test_the_same_inputs_give_the_same_lines() -> None:
    first = lines(FIELDS)
    assert first == made(FIELDS)
    assert first.endswith(b"X-Forwarded-Host: app:8080\r\nVia: 1.1 devamb\r\nHost: up:9")
    assert lines(FIELDS) == first


def test_any_change_between_two_calls_makes_the_lines_anew() -> None:
    changed = [
        ([*FIELDS, ("Authorization", "Bearer a")], {}),
        ([*FIELDS, ("Authorization", "Bearer b")], {}),
        ([("host", "app:8080"), *FIELDS[1:]], {}),  # another case: sent as it came
        ([FIELDS[1], FIELDS[0], FIELDS[2]], {}),  # another order
        ([*FIELDS, ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s")], {}),
        ([*FIELDS, ("Via", "1.1 other")], {}),
        (FIELDS, {"client_ip": "10.0.0.2"}),
        (FIELDS, {"client_ip": None}),
        (FIELDS, {"host": "other:9"}),
        (FIELDS, {"keep_host": True}),
        (FIELDS, {}),
    ]
    for fields, options in changed:
        assert lines(fields, **options) == made(fields, **options), (fields, options)
        assert lines(FIELDS) == made(FIELDS)  # and back
    listed = [*FIELDS, ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s")]
    assert b"X-Secret" not in lines(listed) and b"Connection" not in lines(listed)


def test_another_listener_s_via_makes_the_lines_anew() -> None:
    mine = lines(FIELDS)
    token = HOP.set("1.1 devamb-0123abcd")
    try:
        theirs = lines(FIELDS)
    finally:
        HOP.reset(token)
    assert theirs.endswith(b"Via: 1.1 devamb-0123abcd\r\nHost: up:9")
    assert lines(FIELDS) == mine


def test_a_target_s_extra_fields_are_added_every_time() -> None:
    for value in ("a", "b"):
        got = request_lines(incoming(FIELDS), client_ip=None, keep_host=False,
                            extra={"X-Token": value}, host="up:9")
        assert got.endswith(b"X-Token: %s\r\nHost: up:9" % value.encode())


def test_a_memo_gives_its_lines_again_for_the_same_target_and_listener_only() -> None:
    """A front-end head's memo (FrontRequest.memo) keeps the lines last made for its fields,
    with the inputs they were made with: another client, Host, keep_host or Via makes them
    anew, as a call without the memo does."""
    fields = incoming(FIELDS)
    memo: list[object] = [None, None]
    options = {"client_ip": "10.0.0.1", "keep_host": False, "host": "up:9"}
    first = request_lines(fields, extra={}, memo=memo, **options)  # type: ignore[arg-type]
    assert first == made(FIELDS) and memo[1] == first
    assert request_lines(fields, extra={}, memo=memo, **options) is first  # type: ignore[arg-type]
    for changed in ({"client_ip": "10.0.0.2"}, {"client_ip": None}, {"host": "other:9"},
                    {"keep_host": True}):
        mixed = {**options, **changed}
        got = request_lines(fields, extra={}, memo=memo, **mixed)  # type: ignore[arg-type]
        assert got == made(FIELDS, **changed), changed
    token = HOP.set("1.1 devamb-0123abcd")
    try:
        theirs = request_lines(fields, extra={}, memo=memo, **options)  # type: ignore[arg-type]
    finally:
        HOP.reset(token)
    assert theirs.endswith(b"Via: 1.1 devamb-0123abcd\r\nHost: up:9")
    assert request_lines(fields, extra={}, memo=memo, **options) == first  # type: ignore[arg-type]
