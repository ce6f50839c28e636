"""The YAML loader is bounded: size, nodes, depth, alias expansion, encoding; each crossing is a
positioned ProfileError, never a hang, a memory blow-up or a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from devamb.profile import source as source_module
from devamb.profile.source import (
    MAX_ALIAS_VALUES,
    MAX_FILE_BYTES,
    MAX_NODES,
    load_source,
    read_source,
)
from tests.profile.bombs import SERVICE, alias_bomb

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "profiles").glob("**/*.yaml"))


def problems(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile(path, environ={})
    return [str(p) for p in info.value.problems]


def test_an_alias_bomb_stops_at_the_alias_that_crosses_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(9) + SERVICE)
    found = problems(path)
    assert len(found) == 1
    assert f"aliases expand to more than {MAX_ALIAS_VALUES} values" in found[0]
    assert str(path).endswith(found[0].split(":")[0]) and ":6:" in found[0]  # the line of a5


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    text = (
        "x-target: &t {url: 'http://127.0.0.1:1', headers: {x-a: b}}\n"
        "services:\n  api:\n    listen: 0\n    targets: {one: *t, two: *t}\n    target: one\n"
    )
    path = tmp_path / "devamb.yaml"
    path.write_text(text)
    assert "unknown key 'x-target'" in problems(path)[0]
    source = load_source(text, "f.yaml")
    assert source.data["services"]["api"]["targets"]["two"]["headers"] == {"x-a": "b"}


def test_too_many_nodes_and_too_deep_are_refused_where_they_happen() -> None:
    with pytest.raises(ProfileError) as info:
        load_source("[" + "1," * (MAX_NODES + 5) + "1]", "f.yaml")
    assert str(info.value).startswith(f"f.yaml:1:{2 * MAX_NODES}: YAML: more than {MAX_NODES}")
    with pytest.raises(ProfileError) as info:
        load_source("[" * 100_000, "f.yaml")
    assert str(info.value) == "f.yaml:1:65: YAML: nested more than 64 levels deep"


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(SERVICE + "#" * MAX_FILE_BYTES + "\n")
    assert problems(path) == [
        f"{path}:1:1: the file is 8.0 MiB; devamb reads YAML files of at most 8 MiB "
        "(keep large bodies in body files)"
    ]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"version: 1\nname: \xff\xfe\n", "2:7"),
        ("version: 1\n# \u00e9\u00e9\u00e9 \n".encode() + b"name: '\xc3\xa9\xc3'\n", "3:9"),
        (b"\xff\xfeversion: 1\n", "1:1"),  # UTF-16
    ],
)
def test_not_utf8_is_reported_at_its_line_and_column(
    tmp_path: Path, data: bytes, where: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    assert problems(path) == [f"{path}:{where}: not UTF-8"]


def test_a_dotenv_or_mock_file_that_is_not_utf8_is_positioned_too(tmp_path: Path) -> None:
    profile = tmp_path / "devamb.yaml"
    profile.write_text(SERVICE)
    (tmp_path / ".env").write_bytes(b"A=1\nB=\xe9t\xe9\n")
    assert problems(profile) == [f"{tmp_path / '.env'}:2:3: not UTF-8"]
    (tmp_path / ".env").unlink()
    (tmp_path / "m.yaml").write_bytes(b"routes:\n  - path: /\xff\n")
    profile.write_text("services:\n  api:\n    listen: 0\n    targets: {m: {mock: m.yaml}}\n")
    assert problems(profile) == [f"{tmp_path / 'm.yaml'}:2:12: not UTF-8"]
    with pytest.raises(ProfileError):
        read_source(tmp_path / "m.yaml", "m.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_libyaml_and_the_python_parser_give_the_same_data_and_positions(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_text()
    fast = load_source(text, "f")
    monkeypatch.setattr(source_module, "_CLoader", None)
    slow = load_source(text, "f")
    assert (fast.data, fast.values, fast.keys, fast.containers) == (
        slow.data, slow.values, slow.keys, slow.containers
    )
