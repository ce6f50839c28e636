"""A throwaway PostgreSQL cluster (Debian's postgresql package) on a free port, in a temp dir.

initdb refuses root: as root the cluster runs as `nobody`. SCRAM authentication with a known
password, so tests can check that no password reaches a record.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.certs import certificates
from tests.conftest import free_port

USER = "app"
PASSWORD = "s3cret-Pw-42"


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class Cluster:
    directory: Path
    port: int
    bin: Path

    @property
    def dsn(self) -> str:
        return self.dsn_at(self.port)

    @staticmethod
    def dsn_at(port: int, database: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={port} user={USER} password={PASSWORD} "
                f"dbname={database} sslmode=disable")

    def psql(self, port: int, sql: str, *extra: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PGPASSWORD=PASSWORD, PGSSLMODE="disable")
        return subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", USER,
             "-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *extra, "-c", sql],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )

    def stop(self) -> None:
        _as_owner([str(self.bin / "pg_ctl"), "-D", str(self.directory), "-m", "immediate",
                   "stop"], check=False)
        shutil.rmtree(self.directory.parent, ignore_errors=True)


def _as_owner(args: list[str], check: bool = True) -> None:
    if os.geteuid() == 0:
        args = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode:
        raise RuntimeError(f"{args[-1]!r} failed: {done.stdout}{done.stderr}")


def start_cluster(ssl: bool = False) -> Cluster:
    """A new cluster in its own directory under the system's temp dir (which `nobody` can
    reach, unlike pytest's private temp dirs); with `ssl`, it accepts TLS (SSLRequest)."""
    binaries = pg_bin()
    assert binaries is not None
    base = Path(tempfile.mkdtemp(prefix="devamb-pg-"))
    data = base / "data"
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "nobody", "nogroup")
        shutil.chown(pwfile, "nobody", "nogroup")
    port = free_port()
    _as_owner([str(binaries / "initdb"), "-D", str(data), "-U", USER, "-A", "scram-sha-256",
               f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8"])
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    if ssl:
        _, cert, key = certificates(base)
        key.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(cert, "nobody", "nogroup")
            shutil.chown(key, "nobody", "nogroup")
        options += f" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
    _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
               options, "start"])
    return Cluster(data, port, binaries)
