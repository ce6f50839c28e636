"""The postgres follower on its own, fed bytes as the relay feeds it: answers devamb injects wait
behind the server's replies to what was forwarded before them (pipelined queries)."""

from __future__ import annotations

from devamb.inspect.exchange import Exchange
from devamb.wire import pg_codec as pg
from devamb.wire.follower import FORWARD, Answer, Decide, Exchanges, FollowerOptions, ToClient
from devamb.wire.postgres import PostgresFollower


class Sink(Exchanges):
    def __init__(self) -> None:
        self.conn = Exchange(1, "db", "a", "postgres", "127.0.0.1")
        self.done: list[Exchange] = []
        self.ids = 1

    def begin(self) -> Exchange:
        self.ids += 1
        return Exchange(self.ids, "db", "a", "postgres", "127.0.0.1")

    def finish(self, exchange: Exchange) -> None:
        self.done.append(exchange)

    def connection(self) -> Exchange:
        return self.conn


class Params:
    sqlstate = "40001"
    message = "conflict"


def query(sql: str) -> bytes:
    return pg.message(b"Q", sql.encode() + b"\0")


def startup() -> bytes:
    body = (196608).to_bytes(4) + b"user\0app\0\0"
    return (len(body) + 4).to_bytes(4) + body


def reply(tag: str, status: str = "I") -> bytes:
    return pg.message(b"C", tag.encode() + b"\0") + pg.ready_for_query(status)


def test_behind_an_unanswered_query_the_server_raises_the_injected_error() -> None:
    """The server's state when it reaches the statement is not known (the first could be
    BEGIN): the statement is replaced by one the server fails on, never answered by devamb."""
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    assert follower.client_data(startup()) is None
    assert follower.server_data(pg.message(b"R", (0).to_bytes(4)) + pg.ready_for_query("I")) \
        is None
    follower.gating = True
    items = follower.client_data(query("BEGIN") + query("SELECT 2"))
    assert items == [Decide(items[0].command)] and items[0].command.fields == {"sql": "BEGIN"}
    follower.resolve(FORWARD)
    items = follower.client_data(b"")
    assert items is not None and items[0] == query("BEGIN") and isinstance(items[1], Decide)
    follower.resolve(Answer(Params(), "f"), ["f"])
    assert follower.client_data(b"") == [pg.raise_query("40001", "conflict")]
    server = (reply("BEGIN", "T") + pg.error_response("40001", "conflict")
              + pg.ready_for_query("E"))
    assert follower.server_data(server) is None  # the server's answers, as it sent them
    injected = [e for e in sink.done if e.faults == ["f"]]
    assert injected and injected[0].error == "40001 conflict (fault f)"
    assert injected[0].notes["sql"]["transaction"] == "failed"


PARSE2 = pg.message(b"P", b"\0INSERT INTO t2 VALUES ($1)\0\0\0")
BIND = pg.message(b"B", b"\0\0\0\0\0\x01\0\0\0\x011\0\0")
EXECUTE = pg.message(b"E", b"\0\0\0\0\0")
SYNC = pg.message(b"S", b"")
PARSED, BOUND = pg.message(b"1", b""), pg.message(b"2", b"")


def pipelined(first_chunk: int) -> tuple[Sink, bytes]:
    """INSERT INTO t1, then INSERT INTO t2 (faulted) in one extended unit; the server's
    answer fed in two chunks cut at `first_chunk`: what the client gets."""
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("I"))
    follower.gating = True
    parse1 = pg.message(b"P", b"\0INSERT INTO t1 VALUES ($1)\0\0\0")
    items = follower.client_data(parse1 + BIND + EXECUTE + PARSE2 + BIND + EXECUTE + SYNC)
    assert items is not None and isinstance(items[0], Decide)
    assert items[0].command.fields == {"sql": "INSERT INTO t1 VALUES ($1)"}
    follower.resolve(FORWARD)
    items = follower.client_data(b"")
    assert items is not None and items[0] == parse1 and items[1:3] == [BIND, EXECUTE]
    assert isinstance(items[3], Decide)  # the 2nd statement of the batch is decided on too
    assert items[3].command.fields == {"sql": "INSERT INTO t2 VALUES ($1)"}
    follower.resolve(Answer(Params(), "f"), ["f"])
    # raised by the server where the statement stood; the rest of the unit up to its Sync
    # is dropped (the server would skip it) and the Sync goes on
    assert follower.client_data(b"") == [pg.raise_extended("40001", "conflict"), SYNC]
    server = (PARSED + BOUND + pg.message(b"C", b"INSERT 0 1\0") + PARSED + BOUND
              + pg.error_response("40001", "conflict") + pg.ready_for_query("I"))
    out = b""
    for chunk in (server[:first_chunk], server[first_chunk:]):
        pieces = follower.server_data(chunk)
        out += chunk if pieces is None else b"".join(pieces)
    assert follower.safe_point()
    return sink, out


