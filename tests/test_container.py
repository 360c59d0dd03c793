"""The container files, checked statically (no Docker engine runs here), and the
commands they run, run for real."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from deportwatch.config.settings import Settings
from tests.conftest import REPO
from tests.helpers import DEPORTWATCH

SECRET = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined), comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_compose_has_a_healthy_postgres_16_and_a_scheduler_waiting_for_it(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"db", "broker", "scheduler", "worker", "web"}
    db = services["db"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume keeps the archive

    scheduler = services["scheduler"]
    assert scheduler["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "broker": {"condition": "service_healthy"},
    }
    assert scheduler["command"] == ["deportwatch", "schedule"]
    assert scheduler["restart"] == "unless-stopped"
    assert scheduler["env_file"] == [{"path": ".env", "required": False}]
    url = scheduler["environment"]["DEPORTWATCH_DATABASE_URL"]
    assert url.startswith("postgresql://")
    assert "@db:5432/" in url
    # Stopping waits longer than the service's own grace plus a crawl's stop.
    grace = int(str(scheduler["stop_grace_period"]).removesuffix("s"))
    assert grace > Settings().shutdown_grace + 10


def test_compose_web_view_is_read_only_on_loopback(compose: dict[str, Any]) -> None:
    web, scheduler = compose["services"]["web"], compose["services"]["scheduler"]
    assert web["command"] == ["deportwatch", "serve"]
    assert web["image"] == scheduler["image"]
    assert web["depends_on"] == {"scheduler": {"condition": "service_started"}}
    assert (
        web["environment"]["DEPORTWATCH_DATABASE_URL"]
        == (scheduler["environment"]["DEPORTWATCH_DATABASE_URL"])
    )
    port = str(web["environment"]["DEPORTWATCH_WEB_PORT"])
    # Published on the host's loopback only, to the port the view listens on.
    [published] = web["ports"]
    host_address, _, container_port = published.split(":")
    assert host_address == "127.0.0.1"
    assert container_port == port
    assert web["environment"]["DEPORTWATCH_WEB_HOST"] == "0.0.0.0"  # noqa: S104 (in the container)
    assert f"127.0.0.1:{port}/" in " ".join(web["healthcheck"]["test"])
    assert Settings().web_host == "127.0.0.1"  # outside a container: this machine only


def test_compose_settings_and_mounts_exist(compose: dict[str, Any]) -> None:
    fields = {f"DEPORTWATCH_{name.upper()}" for name in Settings.model_fields}
    for service in ("scheduler", "worker", "web"):
        assert set(compose["services"][service]["environment"]) <= fields
    scheduler = compose["services"]["scheduler"]
    env = dict(
        rest.split("=", 1)
        for keyword, line in dockerfile()
        if keyword == "ENV"
        for rest in shlex.split(line)
    )
    mounts = {}
    for volume in scheduler["volumes"]:
        host, container, *_ = volume.split(":")
        mounts[container] = host
        if host.startswith("./"):
            assert (REPO / host).is_file(), f"{host} is mounted but not in the repository"
    # The mounted files are the ones the image's settings point at.
    assert mounts[env["DEPORTWATCH_SOURCES"]] == "./sources.toml"
    assert mounts[env["DEPORTWATCH_KEYWORDS"]] == "./keywords.toml"
    # keywords.toml names frames.toml beside it: mounted beside it too.
    assert mounts[env["DEPORTWATCH_KEYWORDS"].replace("keywords", "frames")] == "./frames.toml"
    assert env["DEPORTWATCH_LOG_DIR"].startswith("/app/data")


def test_compose_workers_scale_and_share_the_scheduler_s_broker_and_archive(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    broker, worker, scheduler = services["broker"], services["worker"], services["scheduler"]
    assert broker["image"].startswith("redis:")
    assert "redis-cli" in broker["healthcheck"]["test"]
    assert "--appendonly" in broker["command"]  # a restart keeps the queue
    assert broker["volumes"][0].split(":")[0] in compose["volumes"]
    assert worker["command"] == ["deportwatch", "worker"]
    assert worker["image"] == scheduler["image"]
    # --scale worker=4: no fixed container name, no port on the host.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "build" not in worker  # one image, built by the scheduler's service
    env, scheduler_env = worker["environment"], scheduler["environment"]
    for name in ("DEPORTWATCH_DATABASE_URL", "DEPORTWATCH_BROKER_URL"):
        assert env[name] == scheduler_env[name]
    assert env["DEPORTWATCH_BROKER_URL"] == "redis://broker:6379/0"
    assert worker["depends_on"]["broker"] == {"condition": "service_healthy"}
    assert worker["healthcheck"]["test"] == ["CMD", "deportwatch", "worker", "--check"]
    assert set(worker["volumes"]) == set(scheduler["volumes"])
    grace = int(str(worker["stop_grace_period"]).removesuffix("s"))
    assert grace > 60


def test_dockerfile_is_slim_non_root_with_a_health_check_and_no_secrets() -> None:
    instructions = dockerfile()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    health = next(rest for keyword, rest in instructions if keyword == "HEALTHCHECK")
    assert health.endswith('CMD ["deportwatch", "status"]')
    assert dict(instructions)["CMD"] == '["deportwatch", "schedule"]'
    assert any(k == "RUN" and "pip install ." in rest for k, rest in instructions)
    # The word-list tries are built as the service user, into its own cache.
    warm = instructions.index(("RUN", "python -m pipeline.lexicon"))
    assert warm > keywords.index("USER")
    for keyword, rest in instructions:
        if keyword in ("ENV", "ARG"):
            assert not SECRET.search(rest), f"{keyword} {rest} bakes a secret into the image"
        if keyword == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".venv", "data", ".git"} <= set(ignored)


def test_the_package_the_image_installs_holds_every_part(tmp_path: Path) -> None:
    """``pip install .`` in the image: the wheel must carry the scheduler, migrations,
    templates and static files, and setuptools must have nothing to say about the
    package configuration (``make install`` once printed ~90 lines of warnings)."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "-w", str(tmp_path), "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    log = build.stdout + build.stderr
    assert "running bdist_wheel" in log  # the backend's own output is in the log
    for warning in ("BuildBackendWarning", "is absent from the `packages` configuration"):
        assert warning not in log
    [wheel] = tmp_path.glob("deportwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {p.name for p in (REPO / "db/migrations/versions").glob("0*.py")}
    assert {"scheduler.py", "db/migrations/script.py.mako", "db/migrations/env.py"} <= names
    assert {f"db/migrations/versions/{name}" for name in migrations} <= names
    assert "spiders/telegram.py" in names
    assert "spiders/middlewares/replay.py" in names
    assert "service/child.py" in names
    assert "service/launch.py" in names
    assert "deportwatch/cli/app.py" in names
    assert "db/repository/articles.py" in names
    assert "pipeline/store.py" in names
    assert "pipeline/lexicon.py" in names
    templates = {p.name for p in (REPO / "deportwatch/web/templates").glob("*.html")}
    assert {f"deportwatch/web/templates/{name}" for name in templates} <= names
    assert {"deportwatch/web/static/style.css", "deportwatch/web/static/localtime.js"} <= names


def test_the_image_build_step_caches_the_word_list_tries(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.lexicon"],
        env=os.environ | {"XDG_CACHE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "uk, ru, en tries ready" in result.stdout
    built = {path.name: path.stat().st_size for path in tmp_path.glob("simplemma/**/*.dic")}
    assert set(built) == {"uk.dic", "ru.dic", "en.dic"}
    assert all(size > 100_000 for size in built.values())


@pytest.mark.parametrize(
    "command",
    [
        ["schedule", "--help"],
        ["status", "--help"],
        ["crawl", "--help"],
        ["serve", "--help"],
        ["worker", "--help"],
    ],
)
def test_the_commands_the_container_runs_exist(command: list[str]) -> None:
    result = subprocess.run(
        [DEPORTWATCH, *command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: deportwatch" in result.stdout
