"""Host keys and authentication against a real sshd: an unknown key is refused with the line
to add, accept_new records it, a changed key is refused with both fingerprints, a wrong key
shows an auth failure; none of them crashes the engine or retries in a tight loop. A ProxyJump
chain of two sshd; a key passphrase from ${VAR} is never in any output."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory, Notices, listen_url
from tests.replicas import eventually
from tests.sshd import Sshd, keygen
from tests.tunnel.conftest import bastion_yaml
from tests.upstreams import HttpUpstream


def service(upstream: HttpUpstream, via: str = "jump") -> str:
    return (
        "services:\n  api:\n    listen: 0\n    connect_timeout: 5s\n    target: remote\n"
        f"    targets:\n      remote: {{url: '{upstream.url}', via: {via}}}\n"
    )


async def get(engine: Engine, path: str = "/hello") -> tuple[int, str, str]:
    url = f"{listen_url(engine, 'api')}{path}"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        error = response.headers.get("x-devamb-error", "")
        return response.status, error, await response.text()


async def shown_nowhere(engine: Engine, secret: str,
                        caplog: pytest.LogCaptureFixture) -> tuple[int, str, str]:
    """One request through the bastion; `secret` is in neither its answer, the status, an
    event nor a log line. Returns the answer."""
    events = engine.bus.subscribe()
    seen: list[str] = []

    async def collect() -> None:
        async for event in events:
            seen.append(repr(event))

    collector = asyncio.get_running_loop().create_task(collect())
    answer = await get(engine)
    status = await engine.status()
    await asyncio.sleep(0.1)
    collector.cancel()
    assert secret not in answer[2] and secret not in json.dumps(status)
    assert secret not in caplog.text
    assert not [e for e in seen if secret in e]
    return answer


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True)
    return out.stdout.split()[1]


async def test_unknown_host_key_is_refused_with_the_line_to_add(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path, known_hosts=str(empty))
        + service(upstream)
    )
    status, code, body = await get(engine)
    assert (status, code) == (502, "tunnel-down")
    assert "unknown host key" in body
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.state == "down"
    assert fingerprint(Path(f"{sshd.host_key}.pub")) in (bastion.reason or "")
    assert sshd.known_hosts_line() in (bastion.reason or "")
    for _ in range(5):  # refused at once, without trying again and again
        assert (await get(engine))[:2] == (502, "tunnel-down")
    assert bastion.attempts == 1
    assert empty.read_text() == ""  # never silently accepted


async def test_accept_new_records_the_key(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    path = tmp_path / "ssh" / "known_hosts"  # neither the file nor its folder exist yet
    engine = await make_engine(
        "version: 1\nbastions:\n"
        + bastion_yaml(sshd, tmp_path, known_hosts=str(path), accept_new=True)
        + service(upstream)
    )
    notices = Notices(engine)
    assert (await get(engine))[0] == 200
    assert path.read_text().strip() == sshd.known_hosts_line()
    await eventually(lambda: bool(notices.saying("accepted the new host key")), 5)


async def test_changed_host_key_is_refused_with_both_fingerprints(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    other = keygen(tmp_path / "other_host")
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts_changed"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    engine = await make_engine(
        "version: 1\nbastions:\n"
        + bastion_yaml(sshd, tmp_path, known_hosts=str(known), accept_new=True)
        + service(upstream)
    )
    assert (await get(engine))[:2] == (502, "tunnel-down")
    status = await engine.status()
    shown = status["bastions"][0]
    assert shown["state"] == "down" and "host key mismatch" in shown["reason"]
    assert fingerprint(Path(f"{other}.pub")) in shown["reason"]
    assert fingerprint(Path(f"{sshd.host_key}.pub")) in shown["reason"]
    assert known.read_text().count("\n") == 1  # accept_new never replaces a changed key


async def test_wrong_key_shows_an_auth_failure(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    stranger = keygen(tmp_path / "stranger")
    engine = await make_engine(
        "version: 1\nbastions:\n"
        + bastion_yaml(sshd, tmp_path, identity_file=str(stranger)) + service(upstream)
    )
    status, code, body = await get(engine)
    assert (status, code) == (502, "tunnel-down")
    assert "auth failed" in body
    shown = (await engine.status())["bastions"][0]
    assert shown["state"] == "down" and shown["reason"].startswith("auth failed")
    assert (await get(engine))[0] == 502
    assert shown["attempts"] == 1


@pytest.fixture
def second_sshd(tmp_path: Path, sshd: Sshd) -> Iterator[Sshd]:
    server = Sshd(tmp_path / "inner", client_key=sshd.client_key).start()
    yield server
    server.stop()


async def test_a_jump_chain_of_two_sshd(
    sshd: Sshd, second_sshd: Sshd, tmp_path: Path, make_engine: EngineFactory,
    upstream: HttpUpstream,
) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, outer, name="edge")
        + bastion_yaml(second_sshd, tmp_path, name="inner", jump="edge")
        + service(upstream, "inner")
    )
    status, _, body = await get(engine, "/through/two")
    assert status == 200 and json.loads(body)["path"] == "/through/two"
    inner = engine.ctx.tunnels.get("inner")
    assert inner is not None and inner.state == "up" and inner.hops[0].name == "edge"


async def test_a_passphrase_from_var_is_never_shown(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "correct-horse-battery-staple-42"
    locked = keygen(tmp_path / "locked", passphrase=secret)
    (sshd.dir / "authorized_keys").write_text(
        (sshd.dir / "authorized_keys").read_text() + Path(f"{locked}.pub").read_text()
    )
    monkeypatch.setenv("BASTION_PASSPHRASE", secret)
    caplog.set_level(logging.DEBUG)
    engine = await make_engine(
        "version: 1\nbastions:\n"
        + bastion_yaml(sshd, tmp_path, identity_file=str(locked),
                       passphrase="${BASTION_PASSPHRASE}")
        + service(upstream)
    )
    answer = await shown_nowhere(engine, secret, caplog)
    assert answer[0] == 200, answer


async def test_a_password_from_var_is_never_shown(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """This sshd takes keys only: the password is offered to it and refused; whatever happens,
    the password is in no status, answer, event or log line."""
    secret = "pw-from-env-never-shown-9"
    monkeypatch.setenv("BASTION_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    stranger = keygen(tmp_path / "stranger_pw")
    engine = await make_engine(
        "version: 1\nbastions:\n"
        + bastion_yaml(sshd, tmp_path, identity_file=str(stranger),
                       password="${BASTION_PASSWORD}")
        + service(upstream)
    )
    status_code, code, body = await shown_nowhere(engine, secret, caplog)
    assert (status_code, code) == (502, "tunnel-down") and "auth failed" in body
