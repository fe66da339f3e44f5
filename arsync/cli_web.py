"""CLI: ``arsync web`` (the web app under uvicorn) and ``arsync users add``, registered on the one
Typer app of :mod:`arsync.cli`."""

from __future__ import annotations

import getpass
import secrets
import sys
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from sqlalchemy import select
from sqlmodel import Session

from arsync.cli import JsonOpt, app, command, context, emit
from arsync.context import AppContext
from arsync.errors import InputError
from arsync.models import Connection
from arsync.models_web import ROLES, User

users_app = typer.Typer(no_args_is_help=True, help="Web users.")
app.add_typer(users_app, name="users")


def serve(ctx: AppContext, host: str, port: int) -> None:
    """Run the web app until interrupted. Refuses to start without ARSYNC_SECRET_KEY outside
    demo mode: it signs CSRF tokens and payer links and encrypts tokens at rest."""
    import uvicorn

    from arsync.web.app import create_app

    ctx.settings.require_secret_key()
    ctx.engine  # noqa: B018 - migrate before the first request, not during it
    # proxy_headers: behind a platform router (the Procfile's $PORT) the client address for
    # login throttling comes from X-Forwarded-For, trusted from the local proxy only.
    uvicorn.run(create_app(ctx), host=host, port=port, proxy_headers=True,
                log_level="info", server_header=False)


@app.command()
@command
def web(host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000) -> None:
    """The web app: sign-in, connect flows, webhooks, dashboard, payer pages."""
    serve(context(), host, port)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise InputError("the passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@users_app.command("add")
@command
def users_add(email: Annotated[str, typer.Argument(help="The user's email address.")],
              role: Annotated[str, typer.Option("--role", help="owner, staff or accountant.")]
              = "owner",
              org: Annotated[str | None, typer.Option(
                  "--org", help="Organisation name (created if new; default: the email's "
                                "domain).")] = None,
              as_json: JsonOpt = False) -> None:
    """Create a web user; the password is read from standard input (one line).

    For an existing user, ``--org`` adds them to that organisation with ``--role`` (how an
    accountant gets another client company); no password is read then.
    """
    from arsync.web import accounts

    if role not in ROLES:
        raise InputError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    ctx = context()
    now = ctx.clock.now()
    address = accounts.normalise_email(email)
    with Session(ctx.engine) as db, db.begin():
        user = db.scalars(select(User).where(User.email == address)).first()
        created = user is None
        if user is None:
            user = accounts.create_user(db, address, _read_password(), role=role, org_name=org,
                                        now=now)
        elif org is None:
            raise InputError(f"a user with email {address} already exists (give --org to add "
                             "them to another organisation)")
        else:
            target = accounts.find_or_create_org(db, org, now=now)
            accounts.add_membership(db, user.id or 0, target.id or 0, role, now=now)
        orgs = [{"id": o.id, "name": o.name, "role": r}
                for o, r in accounts.memberships(db, user.id or 0)]
        out: dict[str, Any] = {"id": user.id, "email": user.email, "created": created,
                               "organisations": orgs}
    emit(as_json, out, lambda: [
        f"{'created' if created else 'updated'} user #{out['id']} {out['email']}: "
        + ", ".join(f"{o['name']} ({o['role']})" for o in orgs)])


def demo_login(ctx: AppContext, org_name: str = "arsync demo") -> tuple[str, str]:
    """A fresh demo owner who sees every connection; returns (email, password)."""
    from arsync.web import accounts

    email, password = "demo@arsync.example", secrets.token_urlsafe(12)
    now = ctx.clock.now()
    with Session(ctx.engine) as db, db.begin():
        user = accounts.create_user(db, email, password, role="owner", org_name=org_name,
                                    now=now)
        org_id = accounts.memberships(db, user.id or 0)[0][0].id or 0
        for cid in db.scalars(select(Connection.id)):
            accounts.grant_connection(db, org_id, cid, now=now)
    return email, password


def serve_demo(ctx: AppContext, summary_lines: list[str]) -> None:
    """Print the story and how to sign in (stderr), then serve the dashboard until Ctrl-C."""
    email, password = demo_login(ctx)
    url = urlsplit(ctx.settings.public_url)
    host, port = url.hostname or "127.0.0.1", url.port or 8000
    for line in summary_lines:
        typer.echo(line, err=True)
    typer.echo("", err=True)
    typer.echo(f"dashboard: http://{host}:{port}/   (Ctrl-C to stop)", err=True)
    typer.echo(f"sign in as {email} with password {password}", err=True)
    serve(ctx, host, port)
