"""`devamb doctor` connects to each bastion of the profile (a real sshd) and says how it went."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import devamb, free_port
from tests.sshd import Sshd, keygen
from tests.tunnel.conftest import bastion_yaml


def profile(folder: Path, bastions: str) -> None:
    (folder / "devamb.yaml").write_text(
        "version: 1\nbastions:\n" + bastions
        + f"services:\n  api:\n    listen: {free_port()}\n    target: remote\n    targets:\n"
        "      remote: {url: 'http://127.0.0.1:1', via: jump}\n"
    )


async def test_doctor_reaches_and_authenticates_to_the_bastion(sshd: Sshd, tmp_path: Path) -> None:
    profile(tmp_path, bastion_yaml(sshd, tmp_path))
    rc, out, err = await devamb("doctor", cwd=tmp_path)
    assert rc == 0, out + err
    assert f"ok    bastion jump (ssh://{sshd.user}@127.0.0.1:{sshd.port}): reachable" in out


async def test_doctor_fails_on_a_refused_key(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "known_hosts_other"
    stranger.write_text("")  # the host key is not trusted: refused, with the reason
    profile(tmp_path, bastion_yaml(sshd, tmp_path, known_hosts=str(stranger)))
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 1
    assert "fail  bastion jump" in out and "fix: check the host, user and key" in out


async def test_doctor_fails_on_an_unreachable_bastion(sshd: Sshd, tmp_path: Path) -> None:
    closed = free_port()
    yaml = bastion_yaml(sshd, tmp_path).replace(f'"port": {sshd.port}', f'"port": {closed}')
    profile(tmp_path, yaml)
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 1
    assert f"fail  bastion jump (ssh://{sshd.user}@127.0.0.1:{closed})" in out


async def test_doctor_fails_on_a_key_the_bastion_does_not_take(sshd: Sshd, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    profile(tmp_path, bastion_yaml(sshd, tmp_path, identity_file=str(stranger)))
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 1
    assert "fail  bastion jump" in out and "auth failed" in out
