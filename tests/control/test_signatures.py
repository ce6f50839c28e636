"""The control surface is written once: the route table, the in-process Engine, the socket
client and the UI tests' fake all match the EngineControl Protocol, method by method."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from devamb.control.client import ControlClient
from devamb.control.protocol import EngineControl
from devamb.control.routes import LOCAL, TABLE, Route, Routes
from devamb.engine.core import Engine
from tests.ui.fake_control import FakeControl

PROTOCOL: dict[str, Callable[..., Any]] = {
    name: value
    for name, value in vars(EngineControl).items()
    if inspect.isfunction(value) and not name.startswith("_")
}
ROUTED = sorted(set(PROTOCOL) - LOCAL)
IMPLEMENTATIONS = [Engine, ControlClient, FakeControl]


def _shape(function: Callable[..., Any]) -> tuple[object, ...]:
    """What must agree: each parameter's name, kind, default and annotation, and the return."""
    signature = inspect.signature(function)
    parameters = tuple(
        (p.name, p.kind, p.default, str(p.annotation)) for p in signature.parameters.values()
    )
    return parameters, str(signature.return_annotation)


def _route(name: str) -> Route[Any]:
    [route] = [r for r in TABLE if r.name == name]
    return route


def test_the_protocol_is_what_this_test_thinks() -> None:
    assert {"status", "switch", "events", "shutdown", "close", "add_fault"} <= set(PROTOCOL)
    assert LOCAL.issubset(PROTOCOL)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_implementations_have_the_protocols_signature(implementation: type, name: str) -> None:
    declared = PROTOCOL[name]
    method = getattr(implementation, name, None)
    assert method is not None, f"{implementation.__name__} has no {name}"
    assert _shape(method) == _shape(declared), f"{implementation.__name__}.{name}"
    if inspect.iscoroutinefunction(declared):
        assert inspect.iscoroutinefunction(method), f"{implementation.__name__}.{name} is async"
    else:  # an AsyncIterator: an async generator, or a plain function that returns one
        assert not inspect.iscoroutinefunction(method), f"{implementation.__name__}.{name}"


def test_every_route_is_a_protocol_method_and_every_method_a_route() -> None:
    names = [route.name for route in TABLE]
    assert len(names) == len(set(names)), "a method carried by two routes"
    assert sorted(names) == ROUTED
    places = [(route.method, route.path) for route in TABLE]
    assert len(places) == len(set(places)), "two routes on one method and path"
    for attribute, value in vars(Routes).items():
        if isinstance(value, Route):
            assert attribute == value.name, f"Routes.{attribute} carries {value.name}"


def _base(annotation: str) -> str:
    """The annotation's outer type: "list[str] | None" -> "list"."""
    return annotation.split(" | ")[0].split("[")[0]


@pytest.mark.parametrize("name", ROUTED)
def test_route_arguments_are_the_methods_parameters(name: str) -> None:
    route = _route(name)
    parameters = [
        p for p in inspect.signature(PROTOCOL[name]).parameters.values() if p.name != "self"
    ]
    assert [a.name for a in route.args] == [p.name for p in parameters]
    for arg, parameter in zip(route.args, parameters, strict=True):
        required = parameter.default is inspect.Parameter.empty
        assert arg.required == required, f"{name}({arg.name}): required is {required}"
        assert arg.type.__name__ == _base(str(parameter.annotation)), f"{name}({arg.name})"
        if arg.where == "path":
            assert "{" + arg.key + "}" in route.path and arg.required
    assert (route.kind == "stream") == (not inspect.iscoroutinefunction(PROTOCOL[name]))
    assert (route.kind == "text") == (name == "metrics")
