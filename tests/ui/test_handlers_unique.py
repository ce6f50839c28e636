"""Each Textual message is handled in one place of the app.

How Textual dispatches (textual.message_pump.MessagePump._get_dispatch_methods): a node that
receives a message walks its class's MRO and, for *every* class, runs that class's own handlers
— the method named `_on_<message>`, or else `on_<message>`, in that class's `__dict__`, plus the
methods it decorates with `@on(Message, selector)`. So a subclass (or a class next to a mixin)
that defines `on_faults_changed` again does not replace the other one: both run. A bubbling
message then goes on from the node that got it to its parent, up to the screen and the app, and
each of them runs its handlers too, until one calls `message.stop()`.

The rules, over the classes defined in ui/ (Textual's own classes are left out: Textual names its
internal handlers `_on_*` so that an app's `on_*` runs beside them, by design):

1. Hierarchy. No two ui classes in one MRO handle the same message. Two `@on` handlers with
   different selectors (`#form-add`, `#form-cancel`) are different handlers; a handler with no
   selector meets every handler of its message. Deliberate exceptions: DELIBERATE_HANDLERS.
2. One class. A class does not define both `_on_x` and `on_x` (Textual runs only `_on_x`), nor a
   named handler and an `@on` without selector for the same message (both run).
3. App and the rest. The app is on the way up of every bubbling message, so a bubbling message
   the app handles must not be handled by a ui screen or widget as well, unless that handler
   stops it (then the app never sees it). Messages that do not bubble (Mount, Resize, Show...)
   are delivered to one node only and are exempt.
4. Actions. Textual looks an action up by its name (`action_<name>`): one method wins, so a
   redefinition replaces. A ui class may redefine an action of a base (ui or Textual) only when
   DELIBERATE_ACTIONS says why, so no built-in action (`toggle`, `quit`...) is shadowed by one
   with another meaning by accident.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from textual import on
from textual.app import App
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widget import Widget

import ui
from ui.app import DevambApp
from ui.messages import FaultsChanged, SwitchRequested

# (class name, handler name): a handler of a base that this class runs again on purpose, and why
DELIBERATE_HANDLERS: dict[tuple[str, str], str] = {}
# (class name, action): an action of a base that this class replaces on purpose, and why
DELIBERATE_ACTIONS: dict[tuple[str, str], str] = {
    ("DevambApp", "action_quit"): "stops the engine it owns before the app exits",
    ("TrafficList", "action_page_up"): "moves the cursor a page of rows, not only the view",
    ("TrafficList", "action_page_down"): "moves the cursor a page of rows, not only the view",
}


@dataclass(frozen=True)
class Handler:
    owner: type
    method: str  # the method's name
    message: str  # the handler name Textual derives from the message: `on_faults_changed`
    selectors: str  # "" when it handles every message of its kind
    bubbles: bool | None  # None: the message class is not known (a handler by name)

    def meets(self, other: Handler) -> bool:
        """Would both run for one message?"""
        return self.message == other.message and (
            not self.selectors or not other.selectors or self.selectors == other.selectors
        )

    def __str__(self) -> str:
        where = f" {self.selectors}" if self.selectors else ""
        return f"{self.owner.__name__}.{self.method} ({self.message}{where})"


def is_ours(cls: type) -> bool:
    return cls.__module__ == "ui" or cls.__module__.startswith("ui.")


def ui_classes() -> list[type[MessagePump]]:
    """Every MessagePump subclass defined in a module of ui/."""
    for module in pkgutil.walk_packages(ui.__path__, "ui."):
        importlib.import_module(module.name)
    found: set[type[MessagePump]] = set()
    pending: list[type[MessagePump]] = [MessagePump]
    while pending:
        sub: type[MessagePump]
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if is_ours(sub):
                found.add(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def message_classes() -> dict[str, list[type[Message]]]:
    """Every message class loaded (Textual's events and widgets' messages, ui's), by the
    handler name Textual derives from it."""
    found: dict[str, list[type[Message]]] = {}
    pending: list[type[Message]] = [Message]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        name = getattr(cls, "handler_name", None)  # set for each subclass of Message
        if name is not None:
            found.setdefault(name, []).append(cls)
    return found


def named_handlers(cls: type) -> dict[str, str]:
    """{handler name: method name} for the `_on_x` / `on_x` methods in the class itself."""
    methods = {
        name: value
        for name, value in vars(cls).items()
        if callable(value) and not getattr(value, "_textual_on", None)
    }
    return {
        name.removeprefix("_"): name
        for name in methods
        if name.startswith("on_") or name.startswith("_on_")
    }


def dead_handlers(cls: type) -> list[str]:
    """`on_x` methods that never run because the class also has `_on_x` (Textual runs that)."""
    return [name for name in vars(cls) if name.startswith("on_") and f"_{name}" in vars(cls)]


def handlers_of(cls: type) -> list[Handler]:
    """The handlers defined in this class itself (not inherited) that Textual runs."""
    out = []
    messages = message_classes()
    for handler_name, name in named_handlers(cls).items():
        method = f"_{handler_name}" if f"_{handler_name}" in vars(cls) else name
        kinds = messages.get(handler_name, [])
        bubbles = any(kind.bubble for kind in kinds) if kinds else None
        out.append(Handler(cls, method, handler_name, "", bubbles))
    decorated: dict[type[Message], list] = vars(cls).get("_decorated_handlers") or {}
    for message, entries in decorated.items():
        for method, selectors in entries:
            shown = ", ".join(
                f"{attribute}={','.join(str(s) for s in sets)}"
                for attribute, sets in sorted(selectors.items())
            )
            out.append(Handler(cls, method.__name__, message.handler_name, shown, message.bubble))
    return out


def hierarchy_clashes(
    classes: Iterable[type], ours: Callable[[type], bool] = is_ours
) -> list[str]:
    """Rules 1 and 2."""
    problems: set[str] = set()
    for cls in classes:
        mro = [c for c in cls.__mro__ if ours(c)]
        for index, first in enumerate(mro):
            mine = handlers_of(first)
            for name in dead_handlers(first):
                problems.add(f"{first.__name__}.{name} never runs: the class also has _{name}")
            for a_index, a in enumerate(mine):
                for b in mine[a_index + 1 :]:
                    if a.meets(b) and not (a.selectors and b.selectors):
                        problems.add(f"{a} and {b} both run")
            for base in mro[index + 1 :]:
                for handler in mine:
                    if (first.__name__, handler.method) in DELIBERATE_HANDLERS:
                        continue
                    for other in handlers_of(base):
                        if handler.meets(other):
                            problems.add(f"{handler} and {other} both run for {cls.__name__}")
    return sorted(problems)


def stops(handler: Handler) -> bool:
    """Does the handler's body stop the message (`event.stop()`, `message.stop()`)?"""
    source = textwrap.dedent(inspect.getsource(getattr(handler.owner, handler.method)))
    return ".stop()" in source


def app_and_node_clashes(
    app: type, classes: Iterable[type], ours: Callable[[type], bool] = is_ours
) -> list[str]:
    """Rule 3: bubbling messages the app handles, handled on the way up by a screen or widget."""
    app_handlers = [h for c in app.__mro__ if ours(c) for h in handlers_of(c)]
    by_message = {h.message: h for h in app_handlers}
    problems = []
    for cls in classes:
        if not issubclass(cls, Widget) or issubclass(cls, App):
            continue  # screens are widgets too
        for handler in handlers_of(cls):
            bubbles = handler.bubbles is not False  # a message class not found may bubble
            theirs = by_message.get(handler.message)
            if theirs is not None and bubbles and not stops(handler):
                problems.append(f"{handler} and {theirs} both run when it bubbles up")
    return problems


def action_overrides(classes: Iterable[type]) -> list[str]:
    """Rule 4."""
    problems = []
    for cls in classes:
        for name in vars(cls):
            if not name.startswith("action_") or (cls.__name__, name) in DELIBERATE_ACTIONS:
                continue
            base = next((b for b in cls.__mro__[1:] if name in vars(b)), None)
            if base is not None:
                problems.append(f"{cls.__name__}.{name} replaces {base.__qualname__}.{name}")
    return problems


# -- the rules, over ui/ -----------------------------------------------------------------------


def test_the_classes_are_found() -> None:
    names = {cls.__name__ for cls in ui_classes()}
    assert {"DevambApp", "MainScreen", "FaultsScreen", "ExchangeScreen", "TrafficList"} <= names


def test_no_class_runs_a_handler_its_hierarchy_already_has() -> None:
    assert hierarchy_clashes(ui_classes()) == []


def test_the_app_and_a_screen_never_both_handle_a_bubbling_message() -> None:
    assert app_and_node_clashes(DevambApp, ui_classes()) == []


def test_no_action_is_replaced_by_accident() -> None:
    assert action_overrides(ui_classes()) == []


def test_the_deliberate_lists_are_not_stale() -> None:
    classes = {cls.__name__: cls for cls in ui_classes()}
    for owner, name in [*DELIBERATE_HANDLERS, *DELIBERATE_ACTIONS]:
        assert owner in classes and name in vars(classes[owner]), (owner, name)


# -- the checks see what they should (so a passing run means something) -----------------------


def test_the_checks_find_planted_clashes() -> None:
    everything: Callable[[type], bool] = lambda cls: cls.__module__ == __name__  # noqa: E731

    class Base(Screen):
        def on_faults_changed(self, message: FaultsChanged) -> None: ...

    class Doubled(Base):
        def on_faults_changed(self, message: FaultsChanged) -> None: ...

    class Twice(Screen):
        def _on_faults_changed(self, message: FaultsChanged) -> None: ...

        def on_faults_changed(self, message: FaultsChanged) -> None: ...

        @on(FaultsChanged)
        def _changed(self, message: FaultsChanged) -> None: ...

    class Shadowing(Screen):
        async def action_toggle(self, attribute_name: str) -> None: ...

    class PlantedApp(App[None]):
        def on_mount(self) -> None: ...

        def on_switch_requested(self, message: SwitchRequested) -> None: ...

    class Passing(Screen):  # handles it and lets it bubble on to the app
        def on_mount(self) -> None: ...  # Mount does not bubble: fine

        def on_switch_requested(self, message: SwitchRequested) -> None: ...

    class Stopping(Screen):  # handles it instead of the app: fine
        def on_switch_requested(self, message: SwitchRequested) -> None:
            message.stop()

    assert hierarchy_clashes([Doubled], everything) == [
        "Doubled.on_faults_changed (on_faults_changed) and Base.on_faults_changed "
        "(on_faults_changed) both run for Doubled"
    ]
    assert hierarchy_clashes([Twice], everything) == [
        "Twice._on_faults_changed (on_faults_changed) and Twice._changed (on_faults_changed) "
        "both run",
        "Twice.on_faults_changed never runs: the class also has _on_faults_changed",
    ]
    assert app_and_node_clashes(PlantedApp, [PlantedApp, Passing, Stopping], everything) == [
        "Passing.on_switch_requested (on_switch_requested) and PlantedApp.on_switch_requested "
        "(on_switch_requested) both run when it bubbles up"
    ]
    assert action_overrides([Shadowing]) == [
        "Shadowing.action_toggle replaces DOMNode.action_toggle"
    ]


async def test_textual_runs_every_classs_handler() -> None:
    """What rule 1 rests on, checked against the installed Textual."""
    ran: list[str] = []

    class Base(App[None]):
        def on_faults_changed(self, message: FaultsChanged) -> None:
            ran.append("base")

    class Sub(Base):
        def on_faults_changed(self, message: FaultsChanged) -> None:
            ran.append("sub")

    app = Sub()
    async with app.run_test() as pilot:
        app.post_message(FaultsChanged("payments", []))
        await pilot.pause()
    assert ran == ["sub", "base"]
