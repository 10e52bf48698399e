"""The fast paths of the strict-typing macros agree with the full check on every kind of JSON value.

``json_num_check`` / ``json_int_check`` (sql/lake/macro_json_*_check.sql) skip ``json_kind`` for the
values they can prove good; this is the differential test that they return exactly what
``json_check(field, j, want)`` returns, for values read the way the lake reads them (DuckDB JSON from
``read_json``), including the edge cases of DuckDB's casts ('1.5' and '1e3' cast to BIGINT, NaN and
Infinity, a digits-only literal past BIGINT, -0).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from xvlm.data.lake.sqlrun import SqlRunner

# JSON texts of one value each: every kind json_kind names, and the numbers near each boundary.
VALUES = [
    "0", "-0", "7", "-7", "391895", "1.5", "-1.5", "1.50", "22.93", "1e3", "1E3", "1e-05", "-2.5E+2",
    "1e308", "1e309", "-1e400", "NaN", "Infinity", "-Infinity",
    "9223372036854775807", "-9223372036854775808", "9223372036854775808", "99999999999999999999",
    "8999999999999999999", "9000000000000000000", "9.2e18", "9007199254740993",
    '"7"', '"22.93"', '""', '"NaN"', '"1e3"', "null", "true", "false", "[]", "[1]", "{}", '{"a": 1}',
]


@pytest.fixture()
def run(tmp_path: Path) -> SqlRunner:
    r = SqlRunner(duckdb.connect(":memory:"))
    path = tmp_path / "values.json"
    path.write_text("[" + ", ".join('{"v": ' + v + "}" for v in VALUES) + ", {}]", encoding="utf-8")
    r.con.execute(f"CREATE TABLE vals AS SELECT v, n FROM read_json('{path}', format = 'array', "  # noqa: S608
                  "columns = {'v': 'JSON'}) WITH ORDINALITY AS t(v, n)")
    yield r
    r.close()


def test_reader_normalises_numbers(run: SqlRunner) -> None:
    """DuckDB's JSON value text is re-serialised (1e3 -> 1000.0, -0 -> 0, 1.50 -> 1.5): the macros see
    these texts, and an exponent still shows a '.' (so json_int_check leaves it to the full check)."""
    got = dict(zip([*VALUES, None], (t for (t,) in run.con.execute(
        "SELECT CAST(v AS VARCHAR) FROM vals ORDER BY n").fetchall()), strict=True))
    assert (got["1e3"], got["-0"], got["1.50"], got["9.2e18"]) == ("1000.0", "0", "1.5", "9200000000000000000.0")
    assert (got['"7"'], got["null"], got[None]) == ('"7"', None, None)


def test_num_check_equals_json_check(run: SqlRunner) -> None:
    got = run.con.execute("""
        SELECT CAST(v AS VARCHAR), json_num_check('x', v, TRY_CAST(CAST(v AS VARCHAR) AS DOUBLE)),
               json_check('x', v, ['number', 'integer'])
        FROM vals ORDER BY n""").fetchall()
    assert [(t, fast) for t, fast, _ in got] == [(t, full) for t, _, full in got]
    reasons = dict(zip([*VALUES, None], (fast for _, fast, _ in got), strict=True))
    assert reasons["22.93"] is None and reasons["-0"] is None and reasons["1e-05"] is None
    assert reasons['"22.93"'] == "wrong_type:x=string"
    assert reasons["1e309"] == "wrong_type:x=non-finite"
    assert reasons["99999999999999999999"] == "wrong_type:x=big integer"
    assert reasons[None] == "wrong_type:x=null"


def test_int_check_equals_json_check(run: SqlRunner) -> None:
    got = run.con.execute("""
        SELECT CAST(v AS VARCHAR), json_int_check('image_id', v, CAST(v AS VARCHAR)),
               json_check('image_id', v, ['integer'])
        FROM vals ORDER BY n""").fetchall()
    assert [(t, fast) for t, fast, _ in got] == [(t, full) for t, _, full in got]
    reasons = dict(zip([*VALUES, None], (fast for _, fast, _ in got), strict=True))
    assert reasons["391895"] is None and reasons["-9223372036854775808"] is None
    assert reasons["1.5"] == "wrong_type:image_id=number"  # DuckDB casts '1.5' to BIGINT 2; not here
    assert reasons["1e3"] == "wrong_type:image_id=number"
    assert reasons['"7"'] == "wrong_type:image_id=string"
    assert reasons["9223372036854775808"] == "wrong_type:image_id=big integer"
