"""A server certificate for the host name `localhost`, signed by the test CA of tests/certs.py:
an upstream reached by name, so that Envoy sends SNI and checks a DNS name."""

from __future__ import annotations

from pathlib import Path

from tests.certs import certificates


def localhost_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) PEM files for DNS:localhost."""
    return certificates(folder, "localhost", ("sni-ca.pem", "sni.pem", "sni.key"))
