"""The statements of a simple Query's text, cut as the server cuts them."""

from __future__ import annotations

import pytest

from devamb.wire.pg_lex import statements


def cut(sql: str, backslash_quotes: bool = False) -> list[str]:
    raw = sql.encode()
    return [raw[a:b].decode() for a, b in statements(raw, backslash_quotes)]


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT 1", ["SELECT 1"]),
    ("SELECT 1;", ["SELECT 1"]),  # a trailing semicolon
    ("BEGIN; INSERT INTO t VALUES (1); COMMIT", ["BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"]),
    ("", []),
    (" ; ;;\n;", []),  # only empty statements
    ("SELECT 1;; ;SELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
    ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),  # a doubled quote
    ("SELECT E'it\\'s;'; SELECT 2", ["SELECT E'it\\'s;'", "SELECT 2"]),  # E'' escapes
    ("SELECT e'\\\\'; SELECT 2", ["SELECT e'\\\\'", "SELECT 2"]),
    ("SELECT 'a\\'; SELECT 2", ["SELECT 'a\\'", "SELECT 2"]),  # no escape in ''
    ("SELECT name'x;'; SELECT 2", ["SELECT name'x;'", "SELECT 2"]),  # not an E''
    ('SELECT "a;""b" FROM t; SELECT 2', ['SELECT "a;""b" FROM t', "SELECT 2"]),
    ("SELECT $$a; 'b$$; SELECT 2", ["SELECT $$a; 'b$$", "SELECT 2"]),
    ("SELECT $x$ ; $$ ; $x$; SELECT 2", ["SELECT $x$ ; $$ ; $x$", "SELECT 2"]),
    ("SELECT $1; SELECT foo$bar$; SELECT 2", ["SELECT $1", "SELECT foo$bar$", "SELECT 2"]),
    ("SELECT 1 -- no; end\n; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("/* a; /* nested; */ still; */ SELECT 1; /* only */ ;", ["SELECT 1"]),
    ("SELECT 1 /* c */ + 2 -- tail\n", ["SELECT 1 /* c */ + 2"]),
    ("SELECT (1; 2); SELECT 3", ["SELECT (1; 2)", "SELECT 3"]),  # as psql: no cut in ( )
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; "
     "SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
     ["CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; "
      "SELECT CASE WHEN true THEN 2 END; END", "SELECT 3"]),
    ("create or replace procedure p() begin atomic insert into t values (1); end; call p()",
     ["create or replace procedure p() begin atomic insert into t values (1); end",
      "call p()"]),
    ("BEGIN; SELECT CASE WHEN true THEN 1 END; END", ["BEGIN", "SELECT CASE WHEN true THEN 1 END",
                                                     "END"]),
    ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
    ("SELECT $$ open; SELECT 2", ["SELECT $$ open; SELECT 2"]),
    ("SELECT 'é;ü'; SELECT 'ß'", ["SELECT 'é;ü'", "SELECT 'ß'"]),
])
def test_statements(sql: str, expected: list[str]) -> None:
    assert cut(sql) == expected


def test_backslash_quotes_when_standard_conforming_strings_is_off() -> None:
    assert cut("SELECT 'a\\'; b'; SELECT 2", backslash_quotes=True) == [
        "SELECT 'a\\'; b'", "SELECT 2"]
