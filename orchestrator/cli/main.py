"""The `orchestrator` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.cli import dags, images, pools, runs, scheduler, secrets, tasks, users
from orchestrator.cli.context import build_context
from orchestrator.errors import OrchestratorError

app = typer.Typer(
    help="Run DAGs of container tasks on Docker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dags.app, name="dags")
app.add_typer(tasks.app, name="tasks")
app.add_typer(runs.app, name="runs")
app.add_typer(images.app, name="images", help="Make base images and build task images.")
app.add_typer(pools.app, name="pools")
app.add_typer(secrets.connections_app, name="connections")
app.add_typer(secrets.variables_app, name="variables")
app.add_typer(secrets.secrets_app, name="secrets")
app.add_typer(users.app, name="users")
app.add_typer(scheduler.app, name="scheduler")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from orchestrator.store.engine import current_revision, make_engine, upgrade

    ctx = build_context()
    engine = make_engine(ctx.settings.resolved_database_url)
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)}")


@app.command("web")
def web(
    host: Annotated[str | None, typer.Option(help="address to listen on (ORCH_WEB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (ORCH_WEB_PORT)")] = None,
) -> None:
    """Run the web server: REST API under /api/v1 (docs at /docs), pages, /health, /metrics."""
    import uvicorn

    from orchestrator.store import users as user_store
    from orchestrator.web import create_app

    ctx = build_context()
    settings = ctx.settings
    if not settings.web_auth:
        typer.secho(
            "warning: authentication is off (ORCH_WEB_AUTH=off): anyone who reaches the server"
            " can change anything",
            fg=typer.colors.YELLOW,
            err=True,
        )
    else:
        with ctx.sessions() as session:
            if not user_store.list_users(session):
                typer.secho(
                    "no users yet: create one with `orchestrator users create NAME --role admin`",
                    fg=typer.colors.YELLOW,
                    err=True,
                )
    app_ = create_app(settings, ctx.sessions, ctx.clock)
    uvicorn.run(app_, host=host or settings.web_host, port=port or settings.web_port)


def main() -> None:
    try:
        app()
    except OrchestratorError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
