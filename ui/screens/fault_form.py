"""FaultForm: add a fault to a service — a kind, its settings, probability and scope.

What is typed is checked as it is typed by the same rules the engine applies
(`parse_fault_json`, a pure function); on submit the engine's own `add_fault` decides, and its
error is shown inline under the form. Dismisses with the engine's record of the new fault.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from devamb.control.protocol import ControlError

from ..gateway import EngineCallFailed, EngineGateway

# kind -> (setting, placeholder) for each setting the form offers (docs/faults.md); placeholders
# read as hints ("required, e.g.", "default"), never as values already filled in
KIND_FIELDS: dict[str, list[tuple[str, str]]] = {
    "latency": [("delay", "required, e.g. 300ms"), ("jitter", "default 0, e.g. 50ms"),
                ("distribution", "default uniform | normal | lognormal"),
                ("on", "default request | response")],
    "abort": [("status", "default 503"), ("body", "default empty")],
    "reset": [("after_bytes", "default: before the upstream, e.g. 1KiB")],
    "timeout": [("timeout", "default: until the fault is off, e.g. 5s")],
    "bandwidth": [("rate", "required, bytes/s, e.g. 256KiB")],
    "slicer": [("size", "default 64 bytes"), ("delay", "default 10ms")],
    "limit_data": [("bytes", "required, e.g. 1KiB")],
    "slow_close": [("delay", "required, e.g. 2s")],
    "malformed": [("mode", "default bad-chunk | garbage | empty | short-body")],
    "down": [],
}  # fmt: skip
# settings only HTTP/2 and gRPC services have (shown on those)
H2_FIELDS: dict[str, list[tuple[str, str]]] = {
    "latency": [("per_message", "default false; true: delay each gRPC message")],
    "abort": [("grpc_status", "default: from status, e.g. UNAVAILABLE or 14"),
              ("grpc_message", "default: none, e.g. try again later")],
    "reset": [("code", "default INTERNAL_ERROR, e.g. CANCEL"),
              ("scope", "default stream | connection (GOAWAY)")],
}  # fmt: skip
H2_PROTOCOLS = ("http2", "grpc")
REQUEST_PROTOCOLS = ("http", *H2_PROTOCOLS)  # services whose calls have a path and a method
COMMON_FIELDS = [("name", "default: the kind"), ("probability", "default 1 (0..1)"),
                 ("times", "default: always; N: fire N times, then off"),
                 ("path", "default: all, e.g. /charge* or /pkg.Svc/Get"),
                 ("method", "default: all, e.g. POST, PUT")]  # fmt: skip
_MISSING = re.compile(r"^missing required key '(\w+)'")
_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE]-?\d+)$")


def typed(text: str) -> Any:
    """What a typed value means: numbers become numbers, true/false booleans, everything else
    stays text."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def kind_fields(kind: str, protocol: str) -> list[tuple[str, str]]:
    """The settings the form offers for `kind` on a `protocol` service."""
    extra = H2_FIELDS.get(kind, []) if protocol in H2_PROTOCOLS else []
    return [*KIND_FIELDS.get(kind, []), *extra]


def fault_data(kind: str, values: dict[str, str], protocol: str = "http") -> dict[str, Any]:
    """The add_fault body for a kind and the form's non-empty fields."""
    data: dict[str, Any] = {"kind": kind}
    for key, _ in kind_fields(kind, protocol):
        if values.get(key, "").strip():
            data[key] = typed(values[key])
    if values.get("name", "").strip():
        data["name"] = values["name"].strip()
    for key in ("probability", "times"):
        if values.get(key, "").strip():
            data[key] = typed(values[key])
    match: dict[str, Any] = {}
    if values.get("path", "").strip():
        match["path"] = values["path"].strip()
    if values.get("method", "").strip():
        match["method"] = [m.strip().upper() for m in values["method"].split(",") if m.strip()]
    if match:
        data["match"] = match
    return data