def test_a_fault_on_a_later_statement_of_a_pipeline_batch_is_raised_in_its_place() -> None:
    want = (PARSED + BOUND + pg.message(b"C", b"INSERT 0 1\0")
            + pg.error_response("40001", "conflict") + pg.ready_for_query("I"))
    for cut in range(1, 40):  # wherever the server's answer is cut into chunks
        sink, out = pipelined(cut)
        assert out == want, cut  # the server's Parse/BindComplete to the DO are dropped
    (done,) = [e for e in sink.done if e.faults == ["f"]]
    assert done.error == "40001 conflict (fault f)" and done.path == "INSERT INTO t2 VALUES ($1)"


def test_an_extended_batch_is_answered_through_its_sync() -> None:
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("I"))
    follower.gating = True
    parse = pg.message(b"P", b"\0INSERT INTO t VALUES ($1)\0\0\0")
    bind = pg.message(b"B", b"\0\0\0\0\0\x01\0\0\0\x011\0\0")
    execute = pg.message(b"E", b"\0\0\0\0\0")
    sync = pg.message(b"S", b"")
    items = follower.client_data(parse + bind + execute)
    assert items is not None and isinstance(items[0], Decide)
    follower.resolve(Answer(Params(), "f"), ["f"])
    answered = follower.client_data(b"")
    assert answered == [ToClient(pg.error_response("40001", "conflict"))]
    assert follower.client_data(sync) == [ToClient(pg.ready_for_query("I"))]
    assert follower.client_data(query("SELECT 1")) is not None  # in sync: the next one decides


def test_in_a_transaction_the_server_raises_the_injected_error() -> None:
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("T"))
    follower.gating = True
    parse = pg.message(b"P", b"\0INSERT INTO t VALUES ($1)\0\0\0")
    bind = pg.message(b"B", b"\0\0\0\0\0\x01\0\0\0\x011\0\0")
    execute = pg.message(b"E", b"\0\0\0\0\0")
    sync = pg.message(b"S", b"")
    items = follower.client_data(parse + bind + execute + sync)
    assert items is not None and isinstance(items[0], Decide)
    follower.resolve(Answer(Params(), "f"), ["f"])
    # the batch up to its Sync is replaced by a Query the server fails on: no answer of devamb's
    assert follower.client_data(b"") == [pg.raise_query("40001", "conflict")]
    server = pg.error_response("40001", "conflict") + pg.ready_for_query("E")
    assert follower.server_data(server) is None  # passed on as the server sent it
    assert follower.safe_point() is False  # in a failed transaction
    (done,) = [e for e in sink.done if e.faults == ["f"]]
    assert done.error == "40001 conflict (fault f)" and done.path == "INSERT INTO t VALUES ($1)"
    assert done.notes["sql"]["error"]["injected"] and done.notes["sql"]["transaction"] == "failed"
    follower.client_data(query("ROLLBACK"))  # the next statement is followed as usual
    follower.resolve(FORWARD)
    assert follower.client_data(b"") == [query("ROLLBACK")]
    follower.server_data(reply("ROLLBACK"))
    assert follower.safe_point() and sink.done[-1].path == "ROLLBACK"


def test_raise_query_escapes_the_message() -> None:
    sql = pg.raise_query("40001", "it's $devamb$ \\ here")[5:-1].decode()
    assert "E'it''s \\x24devamb\\x24 \\\\ here'" in sql and sql.count("$devamb$") == 2


