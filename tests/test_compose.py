"""docker-compose.yml describes the production shape; Docker cannot run here, so check it against the code."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from engine.cli import cli
from engine.repository import parse_uri

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROCOS_SERVICES = {name: svc for name, svc in SERVICES.items()
                   if name.startswith("procos") or name in ("worker", "scheduler")}
ENGINE_SOURCE = "\n".join(p.read_text() for p in (ROOT / "engine").rglob("*.py"))


def test_compose_runs_workers_and_a_scheduler_on_the_shared_state():
    assert SERVICES["worker"]["command"][0] == "worker" and SERVICES["scheduler"]["command"][:2] == ["scheduler", "run"]
    assert "procos_scheduler_token" in COMPOSE["secrets"]  # the scheduler's token is a secret, not an env value


def test_compose_has_pgvector_an_s3_store_and_procos_services():
    assert SERVICES["postgres"]["image"].startswith("pgvector/pgvector:")
    assert "minio" in SERVICES and "server" in SERVICES["minio"]["command"]
    assert PROCOS_SERVICES, "no procos service"
    for svc in PROCOS_SERVICES.values():
        assert svc["build"] == "."
        assert "postgres" in svc["depends_on"]
    assert (ROOT / "Dockerfile").is_file()


def test_every_variable_a_procos_service_sets_is_read_by_the_code():
    for name, svc in PROCOS_SERVICES.items():
        for var in svc["environment"]:
            assert f'"{var}"' in ENGINE_SOURCE, f"{name} sets {var}, which no engine module reads"


def test_store_uris_point_at_the_compose_postgres_service():
    for svc in PROCOS_SERVICES.values():
        env = svc["environment"]
        parsed = parse_uri(env["VECTOR_ENDPOINT"])
        assert parsed.scheme == "postgresql" and "@postgres:5432/" in parsed.location
        assert parsed.table == "embeddings"
        assert env["PROCOS_STATE_DSN"].startswith("postgresql://") and "@postgres:5432/" in env["PROCOS_STATE_DSN"]
        pg = SERVICES["postgres"]["environment"]
        assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@" in env["VECTOR_ENDPOINT"]
        assert parsed.location.split("?")[0].endswith("/" + pg["POSTGRES_DB"])


def test_every_service_command_is_a_real_procos_command():
    for name, svc in PROCOS_SERVICES.items():
        args = list(svc["command"])
        ctx = click.Context(cli)
        command: click.Command = cli
        while isinstance(command, click.Group) and args and not args[0].startswith("-"):  # `worker --concurrency`
            sub = command.get_command(ctx, args[0])
            assert sub is not None, f"{name}: unknown command {args[0]!r}"
            command, args = sub, args[1:]
            ctx = click.Context(command, parent=ctx)
        command.make_context(command.name, list(args), parent=ctx)  # raises on bad options


def test_the_panel_service_runs_procos_ui_on_every_interface_of_its_container():
    panel = SERVICES["panel"]
    assert panel["build"] == "." and "postgres" in panel["depends_on"]
    assert panel["command"][:1] == ["ui"] and panel["command"][panel["command"].index("--host") + 1] == "0.0.0.0"
    port = panel["command"][panel["command"].index("--port") + 1]
    assert f"{port}:{port}" in panel["ports"]
    uri = panel["environment"]["VECTOR_ENDPOINT"]
    assert uri.startswith("postgresql://procos@postgres:5432/") and "password_env=KB_PASSWORD" in uri  # no password
    command = cli.get_command(click.Context(cli), "ui")
    assert {"--host", "--port"} <= {o for p in command.params for o in getattr(p, "opts", [])}
