"""A real OpenSSH server for tests: a temporary host key, an authorized client key made for
the test, a free 127.0.0.1 port, `AllowTcpForwarding yes` (see /usr/sbin/sshd)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def keygen(path: Path, passphrase: str = "") -> Path:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True
        )
    return path


class Sshd:
    def __init__(
        self, folder: Path, client_key: Path | None = None, hosts: Path | None = None
    ) -> None:
        """`hosts`: an /etc/hosts of the bastion's own (sshd runs in a mount namespace where
        it is bind-mounted over /etc/hosts: names only the bastion can resolve)."""
        self.dir = folder
        self.hosts = hosts
        folder.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(folder / "host")
        self.client_key = client_key or keygen(folder / "client")
        (folder / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "sshd.log"

    @property
    def user(self) -> str:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name

    def known_hosts_line(self) -> str:
        kind, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}"

    def start(self, port: int | None = None) -> Sshd:
        """Start (or start again, on the same port when it was started before)."""
        if port is None:
            port = self.port or _free_port()
        self.port = port
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\nPidFile {self.dir / 'sshd.pid'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nMaxStartups 100\n"
            "LogLevel ERROR\n"
        )
        os.makedirs("/run/sshd", exist_ok=True)
        argv = [SSHD, "-D", "-e", "-f", str(config)]
        if self.hosts is not None:  # unshare and sh exec: the process is sshd's own
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" /etc/hosts && exec "$@"', str(self.hosts), *argv]
        self.proc = subprocess.Popen(argv, stderr=open(self.log, "ab"))  # noqa: SIM115
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH"):
                        return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sshd exited: {self.log.read_text()}") from None
                time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def kill(self) -> None:
        """Kill the listener and every session it forked (a dropped bastion)."""
        if self.proc is None:
            return
        # sshd forks a process (and a privilege-separated child) per connection: ours only,
        # found by parent id, never by name
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def sessions(self) -> list[int]:
        """The processes serving connections now (the listener's descendants)."""
        return _descendants(self.proc.pid) if self.proc is not None else []

    def freeze_sessions(self) -> list[int]:
        """SIGSTOP the processes serving the connections open now (not the listener): the
        bastion stops answering without closing anything, as a frozen host would; new
        connections are still served by fresh forks."""
        frozen = self.sessions()
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return frozen

    def thaw(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