def test_chunks_pass_unchanged_unless_the_follower_may_change_them() -> None:
    """Without command faults the relay passes each chunk on before the follower reads it;
    while the gate holds a statement, or the server's answer may be cut, it does not."""
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    assert follower.passes_unchanged(True) and follower.passes_unchanged(False)
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("I"))
    follower.client_data(query("SELECT 1"))
    assert follower.passes_unchanged(False)
    follower.server_data(pg.message(b"D", b"\0\1\0\0\0\x011") + reply("SELECT 1"))
    assert sink.done[-1].notes["sql"]["rows"] == 1 and sink.done[-1].notes["sql"]["tag"] \
        == "SELECT 1"
    follower.gating = True  # a command fault is armed: each statement is decided on
    assert not follower.passes_unchanged(True)
    parse1 = pg.message(b"P", b"\0INSERT INTO t1 VALUES ($1)\0\0\0")
    follower.client_data(parse1 + BIND + EXECUTE + PARSE2 + BIND + EXECUTE + SYNC)
    follower.resolve(FORWARD)
    follower.client_data(b"")
    follower.resolve(Answer(Params(), "f"), ["f"])
    follower.client_data(b"")
    assert not follower.passes_unchanged(False)  # the server's answers to the DO are cut
    follower.server_data(PARSED + BOUND + pg.message(b"C", b"INSERT 0 1\0") + PARSED + BOUND
                         + pg.error_response("40001", "conflict") + pg.ready_for_query("I"))
    follower.gating = False
    assert follower.passes_unchanged(True) and follower.passes_unchanged(False)


def test_rows_are_counted_wherever_the_server_chunks_its_answer() -> None:
    row = pg.message(b"D", b"\0\1\0\0\0\x011")
    server = (pg.message(b"T", b"\0\1a\0" + b"\0" * 18) + row * 5 + reply("SELECT 5")
              + row * 2 + reply("SELECT 2"))
    for cut in range(1, len(server)):
        sink = Sink()
        follower = PostgresFollower(sink, FollowerOptions())
        follower.client_data(startup())
        follower.server_data(pg.ready_for_query("I"))
        follower.client_data(query("SELECT a FROM t") + query("SELECT b FROM t"))
        for chunk in (server[:cut], server[cut:]):
            assert follower.server_data(chunk) is None
        first, second = (e.notes["sql"] for e in sink.done)
        assert (first["rows"], first["tag"], first["columns"]) == (5, "SELECT 5", 1), cut
        assert (second["rows"], second["tag"]) == (2, "SELECT 2"), cut


def followed(client: list[bytes], server: list[bytes]) -> tuple[PostgresFollower, list[dict]]:
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("I"))
    for chunk in client:
        assert follower.client_data(chunk) is None
    for chunk in server:
        assert follower.server_data(chunk) is None
    notes = [e.notes["sql"] for e in sink.done]
    for note in notes:
        note.pop("connection")
    return follower, notes


def test_a_whole_query_or_answer_in_one_chunk_is_read_as_byte_by_byte() -> None:
    """A chunk that is one whole Query, or the whole answer to the waiting one, is read at
    once (the common case); the record is the one the splitter's message-by-message reading
    makes."""
    row = pg.message(b"D", b"\0\1\0\0\0\x011")
    described = pg.message(b"T", b"\0\2a\0" + b"\0" * 18 + b"b\0" + b"\0" * 18)
    answers = [
        described + row * 3 + reply("SELECT 3"),
        reply("INSERT 0 1", "T"),
        reply("BEGIN", "T") + described + reply("SELECT 0", "T") + reply("COMMIT"),
        described + row + pg.error_response("22012", "division by zero")
        + pg.ready_for_query("I"),
        pg.message(b"N", b"SNOTICE\0Mhello\0\0") + reply("DO"),
        pg.message(b"I", b"") + pg.ready_for_query("I"),
        pg.message(b"S", b"TimeZone\0UTC\0") + reply("SET"),
    ]
    for answer in answers:
        sql = query("SELECT a, b FROM t; SELECT 1")
        whole, at_once = followed([sql], [answer])
        _, by_byte = followed([sql[i:i + 1] for i in range(len(sql))],
                              [answer[i:i + 1] for i in range(len(answer))])
        assert at_once == by_byte and len(at_once) == 1, answer
        assert whole.opaque is None and not whole.waiting
    _, (note,) = followed([query("SELECT 1")], [answers[0]])
    assert (note["rows"], note["columns"], note["tag"], note["transaction"]) == (
        3, 2, "SELECT 3", "idle")


def test_a_malformed_length_in_a_whole_answer_stops_following() -> None:
    bad = pg.message(b"C", b"SELECT 1\0")[:1] + (2).to_bytes(4) + pg.ready_for_query("I")
    follower, _ = followed([query("SELECT 1")], [bad])
    assert follower.opaque is not None and "below 4" in follower.opaque


