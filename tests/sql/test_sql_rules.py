"""The SQL rules (sql/README.md): every ``sql/**/*.sql`` file is one query with a header naming its grain
and every ``$param``; no project SQL text in Python outside the documented plumbing list; DuckDB is
imported only in ``xvlm/data/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from xvlm.data.lake.sqlrun import SQL_ROOT, load_sql, sql_params

REPO = Path(__file__).resolve().parents[2]
SQL_FILES = sorted(p.relative_to(SQL_ROOT).with_suffix("").as_posix() for p in SQL_ROOT.rglob("*.sql"))
SCANNED = ("xvlm", "flows", "bench")
# Text that starts like a SQL statement. Upper case anywhere (the project writes SQL keywords in upper
# case); any case when the string is passed straight to execute() / sql() / executemany().
_STATEMENT = (r"^(SELECT|WITH|COPY|INSERT|CREATE|DROP|DELETE|UPDATE|ALTER|SET|RESET|PRAGMA|ATTACH|DETACH"
              r"|BEGIN|COMMIT|ROLLBACK|INSTALL|LOAD|DESCRIBE|SUMMARIZE|EXPORT|IMPORT|CHECKPOINT|USE|FROM"
              r"|VALUES|EXPLAIN)[\s(]")
_UPPER = re.compile(_STATEMENT)
_ANY_CASE = re.compile(_STATEMENT, re.IGNORECASE)
_RUNS_SQL = {"execute", "executemany", "sql"}


def test_there_are_sql_files_in_every_folder() -> None:
    assert {n.split("/", 1)[0] for n in SQL_FILES} == {"lake", "prepare", "samples", "views"}


@pytest.mark.parametrize("name", SQL_FILES)
def test_each_file_is_one_query_with_grain_and_parameters(name: str) -> None:
    text = (SQL_ROOT / f"{name}.sql").read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
    assert text.startswith("--"), f"{name}: the header comes first"
    assert "Grain:" in header, name
    assert "Parameters:" in header, name
    load_sql(name)  # raises unless exactly one statement
    documented = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", header.split("Parameters:", 1)[1]))
    assert sql_params(name) <= documented, name


def _py_files() -> list[Path]:
    return sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py"))


def _text(node: ast.AST) -> str | None:
    """A string literal's text, an f-string's with ``{}`` for each placeholder; whitespace collapsed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return " ".join(node.value.split())
    if isinstance(node, ast.JoinedStr):
        return " ".join("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values).split())
    return None


def sql_literals(path: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of each string literal in ``path`` that reads as a SQL statement (docstrings and
    the pieces of an f-string excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    passed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skip.add(id(node.value))  # docstrings and bare strings
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in _RUNS_SQL and node.args):
            passed.add(id(node.args[0]))
    found = []
    for node in ast.walk(tree):
        t = _text(node)
        if t is None or id(node) in skip:
            continue
        if _UPPER.match(t) or (id(node) in passed and _ANY_CASE.match(t)):
            found.append((node.lineno, t))
    return sorted(found)


def plumbing_list() -> list[tuple[str, str]]:
    """``(file, statement start)`` rows of the "What stays in Python" table in sql/README.md."""
    text = (SQL_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## What stays in Python", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+\.py)` \| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert rows, "sql/README.md: no table under 'What stays in Python'"
    return rows


def test_sql_literal_scan_finds_inline_queries(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text('"""SELECT in a docstring is prose."""\n'
                 'def f(con, t):\n'
                 '    con.execute("select count(*) from x")\n'
                 '    con.sql(f"SELECT * FROM {t} WHERE a = 1")\n'
                 '    q = ("WITH a AS (SELECT 1) "\n'
                 '         "SELECT * FROM a")\n'
                 '    print("select a metric")\n'
                 '    return q\n', encoding="utf-8")
    assert sql_literals(f) == [(3, "select count(*) from x"), (4, "SELECT * FROM {} WHERE a = 1"),
                               (5, "WITH a AS (SELECT 1) SELECT * FROM a")]


def test_no_inline_sql_in_python_but_the_documented_plumbing() -> None:
    allowed = plumbing_list()
    used: set[tuple[str, str]] = set()
    bad = []
    for p in _py_files():
        rel = p.relative_to(REPO).as_posix()
        for line, text in sql_literals(p):
            hits = [(f, s) for f, s in allowed if f == rel and text.startswith(s)]
            used.update(hits)
            if not hits:
                bad.append(f"{rel}:{line}: {text[:70]}")
    assert not bad, ("SQL text in Python: move it to a sql/ file (sqlrun.load_sql / SqlRunner), or, if it "
                     "is plumbing, list it under 'What stays in Python' in sql/README.md:\n" + "\n".join(bad))
    stale = sorted(set(allowed) - used)
    assert not stale, f"sql/README.md lists plumbing no code uses any more: {stale}"


def _imports_duckdb(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
              and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("__import__", "import_module")
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        if any(n == "duckdb" or n.startswith("duckdb.") for n in names):
            lines.append(node.lineno)
    return lines


def test_duckdb_is_imported_only_in_xvlm_data() -> None:
    bad = [f"{p.relative_to(REPO).as_posix()}:{n}" for p in _py_files()
           if not p.relative_to(REPO).as_posix().startswith("xvlm/data/") for n in _imports_duckdb(p)]
    assert not bad, f"duckdb imported outside xvlm/data/: {bad}"
    assert _imports_duckdb(REPO / "xvlm" / "data" / "lake" / "sqlrun.py"), "the scan finds no import at all"
