"""The tutorials run as written: every command of their ```sh blocks, in order, in a fresh folder
(and the README's one-minute demo, on a copy of the demo profile with free ports).

A page is read up to its "Where next" heading. Each ```sh line runs in bash (with `devamb` this
tree's CLI), in the folder the page's own `mkdir X && cd X` / `cd X` lines lead to, and must exit
0. A line starting `python3 -m http.server` (the stand-in dependency, "leave it running") runs
in the background until the test ends; `devamb up` (the TUI) runs as `devamb up --detach`. A
```yaml block the page tells the reader to write says so in a comment before it (before its
snippet marker, if it has one):

    <!-- tutorial: write devamb.yaml -->      the block becomes the file
    <!-- tutorial: append mocks/x.yaml -->    the block's `routes:` items go at the file's end

and a step the reader does by hand, stopping the servers left running (Ctrl-C), is a line
`<!-- tutorial: stop-servers -->` of the page.

Ports the pages use (9001, 8001, 9002, 8002) are swapped for free ones, in commands and files.
After a file is written the test waits for the engine to have reloaded it. The outputs the
page promises in its prose are then checked in the test of each page.

The how-to guides' `devamb` and `curl` lines (fault recipes, CI) run the same way against an
engine of a profile with the services they name, each ```sh block after a `fault clear`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from devamb.control.workdir import Workdir, socket_answers
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*tutorial:\s*(write|append)\s+(\S+)\s*-->$")
STOP = "<!-- tutorial: stop-servers -->"
PAGE_PORTS = ("9001", "8001", "9002", "8002")


@dataclass
class Step:
    kind: str  # "run", "write", "append" or "stop"
    text: str
    path: str = ""
    where: str = ""


def tutorial_steps(page: Path) -> list[Step]:
    """The commands and file edits of a tutorial, in order, up to "Where next"."""
    lines = page.read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("## Where next"):
            break
        if lines[i].strip() == STOP:
            steps.append(Step("stop", "", where=f"{page.name}:{i + 1}"))
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m[1], i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = lines[start + 1:end]
        where = f"{page.name}:{start + 1}"
        before = [line for line in lines[max(0, start - 2):start] if line.strip()]
        directive = next((DIRECTIVE.match(b) for b in before if DIRECTIVE.match(b)), None)
        if lang == "sh":
            steps += [Step("run", line, where=where) for line in body if line.strip()]
        elif lang == "yaml" and directive:
            steps.append(Step(directive[1], "\n".join(body) + "\n", directive[2], where))
        i = end + 1
    return steps


@dataclass
class Reader:
    """Someone following the tutorial in `home`: their folder, the servers they left running."""

    home: Path
    ports: dict[str, str]
    cwd: Path = field(init=False)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, stdout)
    init_profile: str = ""  # what `devamb init` wrote

    def __post_init__(self) -> None:
        self.cwd = self.home

    def swap_ports(self, text: str) -> str:
        for page_port, port in self.ports.items():
            text = re.sub(rf"\b{page_port}\b", port, text)
        return text

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, "NO_COLOR": "1", "COLUMNS": "200"}

    def bash(self, command: str, where: str) -> str:
        prelude = f'devamb() {{ {shlex.quote(sys.executable)} -m devamb "$@"; }}\n'
        proc = subprocess.run(
            ["bash", "-c", prelude + command], cwd=self.cwd, env=self.env(),
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, (
            f"{where}: `{command}` exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        self.outputs.append((command, proc.stdout))
        return proc.stdout

    def run(self, step: Step) -> None:
        line = self.swap_ports(step.text)
        command = line.split(" #")[0].strip()
        made = re.fullmatch(r"mkdir (\S+) && cd (\S+)", command)
        if made:
            (self.cwd / made[1]).mkdir()
            self.cwd = self.cwd / made[2]
            return
        moved = re.fullmatch(r"cd (\S+)", command)
        if moved:  # a second terminal, opened where the first one went
            if self.cwd.name != moved[1]:
                self.cwd = self.cwd / moved[1]
            return
        if command.startswith("python3 -m http.server"):
            self.serve(command)
            return
        if command == "devamb up":
            line = "devamb up --detach"
        self.bash(line, step.where)
        if command == "devamb init":
            self.init_profile = (self.cwd / "devamb.yaml").read_text(encoding="utf-8")
        self.swap_ports_in_profile()

    def serve(self, command: str) -> None:
        args = shlex.split(command)
        args[0] = sys.executable
        server = subprocess.Popen(args, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.servers.append(server)
        port = int(args[3])
        deadline = time.monotonic() + 60
        while not _accepts(port):
            assert server.poll() is None, f"`{command}` exited"
            assert time.monotonic() < deadline, f"`{command}` does not listen"
            time.sleep(0.1)

    def swap_ports_in_profile(self) -> None:
        """`devamb init` writes the page's ports; the test's own go in their place."""
        profile = self.cwd / "devamb.yaml"
        if profile.is_file():
            text = profile.read_text(encoding="utf-8")
            if self.swap_ports(text) != text:
                profile.write_text(self.swap_ports(text), encoding="utf-8")

    def edit(self, step: Step) -> None:
        path = self.cwd / step.path
        text = self.swap_ports(step.text)
        if step.kind == "write":
            path.write_text(text, encoding="utf-8")
        else:
            items = text.split("routes:\n", 1)[1]
            path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + items,
                            encoding="utf-8")
        if not self.engine_running():
            return
        if path.name == "devamb.yaml":
            self.wait_for_reload(yaml.safe_load(text))
        else:
            self.wait_for_mock(len(yaml.safe_load(path.read_text(encoding="utf-8"))["routes"]))

    def wait_for_reload(self, profile: dict[str, object]) -> None:
        """Until the engine runs the profile just written (its targets and faults)."""
        services = profile["services"]
        assert isinstance(services, dict)
        wanted = {name: (set(s["targets"]), set(s.get("faults") or ()))
                  for name, s in services.items()}
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(self.bash("devamb status --json", "reload"))
            running = {s["name"]: ({t["name"] for t in s["targets"]},
                                   {f["name"] for f in s["faults"]})
                       for s in status["services"]}
            if running == wanted:
                return
            assert time.monotonic() < deadline, f"no reload: runs {running}, wanted {wanted}"
            time.sleep(0.2)

    def wait_for_mock(self, routes: int) -> None:
        """Until a mock target of the engine serves `routes` routes (the file just edited)."""
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(self.bash("devamb status --json", "reload"))
            served = [len(t["details"].get("routes", ())) for s in status["services"]
                      for t in s["targets"] if t["kind"] == "mock"]
            if routes in served:
                return
            assert time.monotonic() < deadline, f"mock not reloaded: {served} routes"
            time.sleep(0.2)

    def stop_servers(self) -> None:
        for server in self.servers:
            server.terminate()
            server.wait(timeout=30)
        self.servers.clear()

    def follow(self, steps: list[Step]) -> None:
        for step in steps:
            if step.kind == "run":
                self.run(step)
            elif step.kind == "stop":
                self.stop_servers()
            else:
                self.edit(step)

    def output_of(self, command: str) -> list[str]:
        """What every run of `command` (as the page writes it, ports swapped) printed."""
        command = self.swap_ports(command)
        return [out for ran, out in self.outputs if ran.split(" #")[0].strip() == command]

    def engine_running(self) -> bool:
        """An engine answers for the profile here (its socket may live elsewhere: a deep
        folder's socket path would be too long, see devamb/control/workdir.py)."""
        return socket_answers(Workdir.beside(self.cwd / "devamb.yaml").socket)

    def stop(self) -> None:
        if (self.cwd / "devamb.yaml").is_file():  # (no engine: `down` says so, harmlessly)
            subprocess.run([sys.executable, "-m", "devamb", "down"], cwd=self.cwd,
                           env=self.env(), capture_output=True, timeout=120)
        self.stop_servers()


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    listen, upstream = str(free_port()), str(free_port())
    ports = {"9001": listen, "8001": upstream, "9002": listen, "8002": upstream}
    person = Reader(tmp_path, ports)
    try:
        yield person
    finally:
        person.stop()


def test_the_pages_have_steps() -> None:
    for page in ("first-profile.md", "record-offline.md"):
        steps = tutorial_steps(DOCS / page)
        assert sum(s.kind == "run" for s in steps) >= 10, page
        assert any(s.kind != "run" for s in steps), page


def test_your_first_profile(reader: Reader) -> None:
    reader.follow(tutorial_steps(DOCS / "first-profile.md"))
    # what `devamb init` wrote is the profile the page shows (comments aside)
    shown = next(b for b in _yaml_blocks(DOCS / "first-profile.md") if "name: shop" in b)
    assert yaml.safe_load(reader.init_profile) == yaml.safe_load(shown)
    assert reader.output_of("devamb validate")[0].strip() == "devamb.yaml: ok (1 services)"
    customer = reader.output_of("curl localhost:9001/customer.json")
    assert json.loads(customer[0]) == {"id": 42, "name": "Ada"}
    assert json.loads(customer[1])["target"] == "debug"
    statuses = [out.strip() for cmd, out in reader.outputs if "%{http_code}" in cmd]
    assert statuses == ["503", "503", "200"]
    [slow] = [out for cmd, out in reader.outputs if "%{time_total}" in cmd]
    assert float(slow.strip().rstrip("s")) >= 0.3
    [failures] = reader.output_of("devamb traffic --filter '~c 5xx'")
    assert failures.count(" 503 ") == 2


def _yaml_blocks(page: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_record_staging_then_work_offline(reader: Reader) -> None:
    reader.follow(tutorial_steps(DOCS / "record-offline.md"))
    assert "3 exchanges ->" in reader.output_of("devamb record stop")[0]
    recorded = yaml.safe_load((reader.cwd / "mocks" / "catalog.yaml").read_text())
    paths = [route["match"]["path"] for route in recorded["routes"]]
    assert paths == ["/products.json", "/products/1.json", "/products/3.json",
                     "/products/{id}.json"]
    listed = reader.output_of("curl localhost:9002/products.json")
    assert json.loads(listed[0]) == json.loads(listed[-1])  # staging's answer, then the mock's
    assert "502 Bad Gateway" in reader.output_of("curl -i localhost:9002/products.json")[0]
    two = reader.output_of("curl localhost:9002/products/2.json")
    assert json.loads(two[0])["error"] == "no-mock-route"
    assert json.loads(two[1]) == {"id": "2", "name": "product 2", "price": 10}


# --- how-to guides: their commands are accepted by a running engine ------------------------------

HOWTO_SERVICES = """\
  cache: {listen: 0, protocol: redis, targets: {local: "tcp://127.0.0.1:8001"}}
  db: {listen: 0, protocol: postgres, targets: {local: "tcp://127.0.0.1:8001"}}
  inventory: {listen: 0, protocol: grpc, targets: {local: "http://127.0.0.1:8001"}}
"""  # what the guides' commands name besides payments


def howto_profile() -> str:
    """The fault recipes' scenario profile, with the other services the guides use, a mock
    target for `devamb switch payments mock` and `header_faults` for the header recipe."""
    text = next(b for b in _yaml_blocks(DOCS / "fault-recipes.md") if "scenarios:" in b)
    targets = "    targets: {local: http://127.0.0.1:8001}\n"
    assert targets in text and "\nscenarios:" in text
    text = text.replace(targets, (
        "    header_faults: true\n    target: local\n    targets:\n"
        "      local: http://127.0.0.1:8001\n"
        "      mock: {mock: {routes: [{match: {path: /charge}, respond: {json: {ok: true}}}]}}\n"))
    return text.replace("\nscenarios:", "\n" + HOWTO_SERVICES + "scenarios:")


def devamb_lines(page: Path) -> list[list[Step]]:
    """The ```sh blocks' lines that run `devamb` or `curl` (not the app's own test runners)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        lines = [line for line in block.splitlines() if line.startswith(("devamb ", "curl "))]
        if lines:
            found.append([Step("run", line, where=page.name) for line in lines])
    return found


@pytest.mark.parametrize("page", ["fault-recipes.md", "ci.md"])
def test_howto_commands_work(page: str, reader: Reader) -> None:
    reader.cwd.joinpath("devamb.yaml").write_text(reader.swap_ports(howto_profile()))
    blocks = devamb_lines(DOCS / page)
    assert sum(len(b) for b in blocks) >= 8
    for block in blocks:
        if not any(s.text.startswith("devamb up") for s in block):
            if not reader.engine_running():
                reader.bash("devamb up --detach", page)
            reader.bash("devamb fault clear", page)  # each recipe on its own
        for step in block:
            reader.run(step)


# --- the README's one-minute demo ----------------------------------------------------------------


def test_readme_demo_runs(tmp_path: Path) -> None:
    """The README's demo commands, on a copy of profiles/demo.yaml with free ports (`-p demo`
    names profiles/demo.yaml of the folder the commands run in)."""
    ports = {page: str(free_port()) for page in ("9000", "9001", "8001", "6390")}
    reader = Reader(tmp_path, ports)
    demo = (ROOT / "profiles" / "demo.yaml").read_text(encoding="utf-8")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "demo.yaml").write_text(reader.swap_ports(demo), encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## A one-minute demo", 1)[1]
    block = re.search(r"```sh\n(.*?)```", tour, re.S)
    assert block is not None
    lines = [line for line in block[1].splitlines() if line.strip()]
    assert len(lines) >= 8 and lines[-1].startswith("devamb -p demo down")
    try:
        reader.bash("devamb up demo --detach", "README.md")  # in place of the TUI of --demo
        for line in lines:
            reader.run(Step("run", line, where="README.md"))
    finally:
        reader.bash("devamb -p demo down || true", "README.md")
    echo = json.loads(reader.output_of("curl localhost:9001/hello")[0])
    assert (echo["service"], echo["path"]) == ("api", "/hello")
    assert "502" in reader.output_of("curl -i localhost:9001/hello")[0].splitlines()[0]