def test_a_fault_on_a_later_statement_rewrites_that_statement_only() -> None:
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("I"))
    follower.gating = True
    text = "BEGIN;\n INSERT INTO t VALUES ('a;b') ; /* c; */ UPDATE t SET x = $$;$$;COMMIT;"
    items = follower.client_data(query(text))
    assert items is not None and items[0].command.fields == {"sql": "BEGIN"}
    follower.resolve(FORWARD)
    items = follower.client_data(b"")
    assert items is not None and items[0].command.fields == {"sql": "INSERT INTO t VALUES ('a;b')"}
    follower.resolve(FORWARD)
    items = follower.client_data(b"")
    assert items is not None and items[0].command.fields == {"sql": "UPDATE t SET x = $$;$$"}
    follower.resolve(Answer(Params(), "f"), ["f"])
    raised = pg.raise_sql("40001", "conflict").decode()
    assert follower.client_data(b"") == [query(
        f"BEGIN;\n INSERT INTO t VALUES ('a;b') ; /* c; */ {raised};COMMIT;")]
    assert follower.server_data(pg.message(b"C", b"BEGIN\0") + pg.message(b"C", b"INSERT 0 1\0")
                                + pg.error_response("40001", "conflict")
                                + pg.ready_for_query("E")) is None
    (record,) = sink.done
    assert record.faults == ["f"] and record.error == "40001 conflict (fault f)"
    note = record.notes["sql"]
    assert note["statement"] == text and note["transaction"] == "failed"
    assert note["tags"] == ["BEGIN", "INSERT 0 1"]
    assert note["error"]["statement"] == 3 and note["faulted"] == [
        {"statement": 3, "faults": ["f"]}]


def test_a_query_of_one_statement_is_decided_whole() -> None:
    sink = Sink()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.ready_for_query("I"))
    follower.gating = True
    for text in ("SELECT 1;; \n", "SELECT ';'", "SELECT 1; -- done"):
        items = follower.client_data(query(text))
        assert items is not None and items[0].command.fields == {"sql": text}
        follower.resolve(FORWARD)
        assert follower.client_data(b"") == [query(text)]
        follower.server_data(reply("SELECT 1"))


ROW_DESCRIPTION = pg.message(
    b"T", b"\0\1abalance\0" + b"\0\0\x40\x02\0\3\0\0\0\x17\0\4\xff\xff\xff\xff\0\0")
DATA_ROW = pg.message(b"D", b"\0\1\0\0\0\x010")


def _noted(exchange: Exchange) -> dict[str, object]:
    note = dict(exchange.notes["sql"])
    note.pop("connection")
    return {"note": note, "method": exchange.method, "path": exchange.path,
            "error": exchange.error}


def test_queries_after_the_first_read_at_once_are_recorded_as_the_splitter_reads_them() -> None:
    """Once the connection has a record, a Query whole in its chunk and the whole answer to it
    are read where they arrive (`lean`, `server_lean`): the same records, one after the other
    on one connection, as when each comes cut in two chunks (read message by message): a
    result, commands without rows in a transaction, several statements, an error."""
    cases = [
        ("SELECT abalance FROM a WHERE aid = 1;",
         ROW_DESCRIPTION + DATA_ROW * 3 + reply("SELECT 3")),
        ("BEGIN", reply("BEGIN", "T")),
        ("UPDATE a SET abalance = 1", reply("UPDATE 2", "T")),
        ("COMMIT", reply("COMMIT")),
        ("SELECT 1; SELECT 2",
         ROW_DESCRIPTION + DATA_ROW + pg.message(b"C", b"SELECT 1\0") + ROW_DESCRIPTION
         + DATA_ROW + reply("SELECT 1")),
        ("SELECT nope", pg.error_response("42703", "column nope does not exist")
         + pg.ready_for_query("I")),
    ]
    seen = []
    for cut in (False, True):
        sink = Sink()
        follower = PostgresFollower(sink, FollowerOptions())
        follower.client_data(startup())
        follower.server_data(pg.message(b"R", (0).to_bytes(4)) + pg.ready_for_query("I"))
        follower.client_data(query("SELECT 0"))  # (the connection's first record: its origin)
        follower.server_data(reply("SELECT 0"))
        assert follower.lean and follower.server_lean
        for sql, answer in cases:
            message = query(sql)
            for chunk in (message[:3], message[3:]) if cut else (message,):
                follower.client_data(chunk)
            for chunk in (answer[:4], answer[4:]) if cut else (answer,):
                follower.server_data(chunk)
        assert follower.opaque is None and not follower.waiting
        seen.append([_noted(e) for e in sink.done[1:]])
    assert seen[0] == seen[1]
    assert [n["note"].get("tags", n["note"].get("tag")) for n in seen[0]] == [  # type: ignore[union-attr]
        "SELECT 3", "BEGIN", "UPDATE 2", "COMMIT", ["SELECT 1", "SELECT 1"], None]
    assert seen[0][0]["note"]["rows"] == 3 and seen[0][0]["note"]["columns"] == 1  # type: ignore[index]
    assert [n["note"]["transaction"] for n in seen[0]] == [  # type: ignore[index]
        "idle", "in transaction", "in transaction", "idle", "idle", "idle"]
    assert seen[0][5]["error"] == "42703 column nope does not exist"


