"""Mock files: what they parse to, and bad files reported as FILE:LINE:COL: path: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.profile.problems import ProfileError
from devamb.targets.mock.routes import bracketed
from tests.targets.mock.conftest import mock_spec

GOOD = """
routes:
  - name: one user
    match:
      method: [get, HEAD]
      path: /users/{id}
      query: {page: 2, q: {regex: "a.*"}, debug: {present: false}}
      headers: {X-User: {present: true}}
      json: {user.name: ada, n: 3}
    respond:
      status: 201
      headers: {X-Id: "{{path.id}}", X-Count: 5}
      json: {id: "{{path.id}}", fixed: [1, two]}
    delay: 20ms
    times: 2
  - match: {path: /flaky}
    sequence: [{status: 503}, {status: 200, body: ok}]
    repeat: cycle
fallback: {status: 418, body: teapot}
"""


def test_a_good_file_parses_to_frozen_routes(tmp_path: Path) -> None:
    spec = mock_spec(tmp_path, GOOD)
    first, second = spec.routes
    assert first.name == "one user" and first.index == 0
    assert first.match.methods == ("GET", "HEAD")
    assert first.match.path is not None and first.match.path.params == ("id",)
    assert [n for n, _ in first.match.query] == ["page", "q", "debug"]
    assert first.match.query[0][1].value == "2"  # query values compare as text
    assert first.match.json[1][1].value == 3  # JSON fields keep their type
    assert first.times == 2 and first.delay == pytest.approx(0.02)
    respond = first.responds[0]
    assert respond.status == 201 and respond.has_json
    assert [n for n, _ in respond.headers] == ["X-Id", "X-Count"]
    assert second.name == "ANY /flaky" and second.repeat == "cycle"
    assert [r.status for r in second.responds] == [503, 200]
    assert spec.fallback.respond is not None and spec.fallback.respond.status == 418
    assert spec.watched_files() == (tmp_path / "mock.yaml",)


def test_the_same_text_gives_an_equal_spec_and_an_edit_a_different_one(tmp_path: Path) -> None:
    assert mock_spec(tmp_path, GOOD) == mock_spec(tmp_path, GOOD)
    assert mock_spec(tmp_path, GOOD) != mock_spec(tmp_path, GOOD.replace("teapot", "kettle"))


def test_body_files_are_relative_to_the_mock_file_and_watched(tmp_path: Path) -> None:
    (tmp_path / "bodies").mkdir()
    (tmp_path / "bodies" / "a.bin").write_bytes(b"\x00\x01")
    spec = mock_spec(tmp_path, "routes: [{respond: {file: bodies/a.bin}}]")
    assert spec.routes[0].responds[0].file == tmp_path / "bodies" / "a.bin"
    assert spec.watched_files() == (tmp_path / "mock.yaml", tmp_path / "bodies" / "a.bin")


def test_template_false_keeps_braces_as_text(tmp_path: Path) -> None:
    spec = mock_spec(tmp_path, "routes: [{respond: {body: '{{x}}', template: false}}]")
    body = spec.routes[0].responds[0].body
    assert body is not None and body.parts == ("{{x}}",)


BAD = [
    ("routes: {a: 1}", ["mock.yaml:1:9: routes: expected a list of routes, got a mapping"]),
    (
        "routes:\n  - match: {path: /a}\n",
        ["mock.yaml:2:5: routes[0]: a route needs exactly one of 'respond' or 'sequence'"],
    ),
    (
        "routes:\n  - respond: {status: 200}\n    sequence: [{status: 1}]\n",
        ["mock.yaml:2:5: routes[0]: a route needs exactly one of 'respond' or 'sequence'"],
    ),
    (
        "routes:\n  - match: {path: /a}\n    respond:\n      status: 700\n",
        ["mock.yaml:4:15: routes[0].respond.status: 700 is out of range 100..599"],
    ),
    (
        "routes:\n  - respond: {stauts: 200}\n",
        [
            "mock.yaml:2:15: routes[0].respond.stauts: unknown key 'stauts' (did you mean "
            "'status'?); expected one of status, headers, body, json, file, delay, template"
        ],
    ),
    (
        "routes:\n  - respond: {body: a, json: b}\n",
        ["mock.yaml:2:24: routes[0].respond.json: a respond has one body: body or json, not both"],
    ),
    (
        "routes:\n  - match: {path: users}\n    respond: {}\n",
        ["mock.yaml:2:19: routes[0].match.path: a path starts with '/': 'users'"],
    ),
    (
        "routes:\n  - match: {path: '/a/{id'}\n    respond: {}\n",
        ["mock.yaml:2:19: routes[0].match.path: unclosed '{' at column 4 of '/a/{id'"],
    ),
    (
        "routes:\n  - match: {path: '/a/{id}/{id}'}\n    respond: {}\n",
        ["mock.yaml:2:19: routes[0].match.path: parameter {id} appears twice"],
    ),
    (
        "routes:\n  - match: {method: [GET, 'GE T']}\n    respond: {}\n",
        ["mock.yaml:2:27: routes[0].match.method[1]: 'GE T' is not an HTTP method"],
    ),
    (
        "routes:\n  - match: {query: {q: {regex: '('}}}\n    respond: {}\n",
        [
            "mock.yaml:2:32: routes[0].match.query.q.regex: bad regex '(': missing ) "
            "(at character 1 of the pattern)"
        ],
    ),
    (
        "routes:\n  - match: {query: {q: {regex: '(a)\\1'}}}\n    respond: {}\n",
        [
            "mock.yaml:2:32: routes[0].match.query.q.regex: bad regex '(a)\\\\1': a backreference "
            "\\1 is not supported: devamb runs regexes with RE2, in linear time, which has no "
            "backreferences or lookaround (at character 4 of the pattern)"
        ],
    ),
    (
        "routes:\n  - match: {path: /x}\n    respond: {headers: {'X Y': a, Z: \"a\\nb\"}}\n",
        [
            "mock.yaml:3:25: routes[0].respond.headers.X Y: 'X Y' is not a header name (letters, "
            "digits, !#$%&'*+.^_`|~-, no spaces)",
            "mock.yaml:3:38: routes[0].respond.headers.Z: a header value cannot hold '\\n' "
            "(no line breaks or control characters)",
        ],
    ),
    (
        "routes:\n  - match: {headers: {X: [1]}}\n    respond: {}\n",
        [
            "mock.yaml:2:26: routes[0].match.headers.X: expected a value, {regex: …} or "
            "{present: true|false}, got a list"
        ],
    ),
    (
        "routes:\n  - match: {query: {q: {regex: a, present: true}}}\n    respond: {}\n",
        ["mock.yaml:2:24: routes[0].match.query.q: use one of 'regex' or 'present', not both"],
    ),
    (
        "routes:\n  - match: {path: '/u/{id}'}\n    respond: {body: 'hi {{path.name}}'}\n",
        [
            "mock.yaml:3:21: routes[0].respond.body: {{path.name}}: the route's path has no "
            "{name} (its parameters: {id})"
        ],
    ),
    (
        "routes:\n  - respond:\n      json: {a: [1, '{{cookie.x}}']}\n",
        [
            "mock.yaml:3:21: routes[0].respond.json.a[1]: unknown template value 'cookie.x' at "
            "offset 1; expected path.NAME, query.NAME, headers.NAME, json.NAME, method"
        ],
    ),
    (
        "routes:\n  - respond: {headers: {X: 'a {{query.q'}}\n",
        ["mock.yaml:2:28: routes[0].respond.headers.X: unclosed '{{' at offset 3"],
    ),
    (
        "routes:\n  - respond: {file: nowhere.bin}\n",
        ["mock.yaml:2:21: routes[0].respond.file: no file 'nowhere.bin' (looked for {tmp}/"
         "nowhere.bin)"],
    ),
    (
        "routes:\n  - respond: {}\n    repeat: cycle\n",
        ["mock.yaml:3:5: routes[0].repeat: 'repeat' goes with 'sequence'"],
    ),
    (
        "routes:\n  - sequence: [{}]\n    repeat: forever\n    times: 0\n",
        [
            "mock.yaml:3:13: routes[0].repeat: 'forever' is not one of last, cycle",
            "mock.yaml:4:12: routes[0].times: expected 1 or more, got 0",
        ],
    ),
    (
        "routes: []\nfallback: {proxy: mock}\n",
        ["mock.yaml:2:19: fallback.proxy: a mock cannot fall back to itself"],
    ),
    (
        "routes: []\nfallback: {proxy: stagin}\n",
        [
            "mock.yaml:2:19: fallback.proxy: 'stagin' is not another target of this service; "
            "expected one of live"
        ],
    ),
    (
        "routes: [\n",
        ["mock.yaml:2:1: YAML syntax: expected the node content, but found '<stream end>'"],
    ),
    ("", ["mock.yaml:1:1: the mock file is empty; it needs 'routes:'"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_mock_files_are_reported_precisely(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    with pytest.raises(ProfileError) as caught:
        mock_spec(tmp_path, text)
    got = [str(p) for p in caught.value.problems]
    assert got == [e.replace("{tmp}", str(tmp_path.resolve())) for e in expected]


def test_paths_with_list_indices_read_like_code() -> None:
    assert bracketed(("routes", 2, "respond", "status")) == "routes[2].respond.status"
    assert bracketed(("routes", 0, "sequence", 1)) == "routes[0].sequence[1]"
