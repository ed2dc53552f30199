"""`ticketguard serve dashboard`: the operator console under gunicorn, several worker processes, port 8050."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ticketguard.api.cli import serve_app


def wsgi_app() -> Any:
    """The console's WSGI app from the environment's settings (gunicorn builds one per worker)."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.config import load_settings
    from ticketguard.dashboard.app import create_app
    from ticketguard.security.logs import install_secrets

    settings = load_settings()
    install_secrets(settings)
    return create_app(settings, database_engine(settings)).server


@serve_app.command("dashboard")
def serve_dashboard(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default DASHBOARD_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default DASHBOARD_PORT, 8050).", min=1, max=65535)
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default DASHBOARD_WORKERS, 2).", min=1, max=64)
    ] = None,
) -> None:
    """Serve the operator console (login with password + TOTP; docs/console.md) under gunicorn."""
    from gunicorn.app.base import BaseApplication

    from ticketguard.cli import ready_settings
    from ticketguard.config import SettingsError
    from ticketguard.dashboard.web import ConsoleConfig

    settings = ready_settings()  # refuse here, with the message, rather than in every worker
    try:
        ConsoleConfig(settings, engine=None)  # type: ignore[arg-type]  # checks the settings only
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    bind = f"{host or settings.dashboard_host}:{port or settings.dashboard_port}"
    count = workers or settings.dashboard_workers

    class Console(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", count)
            self.cfg.set("threads", 4)  # a page fires six section callbacks at once
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", None)
            self.cfg.set("control_socket_disable", True)  # no ~/.gunicorn socket shared between instances
            self.cfg.set("forwarded_allow_ips", ",".join(settings.trusted_proxies) or "127.0.0.1")

        def load(self) -> Any:
            return wsgi_app()

    typer.echo(
        f"operator console on http://{bind} with {count} worker(s); log in with `ticketguard admin create`"
    )
    Console().run()


def register(app: typer.Typer) -> None:
    """`serve dashboard` hangs on the `serve` group of the API's CLI, registered there."""
    del app
