"""The layer contracts in pyproject.toml hold, and a broken one fails lint-imports."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
PACKAGES = ("deportwatch", "service", "spiders", "pipeline", "db")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copy(REPO / "scheduler.py", root)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return root


@pytest.mark.parametrize(
    ("edits", "broken"),
    [
        # a lower layer reaching up: the database layer importing the CLI
        ({"db/types.py": "deportwatch.cli.common"}, "Layers"),
        # the base importing a layer above it
        ({"deportwatch/config/errors.py": "pipeline.text"}, "Layers"),
        # one command group importing another
        ({"deportwatch/cli/serve.py": "deportwatch.cli.search"}, "independent"),
        # a circle between two modules of one package
        ({"pipeline/text.py": "pipeline.urls", "pipeline/urls.py": "pipeline.text"}, "circles"),
    ],
)
def test_a_broken_contract_fails_lint_imports(
    tmp_path: Path, edits: dict[str, str], broken: str
) -> None:
    root = _copy_tree(tmp_path)
    assert _lint_imports(root).returncode == 0
    for module, imported in edits.items():
        target = root / module
        target.write_text(target.read_text() + f"\nimport {imported}  # noqa: E402\n")
    result = _lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    broken_lines = [s for s in result.stdout.splitlines() if s.endswith("BROKEN")]
    assert any(broken in s for s in broken_lines), result.stdout


def test_scheduler_imports_only_the_layers_below_it() -> None:
    """scheduler.py is a module at the top, not a package, so lint-imports sees only
    the imports *of* it (nothing below may import it); its own imports are read here."""
    allowed = ("service", "deportwatch.crawl", "deportwatch.archive", "spiders", "pipeline")
    allowed += ("db", "deportwatch.config")
    project = ("deportwatch", *PACKAGES)
    tree = ast.parse((REPO / "scheduler.py").read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
        elif isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
    ours = [m for m in imported if m.split(".")[0] in project]
    assert ours, "scheduler.py imports the service's parts"
    wrong = [m for m in ours if not any(m == a or m.startswith(a + ".") for a in allowed)]
    assert wrong == []


def test_the_command_starts_without_the_crawler_or_story_linking() -> None:
    """Every command but crawl, schedule, relink, evidence and verify starts
    without Scrapy, Twisted, MinHash (numpy, scipy) or WARC writing: the CLI's
    start-up is most of a `search` or `show`."""
    heavy = ("scrapy", "twisted", "datasketch", "scipy", "numpy", "warcio", "apprise")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, deportwatch.cli.app\n"
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.split() == []
