"""`bastions:` and `via:` are checked at validation, each problem at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

from devamb.engine.assembly import load_profile
from tests.conftest import devamb, load_problems, problems

HEAD = "version: 1\n"
SERVICE = (
    "services:\n  db:\n    listen: 0\n    protocol: tcp\n    target: staging\n"
    "    targets:\n      staging: {{url: 'tcp://db.internal:5432', via: {via}}}\n"
)


def key(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "id_test"
    path.write_text("not read at validation\n")
    path.chmod(mode)
    return path


def test_a_valid_profile_with_bastions(tmp_path: Path) -> None:
    identity = key(tmp_path)
    path = tmp_path / "devamb.yaml"
    path.write_text(
        HEAD + "bastions:\n"
        f"  edge: {{host: edge.example.com, user: deploy, identity_file: {identity.name}}}\n"
        "  inner: {host: bastion.internal, port: 2222, jump: [edge], accept_new: true,"
        " keepalive: 10s, passphrase: '${KEY_PASS}'}\n"
        "  short: ssh://ops@short.example.com:2200\n" + SERVICE.format(via="inner")
    )
    profile = load_profile(path, environ={"KEY_PASS": "s3cret-passphrase"})
    inner = profile.bastions["inner"]
    assert (inner.port, inner.jump, inner.accept_new, inner.keepalive) == (
        2222, ("edge",), True, 10.0,
    )
    assert profile.bastions["edge"].identity_file == str(identity)
    short = profile.bastions["short"]
    assert (short.user, short.host, short.port) == ("ops", "short.example.com", 2200)
    assert "s3cret-passphrase" in profile.secrets  # masked like every ${VAR} value
    assert profile.services["db"].targets["staging"].describe().endswith("via inner")


def test_an_inline_ssh_via(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(HEAD + SERVICE.format(via="'ssh://me@jump.example.com:22'"))
    profile = load_profile(path, environ={})
    assert profile.bastions["ssh://me@jump.example.com:22"].host == "jump.example.com"


def test_a_via_that_names_no_bastion(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + "bastions:\n  edge: {host: e}\n" + SERVICE.format(via="egde"))
    assert found == [
        "devamb.yaml:10:53: services.db.targets.staging.via: 'egde' is not a bastion (known: edge);"
        " define it under `bastions:` or write ssh://USER@HOST[:PORT]"
    ]


def test_bad_bastions(tmp_path: Path) -> None:
    identity = key(tmp_path, 0o644)
    found = problems(
        tmp_path,
        HEAD + "bastions:\n"
        "  nohost: {user: me}\n"
        "  missing: {host: h, identity_file: nowhere/id_ed25519}\n"
        f"  open: {{host: h, identity_file: {identity.name}}}\n"
        "  literal: {host: h, password: hunter2}\n"
        "  loop: {host: h, jump: [nobody]}\n"
        "  url: 'http://h'\n" + SERVICE.format(via="nohost"),
    )
    text = "\n".join(found)
    assert "devamb.yaml:3:11: bastions.nohost: missing required key 'host'" in text
    assert "bastions.missing.identity_file: cannot read identity file 'nowhere/id_ed25519'" in text
    assert "bastions.open.identity_file: identity file 'id_test' is readable by others" in text
    assert "chmod 600" in text
    assert "bastions.literal.password: password must be exactly a ${VAR} reference" in text
    assert "bastions.loop.jump.0: 'nobody' is not a bastion" in text
    assert "bastions.url: 'http://h' is not an ssh://[USER@]HOST[:PORT] address" in text
    assert "services.db" not in text  # a via naming a broken bastion is reported there only
    assert "hunter2" not in text  # a literal password is named by its key, never quoted


def test_unknown_keys_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(HEAD + "bastions:\n  edge: {host: h, knwon_hosts: x}\n" + SERVICE.format(
        via="edge"))
    found = load_problems(path)
    assert found and "unknown key 'knwon_hosts' (did you mean 'known_hosts'?)" in found[0]


async def test_validate_cli(tmp_path: Path) -> None:
    (tmp_path / "devamb.yaml").write_text(HEAD + SERVICE.format(via="nowhere"))
    code, out, err = await devamb("validate", cwd=tmp_path)
    assert code == 1
    assert "devamb.yaml:8:53: services.db.targets.staging.via: 'nowhere' is not a bastion" in (
        out + err
    )
