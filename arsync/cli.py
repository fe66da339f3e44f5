"""The ``arsync`` command: the scripted interface in ../shared/CONTRACT.md.

Every reporting command takes ``--json`` and then prints exactly one JSON document on stdout;
logs go to stderr. Exit status: 0 success, 1 failure, 2 bad usage or bad input.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import select
from sqlmodel import Session

from arsync.config import get_settings
from arsync.context import AppContext
from arsync.errors import ArsyncError, ConfigError, InputError
from arsync.models import Connection

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Accounts-receivable recovery for QuickBooks Online and Xero.")
connect_app = typer.Typer(no_args_is_help=True, help="Add connections from an existing grant.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(connect_app, name="connect")
app.add_typer(db_app, name="db")

F = TypeVar("F", bound=Callable[..., Any])
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ConnOpt = Annotated[int | None, typer.Option("--connection", help="Connection id.")]
log = logging.getLogger("arsync")


def _setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "requests_oauthlib", "oauthlib", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(code: int, message: str) -> None:
    typer.echo(f"arsync: {message.splitlines()[0] if message else 'error'}", err=True)
    raise typer.Exit(code)


def command(fn: F) -> F:
    """Map arsync's errors onto the contract's exit statuses, with a one-line reason."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except (InputError, ConfigError) as exc:
            _fail(2, str(exc))
        except ArsyncError as exc:
            _fail(1, str(exc))

    return wrapper  # type: ignore[return-value]


def context() -> AppContext:
    return AppContext(get_settings())


def emit(as_json: bool, payload: Any, lines: Callable[[], list[str]]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        for line in lines():
            typer.echo(line)


# -- connect ----------------------------------------------------------------------------------

@connect_app.command("quickbooks")
@command
def connect_quickbooks(
    realm_id: Annotated[str, typer.Option("--realm-id", help="The company's realm id.")],
    refresh_token: Annotated[str, typer.Option("--refresh-token", help="An existing grant.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a QuickBooks connection from a refresh token (exchanged at once; rotated one kept)."""
    from arsync.connect import connect_with_refresh_token
    from arsync.queries import connection_json

    conns = connect_with_refresh_token(context(), "quickbooks", refresh_token,
                                       tenant_id=realm_id, name=name)
    emit(as_json, [connection_json(c) for c in conns],
         lambda: [f"connected {c.provider} {c.tenant_id} as #{c.id} ({c.name})" for c in conns])


@connect_app.command("xero")
@command
def connect_xero(
    refresh_token: Annotated[str, typer.Option("--refresh-token", help="An existing grant.")],
    tenant_id: Annotated[str | None, typer.Option("--tenant-id",
                                                  help="Only this organisation.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add one connection per Xero organisation the grant reaches (or just the one named)."""
    from arsync.connect import connect_with_refresh_token
    from arsync.queries import connection_json

    conns = connect_with_refresh_token(context(), "xero", refresh_token, tenant_id=tenant_id)
    emit(as_json, [connection_json(c) for c in conns],
         lambda: [f"connected {c.provider} {c.tenant_id} as #{c.id} ({c.name})" for c in conns])


# -- mirror -----------------------------------------------------------------------------------

@app.command()
@command
def connections(as_json: JsonOpt = False) -> None:
    """List connections."""
    from arsync.queries import connection_json

    ctx = context()
    with Session(ctx.engine) as s:
        rows = [connection_json(c) for c in s.scalars(select(Connection).order_by(Connection.id))]
    emit(as_json, rows, lambda: [
        f"#{r['id']:<4} {r['provider']:<11} {r['tenant_id']:<38} {r['status']:<16} {r['name']}"
        for r in rows] or ["no connections yet: see `arsync connect --help`"])


@app.command()
@command
def sync(connection: ConnOpt = None,
         full: Annotated[bool, typer.Option("--full", help="Sync from scratch.")] = False,
         as_json: JsonOpt = False) -> None:
    """Incremental sync of one or all connections."""
    from arsync.syncing import sync_all

    reports = sync_all(context(), connection_id=connection, full=full)
    emit(as_json, reports, lambda: [
        f"#{r['connection_id']}: " + (f"error: {r['error']}" if r.get("error") else
                                      f"{r['customers']} customers, {r['invoices']} invoices, "
                                      f"{r['payments']} payments, "
                                      f"{r['credit_notes']} credit notes, "
                                      f"{r['api_calls']} API calls")
        for r in reports])
    if any(r.get("error") for r in reports):
        raise typer.Exit(1)


@app.command()
@command
def invoices(connection: ConnOpt = None,
             status: Annotated[str, typer.Option(
                 "--status", help="draft|open|overdue|paid|voided|deleted|all")] = "open",
             as_json: JsonOpt = False) -> None:
    """The mirrored invoices."""
    from arsync.queries import INVOICE_FILTERS
    from arsync.queries import invoices as list_invoices

    if status not in INVOICE_FILTERS:
        raise InputError(f"--status must be one of {', '.join(INVOICE_FILTERS)}, not {status!r}")
    ctx = context()
    with Session(ctx.engine) as s:
        rows = list_invoices(s, now=ctx.clock.now(), connection_id=connection, status=status)
    emit(as_json, rows, lambda: [
        f"#{r['connection_id']} {r['number'] or r['external_id']:<12} "
        f"{r['customer_name'] or '':<32}"
        f" {r['currency']} {r['balance']:>12} due {r['due_date']} {r['status']}"
        + (f" ({r['days_overdue']}d overdue)" if r["days_overdue"] else "") for r in rows])


@db_app.command("upgrade")
@command
def db_upgrade() -> None:
    """Apply database migrations."""
    from arsync.db import make_engine, upgrade

    upgrade(make_engine(get_settings().sqlalchemy_url))
    typer.echo("database is up to date", err=True)


@app.command()
@command
def demo(no_web: Annotated[bool, typer.Option("--no-web", help="Run the story and exit.")] = False,
         as_json: JsonOpt = False) -> None:
    """Start the built-in sandbox companies, connect, sync, and show what was mirrored."""
    from arsync.demo import run_demo

    summary = run_demo(get_settings(), web=not no_web)
    emit(as_json, summary, lambda: summary["lines"])


def main() -> None:  # pragma: no cover - console entry point
    app()


# The loop, its ledger and people's work live in their own modules, on this same app.
from arsync import cli_ledger, cli_notes, cli_templates, cli_web, cli_work  # noqa: E402,F401
