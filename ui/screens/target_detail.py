"""TargetDetail: one target of a service, as the engine's status describes it.

Pools: each endpoint's health, ejection, last connection attempt, in-flight and share. Docker:
its containers with state and address (`l` tails their logs). Mocks: hits per route and the
unmatched requests. Shards and splits: each member's share. URL targets: what the last
connection attempt found. Every kind: the circuit breaker's state when there is one. It
refreshes from `status()` every second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from devamb.control.protocol import ServiceStatus

from .. import display
from ..gateway import EngineCallFailed, EngineGateway
from .logs import LogsScreen

REFRESH_EVERY = 1.0
BREAKER_STYLES = {"closed": "green", "open": "bold red", "half-open": "yellow",
                  "half_open": "yellow"}  # fmt: skip


def _table(columns: Iterable[str], rows: Iterable[Iterable[RenderableType]]) -> Table:
    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None, padding=(0, 2))
    listed = [list(row) for row in rows]
    first = max((len(str(row[0])) for row in listed), default=0)
    for index, column in enumerate(columns):
        if index == 0:  # names and addresses are never cut
            table.add_column(column, no_wrap=True, min_width=max(first, len(column)))
        else:
            table.add_column(column)
    for row in listed:
        table.add_row(*row)
    return table


def _state(state: Any) -> Text:
    text = str(state) if state is not None else "unknown"
    return Text(text, style=display.state_style(text))


def _share(value: Any) -> Text:
    return Text(f"{float(value or 0):.0%}", justify="right")


def endpoint_rows(endpoints: list[dict[str, Any]]) -> Table:
    connects = any("reach" in e for e in endpoints)  # a status without it: no column
    rows = []
    for e in endpoints:
        ejected = e.get("ejected")
        ejection = (
            Text(f"ejected ({e.get('ejected_for_s') or '?'}s left)", style="bold red")
            if ejected
            else Text(f"{e.get('ejections', 0)} before", style="dim")
            if e.get("ejections")
            else Text("—", style="dim")
        )
        health = _state(e.get("health"))
        if e.get("health_reason"):
            health.append(f" ({e['health_reason']})", style="dim")
        row = [
            Text(str(e.get("endpoint", e.get("address", "?"))), style="bold"),
            health, ejection, Text(str(e.get("in_flight", 0)), justify="right"),
            Text(str(e.get("requests", 0)), justify="right"),
            Text(str(e.get("failures", 0)), justify="right"), _share(e.get("share")),
        ]  # fmt: skip
        if connects:
            row.insert(3, connect_text(e.get("reach") or {}))
        rows.append(row)
    columns = ["Endpoint", "Health", "Ejection", "In flight", "Requests", "Failures", "Share"]
    if connects:
        columns.insert(3, "Connect")
    return _table(columns, rows)


def connect_text(reach: dict[str, Any]) -> Text:
    """An endpoint's last connection attempt: its state, and why it failed."""
    state = str(reach.get("state", "unknown"))
    if state == "unknown":
        return Text("not tried yet", style="dim")
    text = Text(state, style=display.state_style(state))
    if reach.get("reason"):
        text.append(f" ({reach['reason']})", style="dim")
    return text


def container_rows(containers: list[dict[str, Any]]) -> Table:
    rows = [
        [Text(str(c.get("name", "?")), style="bold"), Text(str(c.get("id", "")), style="dim"),
         _state("ready" if c.get("state") == "running" else c.get("state")),
         Text(str(c.get("address") or "—")), Text(str(c.get("note") or ""), style="dim")]
        for c in containers
    ]  # fmt: skip
    for row, container in zip(rows, containers, strict=True):
        row[2] = Text(str(container.get("state", "?")), style=row[2].style)
    return _table(["Container", "Id", "State", "Address", "Note"], rows)


def route_rows(routes: list[dict[str, Any]]) -> Table:
    rows = [
        [Text(str(r.get("index", "")), style="dim"), Text(str(r.get("name", "?")), style="bold"),
         Text(str(r.get("hits", 0)), justify="right"),
         Text(str(r["left"]) if "left" in r else "—", justify="right")]
        for r in routes
    ]  # fmt: skip
    return _table(["#", "Route", "Hits", "Left"], rows)


def unmatched_rows(unmatched: list[dict[str, Any]]) -> Table:
    rows = [
        [Text(display.clock(u["time"]) if u.get("time") else "", style="dim"),
         Text(f"{u.get('method', '')} {u.get('path', '')}", style="bold yellow"),
         Text(str(u.get("closest") or ""), style="dim")]
        for u in unmatched
    ]  # fmt: skip
    return _table(["Time", "Request", "Closest route"], rows)


def share_rows(members: list[dict[str, Any]], name_key: str) -> Table:
    rows = [
        [Text(str(m.get(name_key, "?")), style="bold"), Text(str(m.get("address", ""))),
         _state(m.get("state")), Text(str(m.get("requests", 0)), justify="right"),
         Text(str(m.get("errors", "")), justify="right"), _share(m.get("share"))]
        for m in members
    ]  # fmt: skip
    return _table(["Member", "Address", "State", "Requests", "Errors", "Share"], rows)


def breaker_text(breaker: dict[str, Any]) -> Text:
    state = str(breaker.get("state", "closed"))
    return Text.assemble(
        (state, BREAKER_STYLES.get(state, "yellow")),
        f"   in flight {breaker.get('in_flight', 0)}",
        f" · rejected {breaker.get('rejected', 0)}",
        f" · recent failures {breaker.get('recent_failures', 0)}",
    )


