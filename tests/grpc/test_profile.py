"""A service's `proto:` and `descriptor_set:` keys: compiled or read at load, problems at
file:line:col with protoc's own message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from tests.grpc.greeter import GREET, SERVICE, compile_set

HEAD = """version: 1
services:
  g:
    listen: 0
    protocol: {protocol}
    targets:
      up: http://127.0.0.1:1
"""


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return [str(p).replace(f"{path.parent}/", "") for p in info.value.problems]


def _write(tmp_path: Path, tail: str, protocol: str = "grpc") -> Path:
    path = tmp_path / "devamb.yaml"
    path.write_text(HEAD.format(protocol=protocol) + tail)
    return path


def test_proto_globs_compile_with_imports_and_well_known_types(tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    shutil.copy(GREET, tmp_path / "protos")
    profile = load_profile(_write(tmp_path, "    proto: [protos/*.proto]\n"))
    spec = profile.services["g"]
    assert spec.schema is not None and spec.schema.origin == "proto"
    assert spec.schema.method_types(SERVICE, "Say") == ("test.greet.Hello", "test.greet.Reply")
    assert spec.schema_files == ((tmp_path / "protos" / "greet.proto").resolve(),)
    again = load_profile(tmp_path / "devamb.yaml").services["g"]
    assert again == spec  # equal text, equal schema: a reload keeps the service


def test_a_glob_matching_nothing_is_a_problem_at_its_place(tmp_path: Path) -> None:
    path = _write(tmp_path, "    proto:\n      - protos/*.proto\n", protocol="http2")
    (problem,) = _problems(path)
    assert problem.startswith("devamb.yaml:9:9: services.g.proto.0: 'protos/*.proto' matches "
                              "no file")


def test_a_proto_that_does_not_compile_shows_protocs_message_at_the_key(
        tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text('syntax = "proto3";\nmessage M { strin x = 1; }\n')
    (problem,) = _problems(_write(tmp_path, "    proto: bad.proto\n"))
    assert problem.startswith("devamb.yaml:8:5: services.g.proto: cannot compile the .proto "
                              "files:\n")
    assert 'bad.proto:2:13: "strin" is not defined.' in problem


def test_a_corrupt_or_missing_descriptor_set_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.pb").write_bytes(b"\x0a\x05junk")
    (problem,) = _problems(_write(tmp_path, "    descriptor_set: bad.pb\n"))
    assert problem.startswith("devamb.yaml:8:21: services.g.descriptor_set: 'bad.pb' is not a "
                              "usable descriptor set: ")
    (problem,) = _problems(_write(tmp_path, "    descriptor_set: none.pb\n"))
    assert "cannot read descriptor set 'none.pb'" in problem
    good = compile_set(tmp_path / "good.pb")
    (tmp_path / "cut.pb").write_bytes(good[: len(good) // 2])
    (problem,) = _problems(_write(tmp_path, "    descriptor_set: cut.pb\n"))
    assert "'cut.pb' is not a usable descriptor set" in problem


def test_schema_keys_are_for_http2_and_grpc_services_only(tmp_path: Path) -> None:
    (problem,) = _problems(_write(tmp_path, "    descriptor_set: x.pb\n", protocol="http"))
    assert problem == ("devamb.yaml:8:5: services.g.descriptor_set: applies to http2 and grpc "
                       "services only")
    (tmp_path / "a.pb").write_bytes(b"")
    (problem,) = _problems(_write(tmp_path, "    proto: a.proto\n    descriptor_set: a.pb\n"))
    assert "use 'proto' or 'descriptor_set', not both" in problem


def test_the_schema_files_are_watched_for_reloads(tmp_path: Path) -> None:
    from devamb.engine.reload import watched_files

    (tmp_path / "protos").mkdir()
    shutil.copy(GREET, tmp_path / "protos")
    (tmp_path / "set.pb").write_bytes(compile_set(tmp_path / "x.pb"))
    profile = load_profile(_write(tmp_path, "    proto: [protos/*.proto]\n"))
    assert (tmp_path / "protos" / "greet.proto").resolve() in watched_files(profile)
    profile = load_profile(_write(tmp_path, "    descriptor_set: set.pb\n"))
    assert (tmp_path / "set.pb").resolve() in watched_files(profile)


def test_nested_protos_import_each_other_from_the_globs_base(tmp_path: Path) -> None:
    (tmp_path / "protos" / "shop" / "common").mkdir(parents=True)
    (tmp_path / "protos" / "shop" / "common" / "money.proto").write_text(
        'syntax = "proto3";\npackage shop.common;\nmessage Money { int64 cents = 1; }\n')
    (tmp_path / "protos" / "shop" / "cart.proto").write_text(
        'syntax = "proto3";\npackage shop;\nimport "shop/common/money.proto";\n'
        "message Cart { shop.common.Money total = 1; }\n"
        "service Carts { rpc Get(Cart) returns (Cart); }\n")
    profile = load_profile(_write(tmp_path, "    proto: [protos/**/*.proto]\n"))
    schema = profile.services["g"].schema
    assert schema is not None and schema.method_types("shop.Carts", "Get") == (
        "shop.Cart", "shop.Cart")


def test_every_proto_problem_comes_out_at_once_without_echoes(tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text('syntax = "proto3";\nmessage M { strin x = 1; }\n')
    tail = ('    proto: [bad.proto, "nothing/*.proto"]\n'
            "    targets:\n      m: {mock: {grpc: [{method: /x.Y/Z}]}}\n")
    path = tmp_path / "devamb.yaml"
    path.write_text(HEAD.format(protocol="grpc").replace(
        "    targets:\n      up: http://127.0.0.1:1\n", "") + tail)
    problems = _problems(path)
    assert [p.split(": ")[1] for p in problems] == ["services.g.proto", "services.g.proto.1"]
    assert '"strin" is not defined' in problems[0] and "matches no file" in problems[1]
