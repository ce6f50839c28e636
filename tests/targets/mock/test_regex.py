"""User regexes run on RE2: linear time, Python spellings translated, the rest refused."""

from __future__ import annotations

import pytest

from devamb.profile.regex import RegexError, compile_regex, fullmatch, groups, search
from devamb.targets.mock.matching import compile_path


def test_a_backtracking_pattern_answers_at_once() -> None:
    rex = compile_regex("(a+)+$")
    assert not fullmatch(rex, "a" * 100_000 + "!")  # Python's re would run for ages
    assert fullmatch(rex, "aaaa")


def test_a_path_pattern_with_many_stars_does_not_backtrack() -> None:
    pattern = compile_path("/**/**/**/**/**/x")
    assert pattern.match("/" + "a/" * 30_000) is None
    assert compile_path("/u/{id}").match("/u/é") == {"id": "é"}


@pytest.mark.parametrize(
    ("pattern", "offset", "words"),
    [
        ("(a)\\1", 3, "backreference"),
        ("(?P<x>a)(?P=x)", 8, "backreference"),
        ("a(?=b)", 1, "lookahead"),
        ("(?!b)", 0, "negative lookahead"),
        ("x(?<=b)", 1, "lookbehind"),
        ("(?<!b)", 0, "negative lookbehind"),
        ("(?>a)", 0, "atomic group"),
        ("(", 0, "missing )"),
        ("\\N{NO SUCH NAME}", 0, "unknown character name"),
    ],
)
def test_unsupported_or_bad_patterns_say_what_and_where(
    pattern: str, offset: int, words: str
) -> None:
    with pytest.raises(RegexError) as caught:
        compile_regex(pattern)
    assert words in caught.value.message and caught.value.offset == offset
    assert str(caught.value).endswith(f"(at character {offset + 1} of the pattern)")


def test_python_spellings_are_translated_and_classes_left_alone() -> None:
    assert fullmatch(compile_regex("ab\\Z"), "ab")
    assert search(compile_regex("caf\\N{LATIN SMALL LETTER E WITH ACUTE}"), "un café")
    assert fullmatch(compile_regex("[(?=]+"), "(?=")  # inside a class, not a lookahead


def test_texts_with_lone_surrogates_never_raise() -> None:
    assert not fullmatch(compile_regex("a"), "\udcff")
    assert groups(compile_regex("(?P<p>x).*"), "x\udcff") is None  # '.' needs valid UTF-8
    assert groups(compile_regex("(?P<p>x).*"), "xy") == {"p": "x"}
