"""Templates, table-driven: what each expression renders for a request, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from devamb.targets.mock.template import Expr, TemplateError, compile_template
from tests.targets.mock.conftest import view

REQUEST = view(
    "POST",
    "/users/7?page=3&tag=a&tag=b&empty=",
    {"X-User": "ada", "Accept": "application/json"},
    {"user": {"name": "Ada", "age": 36, "admin": True}, "items": [{"id": 5}], "none": None},
)
REQUEST.params = {"id": "7"}

RENDER = [
    ("plain text", "plain text"),
    ("user {{path.id}}", "user 7"),
    ("{{ path.id }}", "7"),
    ("page {{query.page}} of {{query.pages|10}}", "page 3 of 10"),
    ("{{query.missing}}", ""),
    ("[{{query.missing|}}]", "[]"),
    ("{{query.empty|x}}", ""),  # present but empty is still present
    ("{{query.tag}}", "a"),  # a repeated parameter: its first value
    ("{{headers.x-user}} {{headers.X-USER}}", "ada ada"),
    ("{{json.user.name}} is {{json.user.age}}", "Ada is 36"),
    ("{{json.user.admin}}", "true"),
    ("{{json.items.0.id}}", "5"),
    ("{{json.items}}", '[{"id": 5}]'),
    ("{{json.none|null-ish}}", "null-ish"),
    ("{{json.nope|fallback with spaces}}", "fallback with spaces"),
    ("{{method}} {{path.id}}", "POST 7"),
    ("a }} b {", "a }} b {"),
    ("{{query.page|a|b}}", "3"),
]


@pytest.mark.parametrize(("text", "expected"), RENDER)
def test_render(text: str, expected: str) -> None:
    assert compile_template(text).render(REQUEST) == expected


TYPED: list[tuple[str, Any]] = [
    ("{{json.user.age}}", 36),
    ("{{json.user}}", {"name": "Ada", "age": 36, "admin": True}),
    ("{{json.user.admin}}", True),
    ("{{json.missing|0}}", "0"),  # a default is text
    ("{{query.page}}", "3"),  # only JSON values keep their type
    ("n={{json.user.age}}", "n=36"),
]


@pytest.mark.parametrize(("text", "expected"), TYPED)
def test_a_lone_json_expression_keeps_its_type(text: str, expected: Any) -> None:
    assert compile_template(text).render_value(REQUEST) == expected


def test_the_request_without_a_json_body_renders_defaults() -> None:
    assert compile_template("{{json.a|none}}").render(view("GET", "/")) == "none"


REFUSED = [
    ("{{cookie.x}}", "unknown template value 'cookie.x' at offset 1"),
    ("{{query}}", "'query' needs a name after 'query.' (offset 1)"),
    ("x {{query.a b}}", "'query.a b' needs a name after 'query.' (offset 3)"),
    ("{{method.x}}", "'method' takes no name (offset 1)"),
    ("ok {{path.id", "unclosed '{{' at offset 4"),
    ("{{__import__('os')}}", "unknown template value \"__import__('os')\""),
    ("{{json.a.__class__}}", None),  # a lookup only: never an attribute
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_bad_templates_are_refused(text: str, message: str | None) -> None:
    if message is None:
        assert compile_template(text).render(REQUEST) == ""
        return
    with pytest.raises(TemplateError) as caught:
        compile_template(text)
    assert str(caught.value).startswith(message)


def test_expressions_print_as_written() -> None:
    template = compile_template("a {{ query.page | 1 }} {{path.id}}")
    assert template.expressions == (Expr("query", "page", "1"), Expr("path", "id"))
    assert [str(e) for e in template.expressions] == ["{{query.page|1}}", "{{path.id}}"]