def check(data: dict[str, Any], protocol: str) -> str | None:
    """The engine's own verdict on a fault body, without sending it; None when it is valid."""
    from devamb.faults.spec import parse_fault_json

    body = {k: v for k, v in data.items() if k != "name"}
    try:
        parse_fault_json(str(data.get("name") or data.get("kind")), body, protocol)
    except ControlError as error:
        return error.message
    except Exception as error:  # a checker bug must not break typing
        return f"{type(error).__name__}: {error}"
    return None


class FaultForm(ModalScreen["dict[str, Any] | None"]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Add"),
    ]

    def __init__(self, gateway: EngineGateway, service: str, protocol: str = "http") -> None:
        super().__init__()
        self.gateway = gateway
        self.service = service
        self.protocol = protocol
        self.submitted = False  # after a first submit, a missing setting is an error, not a hint

    def compose(self) -> ComposeResult:
        with Vertical(id="fault-form"):
            yield Label(Text.assemble("Add a fault to ", (self.service, "bold")), id="form-title")
            with Horizontal(classes="form-row"):
                yield Label("kind", classes="form-label")
                yield Select[str](
                    [(kind, kind) for kind in KIND_FIELDS],
                    value="latency",
                    allow_blank=False,
                    id="form-kind",
                    compact=True,
                )
            for kind in KIND_FIELDS:
                for key, hint in kind_fields(kind, self.protocol):
                    with Horizontal(classes=f"form-row kind-field kind-{kind}"):
                        yield Label(key, classes="form-label")
                        yield Input(placeholder=hint, id=f"field-{kind}-{key}", compact=True)
            for key, hint in COMMON_FIELDS:
                if self.protocol not in REQUEST_PROTOCOLS and key in ("path", "method"):
                    continue
                with Horizontal(classes="form-row"):
                    yield Label(key, classes="form-label")
                    yield Input(placeholder=hint, id=f"field-{key}", compact=True)
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Add", variant="primary", id="form-add", compact=True)
                yield Button("Cancel", id="form-cancel", compact=True)
            yield Label("Enter or ctrl+s add · Esc cancel", id="form-help")

    def on_mount(self) -> None:
        self._show_kind("latency")
        self.query_one("#form-kind").focus()

    @property
    def kind(self) -> str:
        return str(self.query_one("#form-kind", Select).value)

    def values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for field in self.query(Input):
            field_id = field.id or ""
            prefix = f"field-{self.kind}-"
            if field_id.startswith(prefix):
                values[field_id[len(prefix) :]] = field.value
            elif field_id.startswith("field-") and field_id.count("-") == 1:
                values[field_id[len("field-") :]] = field.value
        return values

    def data(self) -> dict[str, Any]:
        return fault_data(self.kind, self.values(), self.protocol)

    def _show_kind(self, kind: str) -> None:
        for row in self.query(".kind-field"):
            row.display = row.has_class(f"kind-{kind}")
        self._validate()

    def _validate(self) -> str | None:
        problem = check(self.data(), self.protocol)
        missing = _MISSING.match(problem) if problem else None
        if missing and not self.submitted:  # not yet typed, not an error: say what is needed
            key = missing.group(1)
            hint = Text.assemble(("Fill in ", "dim"), (key, "bold"), (" (required)", "dim"))
            self.query_one("#form-error", Static).update(hint)
        else:
            self.show_error(problem)
        return problem

    def show_error(self, problem: str | None) -> None:
        error = self.query_one("#form-error", Static)
        error.update(Text(problem, style="bold red") if problem else Text("✓ valid", style="green"))

    @on(Select.Changed, "#form-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._show_kind(str(event.value))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self._validate()

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        self.action_submit()

    @on(Button.Pressed, "#form-add")
    def _add_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#form-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        self.submitted = True
        self.run_worker(self._submit(), exclusive=True, group="fault-add")

    async def _submit(self) -> None:
        data = self.data()
        try:
            fault = await self.gateway.call(lambda engine: engine.add_fault(self.service, data))
        except EngineCallFailed as failure:
            self.show_error(failure.text)
            return
        self.dismiss(fault)