def _parse(sql: str, name: str = "", types: tuple[int, ...] = ()) -> bytes:
    return pg.message(b"P", name.encode() + b"\0" + sql.encode() + b"\0"
                      + len(types).to_bytes(2) + b"".join(t.to_bytes(4) for t in types))


def _bound(values: list[bytes], name: str = "", portal: str = "") -> bytes:
    """Bind (text values), Describe (portal), Execute, Sync: one statement run."""
    body = (portal.encode() + b"\0" + name.encode() + b"\0\0\0" + len(values).to_bytes(2)
            + b"".join(len(v).to_bytes(4) + v for v in values) + b"\0\1\0\0")
    return (pg.message(b"B", body) + pg.message(b"D", b"P" + portal.encode() + b"\0")
            + pg.message(b"E", portal.encode() + b"\0\0\0\0\0") + pg.message(b"S", b""))


def test_extended_units_read_at_once_are_recorded_as_the_splitter_reads_them() -> None:
    """A unit of one Execute whose whole answer (ParseComplete, BindComplete, NoData or a
    RowDescription, DataRows, CommandComplete, ReadyForQuery) is one chunk is read where it
    arrives: the same records, params included (read from the Bind when the record is), as
    when every chunk comes cut in two (read message by message); a Bind's values are those
    bound when it ran, though the portal is bound again before the record is read; a long
    value is cut as before; redact_params hides them."""
    parsed, bound = pg.message(b"1", b""), pg.message(b"2", b"")
    nodata = pg.message(b"n", b"")
    long = b"x" * 3000
    cases = [
        (_parse("SELECT abalance FROM a WHERE aid = $1") + _bound([b"7"]),
         parsed + bound + ROW_DESCRIPTION + DATA_ROW * 2 + reply("SELECT 2")),
        (_parse("UPDATE a SET v = $1 WHERE aid = $2", "s1", (25, 23)) + _bound([b"a", b"2"], "s1"),
         parsed + bound + nodata + reply("UPDATE 1")),
        (_bound([b"b", b"3"], "s1"), bound + nodata + reply("UPDATE 0")),
        (_bound([long, b"4"], "s1"), bound + nodata + reply("UPDATE 1")),
        (_parse("SELECT $1::int / 0") + _bound([b"1"]),
         parsed + bound + ROW_DESCRIPTION + pg.error_response("22012", "division by zero")
         + pg.ready_for_query("I")),
        (_parse("SELECT 1") + _bound([]) + query("SELECT 2"),
         parsed + bound + ROW_DESCRIPTION + DATA_ROW + reply("SELECT 1")
         + ROW_DESCRIPTION + DATA_ROW + reply("SELECT 1")),
        (_parse("SELECT 3") + _bound([]) + _bound([]),  # two units in one chunk
         parsed + bound + ROW_DESCRIPTION + DATA_ROW + reply("SELECT 1")
         + bound + ROW_DESCRIPTION + DATA_ROW + reply("SELECT 1")),
        (_parse("SELECT $1::int", "s3") + pg.message(b"D", b"Ss3\0") + pg.message(b"S", b""),
         parsed + pg.message(b"t", b"\0\1\0\0\0\x17") + ROW_DESCRIPTION
         + pg.ready_for_query("I")),  # a statement described: a PREPARE
    ]
    for redact in (False, True):
        seen = []
        for cut in (False, True):
            sink = Sink()
            follower = PostgresFollower(sink, FollowerOptions(redact_params=redact))
            follower.client_data(startup())
            follower.server_data(pg.message(b"R", (0).to_bytes(4)) + pg.ready_for_query("I"))
            follower.client_data(query("SELECT 0"))  # (the connection's first record)
            follower.server_data(reply("SELECT 0"))
            for message, answer in cases:
                for chunk in (message[:3], message[3:]) if cut else (message,):
                    follower.client_data(chunk)
                for chunk in (answer[:4], answer[4:]) if cut else (answer,):
                    follower.server_data(chunk)
            assert follower.opaque is None and not follower.waiting
            follower.client_data(_parse("SELECT 9") + _bound([b"9"], "s1"))  # (bound again)
            seen.append([_noted(e) for e in sink.done[1:11]])
        assert seen[0] == seen[1]
        notes = [n["note"] for n in seen[0]]
        assert [n.get("tag") for n in notes] == [  # type: ignore[union-attr]
            "SELECT 2", "UPDATE 1", "UPDATE 0", "UPDATE 1", None, "SELECT 1", "SELECT 1",
            "SELECT 1", "SELECT 1", None]
        assert [n["kind"] for n in notes] == [  # type: ignore[index]
            *["extended"] * 6, "simple", "extended", "extended", "prepare"]
        assert notes[9]["name"] == "s3"  # type: ignore[index]
        params = [n["params"] for n in notes[:4]]  # type: ignore[index]
        if redact:
            assert params[1] == [{"type": "text", "value": "<redacted>"},
                                 {"type": "int4", "value": "<redacted>"}]
            assert params[0] == []
        else:
            assert params == [
                [{"type": "unspecified", "value": "7"}],
                [{"type": "text", "value": "a"}, {"type": "int4", "value": "2"}],
                [{"type": "text", "value": "b"}, {"type": "int4", "value": "3"}],
                [{"type": "text", "value": "x" * 200 + "…"}, {"type": "int4", "value": "4"}]]
        assert notes[0]["rows"] == 2 and notes[0]["columns"] == 1  # type: ignore[index]
        assert notes[0]["transaction"] == "idle" and notes[1]["name"] == "s1"  # type: ignore[index]
        assert seen[0][4]["error"] == "22012 division by zero"


