"""Security properties checked on the code itself and on what the command prints.

- No shell ever runs, and no scraped text is evaluated as code.
- SQL is parameterized: every statement the project writes is a constant, or
  formats in only the few named constants listed here, each with its reason.
- Secrets come from the environment and never reach output, logs or the spool.
(The container's non-root user: ``test_container.py``; nothing fetched outside a
source's sites, redirects and feed links included: ``test_fault_matrix.py``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import run_cli
from tests.tcp_proxy import TcpProxy

PACKAGES = ("deportwatch", "service", "spiders", "pipeline", "db")
SQL_CALLS = {"execute", "exec_driver_sql", "executescript", "text"}
# Values formatted into SQL text, where and why they are safe.
FORMATTED_SQL = {
    ("db/engine.py", "busy_timeout_ms"): "an int computed from the URL (PRAGMA takes no parameter)",
    ("db/engine.py", "SQLITE_BUSY_TIMEOUT_MS"): "a module constant",
    ("db/engine.py", "PG_LOCK_TIMEOUT_MS"): "a module constant (SET takes no parameter)",
    ("db/migrate.py", "version"): "an int read from the database (PRAGMA takes no parameter)",
    ("db/migrations/versions/0007_search.py", "trigger"): "a loop over a constant tuple",
    ("db/migrations/versions/0007_search.py", "PG_VECTOR"): "a module constant (DDL)",
    ("db/migrations/versions/0012_lead_vector.py", "PG_LEAD_VECTOR"): "a module constant (DDL)",
    ("db/repository/articles.py", "article"): "a column name of the model",
    ("db/repository/articles.py", "shared"): (
        "subqueries of the model's names, ints and bound-parameter names (story candidates)"
    ),
    ("db/repository/articles.py", "least"): "a float of the code, repr'd (HAVING sum >= it)",
    ("db/repository/articles.py", "limit"): "an int of the code (LIMIT)",
}


def project_files() -> list[Path]:
    files = [REPO / "scheduler.py"]
    for package in PACKAGES:
        files += sorted((REPO / package).rglob("*.py"))
    return files


def calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]


def name_of(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_no_shell_and_no_evaluation_of_anything() -> None:
    for path in project_files():
        for call in calls(path):
            name = name_of(call)
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            assert name not in {"eval", "exec", "system", "popen", "getoutput", "loads"} or (
                name == "loads" and ast.unparse(call.func) in {"json.loads", "tomllib.loads"}
            ), f"{where}: {ast.unparse(call)}"
            for keyword in call.keywords:
                if keyword.arg == "shell":
                    assert isinstance(keyword.value, ast.Constant), where
                    assert keyword.value.value is False, f"{where}: shell=True"
            if name in {"Popen", "run", "call", "check_output"} and call.args:
                # The command is a list of fixed words, never a string a shell would split.
                assert isinstance(call.args[0], ast.List | ast.Name | ast.Starred), where


def test_sql_is_constant_or_bound_parameters() -> None:
    seen_formatted: set[tuple[str, str]] = set()
    for path in project_files():
        relative = str(path.relative_to(REPO))
        for call in calls(path):
            if name_of(call) not in SQL_CALLS or not call.args:
                continue
            statement = call.args[0]
            where = f"{relative}:{call.lineno}: {ast.unparse(call)[:120]}"
            if isinstance(statement, ast.JoinedStr):
                for part in statement.values:
                    if isinstance(part, ast.FormattedValue):
                        value = ast.unparse(part.value)
                        assert (relative, value) in FORMATTED_SQL, where
                        seen_formatted.add((relative, value))
                continue
            assert not isinstance(statement, ast.BinOp), f"{where}: SQL built by + or %"
            if isinstance(statement, ast.Call):
                assert name_of(statement) != "format", f"{where}: SQL built by .format"
    assert seen_formatted == set(FORMATTED_SQL)  # the list is no longer than it must be


def test_ruff_keeps_the_security_rules() -> None:
    config = (REPO / "pyproject.toml").read_text()
    assert '"S"' in config.split("[tool.ruff.lint]")[1].split("ignore")[0]


def test_settings_hold_no_secret_and_messages_hide_the_password(tmp_path: Path) -> None:
    settings_source = (REPO / "deportwatch" / "config" / "settings.py").read_text()
    assert "password" not in settings_source.lower()
    # A PostgreSQL server that is not there: the one line names it, password hidden.
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.down()
    url = f"postgresql://deportwatch:s3cret-pw@127.0.0.1:{proxy.port}/archive"
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nname = "ki"\nkind = "feed"\nstart_urls = ["https://kyivindependent.com/"]\n'
        'languages = ["en"]\n'
    )
    for args in (["crawl", "--all"], ["status"], ["search", "x"], ["init"]):
        result = run_cli(args, url, sources, tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "s3cret-pw" not in output, output
        assert "Traceback" not in output
    logs = tmp_path / "logs"
    for log in logs.rglob("*") if logs.is_dir() else []:
        assert "s3cret-pw" not in log.read_text(errors="replace")


@pytest.mark.parametrize("path", ["Dockerfile", "docker-compose.yml"])
def test_no_secret_is_written_into_the_container_files(path: str) -> None:
    text = (REPO / path).read_text()
    for line in text.splitlines():
        if "PASSWORD" in line and "=" in line.replace(":", "="):
            # Only ever taken from the environment (.env), with a default for a first try.
            assert "${POSTGRES_PASSWORD" in line or line.strip().startswith("#"), line
