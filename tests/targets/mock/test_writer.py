"""The written mock file: tidy YAML that the mock target reads back as the same answers."""

from __future__ import annotations

import textwrap
from pathlib import Path

from devamb.targets.mock.recording import Observed, answer_from, routes_from
from devamb.targets.mock.writer import Answer, RouteDraft, literal_path, write_mock_file
from tests.targets.mock.conftest import mock_spec, view


def draft_file(tmp_path: Path) -> str:
    routes = [
        RouteDraft(
            "GET", "/users/1",
            answers=[Answer(200, [("Content-Type", "application/json")],
                            json={"id": 1, "price": 9.5, "ok": True, "none": None,
                                  "list": [1, "two"]})],
        ),
    ]
    return write_mock_file(routes, tmp_path / "m.yaml").read_text()


def test_the_file_reads_well(tmp_path: Path) -> None:
    routes = [
        RouteDraft("GET", "/items", [("page", "2")], answers=[Answer(200, body="one\ntwo\n")]),
        RouteDraft(
            "POST", "/orders", json={"kind": "book", "note": {"present": False}},
            answers=[Answer(503, body="busy"), Answer(201, [("X-Id", "7")], json={"id": 7})],
        ),
        RouteDraft("GET", "/logo.png", answers=[
            Answer(200, [("Content-Type", "image/png")], data=b"\x89PNG", note="binary")
        ]),
    ]
    path = write_mock_file(routes, tmp_path / "mocks" / "shop.yaml", comment="Recorded.\nEdit.")
    assert path.read_text() == textwrap.dedent("""\
        # Recorded.
        # Edit.
        routes:

          - name: GET /items?page=2
            match:
              method: GET
              path: /items
              query:
                page: '2'
            respond:
              status: 200
              body: |
                one
                two

          - name: POST /orders
            match:
              method: POST
              path: /orders
              json:
                kind: book
                note:
                  present: false
            sequence:
              - status: 503
                body: busy
              - status: 201
                headers:
                  X-Id: '7'
                json:
                  id: 7

          # binary
          - name: GET /logo.png
            match:
              method: GET
              path: /logo.png
            respond:
              status: 200
              headers:
                Content-Type: image/png
              file: shop.files/002-0.png
        """)
    assert (tmp_path / "mocks" / "shop.files" / "002-0.png").read_bytes() == b"\x89PNG"
    spec = mock_spec(tmp_path / "mocks", path.read_text(), name="shop.yaml")
    assert [r.name for r in spec.routes] == ["GET /items?page=2", "POST /orders", "GET /logo.png"]
    assert spec.routes[1].match.test(view("POST", "/orders", body={"kind": "book"})) == {}
    assert spec.routes[1].match.test(view("POST", "/orders", body={"kind": "book", "note": 1}))\
        is None


def test_identical_answers_are_written_once() -> None:
    route = RouteDraft("GET", "/a", answers=[Answer(200, body="x"), Answer(200, body="x")])
    assert len(route.responds()) == 1
    route.answers.append(Answer(200, body="y"))
    assert len(route.responds()) == 3


def test_recorded_paths_never_act_as_patterns() -> None:
    assert literal_path("/files/{name}/*.txt") == "/files/*name*/*.txt"
    assert literal_path("/a/**") == "/a/*"


def obs(method: str, path: str, body: bytes = b"", status: int = 200, text: str = "") -> Observed:
    return Observed(method, path, [], body, "application/json", Answer(status, body=text))


def test_json_bodies_are_told_apart_by_the_fields_that_differ() -> None:
    routes = routes_from([
        obs("POST", "/o", b'{"kind": "a", "n": 1, "same": true}', text="A"),
        obs("POST", "/o", b'{"kind": "b", "n": 1, "same": true}', text="B"),
        obs("POST", "/o", b'{"n": 1, "same": true}', text="none"),
        obs("POST", "/o", b'{"same": true, "kind": "a", "n": 1}', text="A again"),
    ])
    assert [(r.json, [a.body for a in r.answers]) for r in routes] == [
        ({"kind": "a"}, ["A", "A again"]),
        ({"kind": "b"}, ["B"]),
        ({"kind": {"present": False}}, ["none"]),
    ]


def test_masked_fields_never_tell_bodies_apart() -> None:
    routes = routes_from([
        obs("POST", "/login", b'{"user": "ada", "password": "\\u2022\\u2022\\u2022\\u2022"}',
            text="1"),
        obs("POST", "/login", b'{"user": "ada", "password": "\\u2022\\u2022\\u2022\\u2022",'
            b' "remember": true}', text="2"),
    ])
    assert [r.json for r in routes] == [{"remember": {"present": False}}, {"remember": True}]


def test_bodies_that_are_not_json_share_one_route_in_turn() -> None:
    routes = routes_from([obs("POST", "/f", b"a=1", text="1"), obs("POST", "/f", b"a=2", text="2")])
    assert len(routes) == 1 and [a.body for a in routes[0].answers] == ["1", "2"]


def test_answers_drop_volatile_headers_and_note_truncation() -> None:
    answer = answer_from(
        200,
        [("Date", "x"), ("Server", "y"), ("X-Request-Id", "z"), ("Content-Length", "3"),
         ("Content-Type", "application/json"), ("ETag", '"v1"')],
        b'{"a": 1',
        "application/json",
        size=9000,
        truncated=True,
    )
    assert answer.headers == [("Content-Type", "application/json"), ("ETag", '"v1"')]
    assert answer.body == '{"a": 1' and not answer.has_json
    assert answer.note == (
        "truncated: the upstream sent 9000 bytes, devamb kept 7 "
        "(raise the service's inspect.bodies to record more)"
    )