def test_a_chunk_ending_as_a_sync_inside_a_message_is_read_as_byte_by_byte() -> None:
    """A chunk of the extended protocol whose last bytes look like a Sync but end inside a
    Bind (its value): the whole messages are read where they arrive, the rest by the splitter
    once the message ends in the next chunk; the records are those of the byte by byte read."""
    unit = _parse("SELECT $1") + _bound([b"xS\0\0\0\4y"])
    cut = unit.index(b"S\0\0\0\4y") + 5
    answer = (pg.message(b"1", b"") + pg.message(b"2", b"") + ROW_DESCRIPTION + DATA_ROW
              + reply("SELECT 1"))
    first, warm = query("SELECT 0"), reply("SELECT 0")  # (the connection's first record)
    whole, at_once = followed([first, unit[:cut], unit[cut:]], [warm, answer])
    _, by_byte = followed([first, *(unit[i:i + 1] for i in range(len(unit)))], [warm, answer])
    assert at_once == by_byte and whole.opaque is None and not whole.waiting
    assert at_once[1]["params"] == [{"type": "unspecified", "value": "xS\0\0\0\x04y"}]


def test_every_field_of_a_record_is_set_whichever_way_it_was_made() -> None:
    """`_record` (the constructor: no `__init__`) sets every slot of a record made on the
    whole Query's way and on the splitter's: each reads, none is left unset."""
    from devamb.inspect.lazy import LazyExchange
    from devamb.wire.postgres import _Record

    kept: list[LazyExchange] = []

    class Keeping(Sink):
        def record(self, lazy: LazyExchange) -> None:
            kept.append(lazy)
            super().record(lazy)

    sink = Keeping()
    follower = PostgresFollower(sink, FollowerOptions())
    follower.client_data(startup())
    follower.server_data(pg.message(b"R", (0).to_bytes(4)) + pg.ready_for_query("I"))
    for _ in range(2):  # (the first on the splitter's way, the second whole)
        follower.client_data(query("SELECT 1"))
        follower.server_data(ROW_DESCRIPTION + DATA_ROW + reply("SELECT 1"))
    assert len(kept) == 2 and all(type(one) is _Record for one in kept)
    slots = [name for cls in _Record.__mro__ for name in getattr(cls, "__slots__", ())
             if name not in ("__dict__", "size", "completed", "built", "note", "error")]
    for one in kept:  # (`size`, `completed`: the store's; the others None until used)
        assert all(getattr(one, name) is not None for name in slots)
        assert one.built is None or one.built.id == one.id
    first, second = (_noted(one.materialise()) for one in kept)
    assert first == second
