"""Lint of docker/ (no Docker engine runs here): the compose file and the image must use the same
entry points the tests exercise, and publish ports on 127.0.0.1 only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from flows.services import Services

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


def test_published_ports_bind_loopback_only() -> None:
    for name, svc in COMPOSE["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_workers_run_the_deployments_module_that_serve_runs() -> None:
    local = next(s for s in Services(Path("/tmp")).specs() if s.name == "deployments")
    assert local.argv[1:] == ["-m", "flows.deployments"]
    from flows.deployments import deployments

    names = {d.name for d in deployments(Path("/tmp"))}
    served: list[str] = []
    for name in ("worker", "worker-gpu"):
        svc = COMPOSE["services"][name]
        assert svc["entrypoint"] == ["python", "-m", "flows.deployments"]
        assert svc["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        served += svc["environment"]["XVLM_DEPLOYMENTS"].split(",")
    assert sorted(served) == sorted(names)          # every deployment served once, none twice


def test_servers_use_postgres_and_the_image_has_the_driver() -> None:
    prefect = COMPOSE["services"]["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect.startswith("postgresql+asyncpg://")
    mlflow_cmd = " ".join(COMPOSE["services"]["mlflow"]["command"])
    assert "--backend-store-uri=postgresql://" in mlflow_cmd and "--artifacts-destination=/mlartifacts" in mlflow_cmd
    assert "psycopg2" in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "docker" / "postgres-init.sql").is_file()


def test_dockerfile_copies_what_exists_and_installs_the_server_extra() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?:--chown=\S+ )?(?!--from)(\S+(?: \S+)*) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"Dockerfile copies {part}, which is not in the repository"
    assert "torch==2.14.1 torchvision==0.29.1" in text and ".[dask,server,prepare]" in text
