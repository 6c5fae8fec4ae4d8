"""The `orchestrator` command."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from orchestrator.cli import dags, images, pools, runs, scheduler, secrets, tasks, users
from orchestrator.cli.context import build_context
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.errors import OrchestratorError

app = typer.Typer(
    help="Run DAGs of container tasks on Docker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
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


@app.command("schedulers")
def schedulers(
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table or json")
    ] = OutputFormat.table,
) -> None:
    """Schedulers sharing a PostgreSQL store: host, pid, heartbeat age and runs claimed.
    (On SQLite the one scheduler does not register: the list is empty.)"""
    from orchestrator.services.claims import registered_schedulers

    ctx = build_context()
    now = ctx.clock.now()
    with ctx.sessions() as session:
        found = registered_schedulers(session, ctx.settings, now)
    rows = [
        {
            "id": s.id,
            "host": s.host,
            "pid": s.pid,
            "started_at": s.started_at.isoformat(timespec="seconds"),
            "heartbeat_age": round(s.heartbeat_age, 1),
            "alive": s.alive,
            "runs": s.runs,
        }
        for s in found
    ]
    emit(rows, ["id", "host", "pid", "started_at", "heartbeat_age", "alive", "runs"], output)


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
        _warn_auth_off()
    else:
        with ctx.sessions() as session:
            if not user_store.list_users(session):
                typer.secho(
                    "no users yet: create one with `orchestrator users create NAME --role admin`"
                    " (or start `orchestrator standalone`, which makes an admin)",
                    fg=typer.colors.YELLOW,
                    err=True,
                )
    app_ = create_app(settings, ctx.sessions, ctx.clock)
    uvicorn.run(app_, host=host or settings.web_host, port=port or settings.web_port)


@app.command("standalone")
def standalone(
    host: Annotated[str | None, typer.Option(help="address to listen on (ORCH_WEB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (ORCH_WEB_PORT)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """The scheduler and the web server in one process, for local use, until Ctrl-C. On the
    first start (no users yet) it creates user `admin` with a random password and prints it
    (kept in $ORCH_HOME/standalone-admin-password)."""
    import uvicorn

    from orchestrator.services.daemon import run_scheduler
    from orchestrator.services.users import standalone_admin
    from orchestrator.web import create_app

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx = build_context()
    settings = ctx.settings
    host, port = host or settings.web_host, port or settings.web_port
    if not settings.web_auth:
        _warn_auth_off()
    else:
        with ctx.sessions.begin() as session:
            admin = standalone_admin(session, settings.home, ctx.clock.now())
        if admin is None:
            typer.echo("sign in as one of the users of `orchestrator users list`")
        else:
            made = "created user" if admin.created else "user"
            typer.echo(
                f"{made} {admin.username!r} with password {admin.password}"
                f" (kept in {admin.password_file})"
            )
    stop = threading.Event()
    runner = threading.Thread(
        target=run_scheduler,
        args=(settings, ctx.sessions, ctx.runtime, ctx.clock, stop),
        name="scheduler",
        daemon=True,
    )
    runner.start()
    typer.echo(f"web server at http://{host}:{port} with the scheduler; Ctrl-C stops both")
    # uvicorn stops on SIGINT or SIGTERM, then raises the signal again for the handler it
    # found: this one, which stops the scheduler too (instead of killing the process)
    previous = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in STOP_SIGNALS}
    try:
        uvicorn.run(create_app(settings, ctx.sessions, ctx.clock), host=host, port=port)
    finally:
        stop.set()
        runner.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _warn_auth_off() -> None:
    typer.secho(
        "warning: authentication is off (ORCH_WEB_AUTH=off): anyone who reaches the server"
        " can change anything",
        fg=typer.colors.YELLOW,
        err=True,
    )


def main() -> None:
    try:
        app()
    except OrchestratorError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
