"""Where the Toxiproxy API listens: `--toxiproxy-api [HOST:PORT]` or the profile's
`toxiproxy_api:`, loopback only."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile
from devamb.toxiproxy.address import parse_api_address
from tests.conftest import devamb, problems
from tests.toxiproxy.conftest import PROFILE, start_engine, stop_engine


@pytest.mark.parametrize(("text", "expected"), [
    ("8474", "127.0.0.1:8474"),
    ("127.0.0.1:8475", "127.0.0.1:8475"),
    ("localhost:0", "localhost:0"),
    ("[::1]:8474", "[::1]:8474"),
])
def test_loopback_addresses(text: str, expected: str) -> None:
    assert str(parse_api_address(text)) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:8474", "192.168.1.2:8474", "[::]:8474", "nope",
                                  "127.0.0.1:70000"])
def test_other_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_api_address(text)


def test_profile_key(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(PROFILE + "toxiproxy_api: true\n")
    assert load_profile(path).toxiproxy_api == "127.0.0.1:8474"
    path.write_text(PROFILE + "toxiproxy_api: 8475\n")
    assert load_profile(path).toxiproxy_api == "127.0.0.1:8475"
    path.write_text(PROFILE)
    assert load_profile(path).toxiproxy_api is None


def test_profile_key_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, PROFILE + "toxiproxy_api: 0.0.0.0:8474\n") == [
        "devamb.yaml:8:16: toxiproxy_api: the Toxiproxy API listens on loopback only "
        "(127.0.0.1, localhost or ::1), not '0.0.0.0': it can change what this machine's "
        "services connect to"]
    assert problems(tmp_path, PROFILE + "toxiproxy_api: [1]\n") == [
        "devamb.yaml:8:16: toxiproxy_api: expected true, a PORT or HOST:PORT "
        "(e.g. 127.0.0.1:8474), got a list"]


async def test_cli_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    (tmp_path / "devamb.yaml").write_text(PROFILE)
    code, _, err = await devamb("up", "--headless", "--toxiproxy-api", "0.0.0.0:8474",
                                cwd=tmp_path)
    assert code == 2
    assert "loopback only" in err


def test_the_profile_key_starts_the_api(tmp_path: Path) -> None:
    (tmp_path / "devamb.yaml").write_text(PROFILE + "toxiproxy_api: 127.0.0.1:0\n")
    api = start_engine(tmp_path)
    try:
        with urllib.request.urlopen(f"{api.url}/proxies", timeout=30) as response:
            assert json.load(response) == {}
    finally:
        stop_engine(api)