def reach_text(reach: dict[str, Any]) -> Text:
    """What the last connection attempt to the target's address found, and when."""
    state = str(reach.get("state", "unknown"))
    if state == "unknown":
        return Text(f"{reach.get('address', '')}: not tried yet", style="dim")
    text = Text(f"{reach.get('address', '')}: ")
    text.append(state, style=display.state_style(state))
    if reach.get("reason"):
        text.append(f" ({reach['reason']})")
    if reach.get("since"):
        text.append(f" · since {time.strftime('%H:%M:%S', time.localtime(reach['since']))}",
                    style="dim")
    return text


BASTION_STYLES = {"up": "green", "down": "red", "connecting": "yellow", "idle": "dim"}


def bastion_text(via: str, bastions: list[dict[str, Any]]) -> Text:
    """The SSH bastion a target goes through, and how its connection is (devamb status)."""
    text = Text(via, style="bold")
    bastion = next((b for b in bastions if b.get("name") == via), None)
    if bastion is None:
        return text
    state = str(bastion.get("state", "?"))
    text.append(" · ")
    text.append(state, style=BASTION_STYLES.get(state, ""))
    if bastion.get("reason"):
        text.append(f" ({bastion['reason']})", style="red")
    if bastion.get("rtt_ms") is not None:
        text.append(f" · rtt {bastion['rtt_ms']:.1f} ms", style="dim")
    open_now = int(bastion.get("channels", 0))
    text.append(f" · {open_now} channel{'' if open_now == 1 else 's'} open", style="dim")
    return text


def sections(
    target: dict[str, Any], bastions: list[dict[str, Any]] | None = None
) -> list[tuple[str, RenderableType]]:
    """(title, body) for each part of a target's details the screen shows."""
    details: dict[str, Any] = dict(target.get("details") or {})
    out: list[tuple[str, RenderableType]] = []
    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("Kind", str(target.get("kind", "?")))
    overview.add_row("Address", str(target.get("address", "")))
    overview.add_row("State", _state(target.get("state")))
    overview.add_row("Active", "yes" if target.get("active") else "no")
    if details.get("reason"):
        overview.add_row("Reason", Text(str(details["reason"]), style="red"))
    if details.get("reach"):
        overview.add_row("Connect", reach_text(details["reach"]))
    if details.get("via"):
        overview.add_row("Via", bastion_text(str(details["via"]), bastions or []))
    if "breaker" in target:
        overview.add_row("Breaker", breaker_text(target["breaker"]))
    out.append(("Target", overview))
    shown = {"reason", "reach", "endpoints", "containers", "routes", "unmatched", "shards",
             "members", "via"}
    if target.get("kind") == "docker" or "containers" in details:
        out.append(("Containers (l: logs)", container_rows(details.get("containers") or [])))
    elif details.get("endpoints") and isinstance(details["endpoints"][0], dict):
        out.append(("Endpoints", endpoint_rows(details["endpoints"])))
    if "routes" in details:
        out.append(("Routes", route_rows(details["routes"])))
        unmatched = details.get("unmatched") or []
        count = details.get("unmatched_count", len(unmatched))
        out.append(
            (
                f"Unmatched requests ({count})",
                unmatched_rows(unmatched) if unmatched else Text("none", style="dim"),
            )
        )
    if "shards" in details:
        out.append(("Shards", share_rows(details["shards"], "name")))
    if "members" in details:
        out.append(("Split", share_rows(details["members"], "target")))
    rest = {k: v for k, v in details.items() if k not in shown and v not in (None, [], {})}
    if rest:
        more = Table.grid(padding=(0, 2))
        more.add_column(style="bold")
        more.add_column()
        for key, value in rest.items():
            more.add_row(key, value if isinstance(value, str) else json.dumps(value))
        out.append(("Settings", more))
    return out


class TargetDetail(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("l", "logs", "Logs"),
    ]

    def __init__(self, gateway: EngineGateway, service: ServiceStatus, target: str) -> None:
        super().__init__()
        self.gateway = gateway
        self.service = service
        self.target_name = target
        self.bastions: list[dict[str, Any]] = []  # from the last status (SSH bastions)

    @property
    def target(self) -> dict[str, Any]:
        for target in self.service["targets"]:
            if target["name"] == self.target_name:
                return dict(target)
        return {"name": self.target_name, "kind": "?", "address": "", "state": "unknown",
                "details": {"reason": "this target is gone from the profile"}}  # fmt: skip

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="target-detail"):
            for title, body in sections(self.target, self.bastions):
                section = Static(body, classes="detail-section")
                section.border_title = title
                yield section
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"{self.service['name']} → {self.target_name}"
        self.sub_title = f"listening on {self.service['listen']}"
        self.query_one("#target-detail").focus()
        self.set_interval(REFRESH_EVERY, self.refresh_from_engine)

    @work(exclusive=True, group="target-refresh")
    async def refresh_from_engine(self) -> None:
        try:
            status = await self.gateway.call(lambda engine: engine.status())
        except EngineCallFailed:
            return  # the app reports a lost engine; the next refresh tries again
        fresh = next((s for s in status["services"] if s["name"] == self.service["name"]), None)
        bastions = list(status.get("bastions") or [])
        if fresh is not None and (fresh != self.service or bastions != self.bastions):
            self.service, self.bastions = fresh, bastions
            await self.recompose()
            self.query_one("#target-detail").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "logs":
            return self.target.get("kind") == "docker"
        return True

    def action_logs(self) -> None:
        if self.target.get("kind") == "docker":
            self.app.push_screen(LogsScreen(self.gateway, self.service["name"], self.target_name))
