"""CLI: ``arsync template`` — a company's own wording for any shipped template — and
``arsync reply-to``, the address its customers' replies go to.

An override is validated when it is saved (rendered against sample data: an unknown variable, a
syntax error or an unsafe construct is refused with its line, exit 2) and the previous version
stays in force until a valid one replaces it. ``reset`` goes back to the shipped template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arsync.cli import JsonOpt, app, command, context, emit
from arsync.errors import InputError
from arsync.render_overrides import DbTemplateStore

template_app = typer.Typer(no_args_is_help=True, help="A company's template overrides.")
app.add_typer(template_app, name="template")

ConnReq = Annotated[int, typer.Option("--connection", help="Connection id.")]
Kind = Annotated[str, typer.Argument(help="email, sms or note.")]
Name = Annotated[str, typer.Argument(help="e.g. firm.subject.j2, firm.html.j2, sent.txt.j2")]


@template_app.command("set")
@command
def template_set(kind: Kind, name: Name,
                 file: Annotated[Path, typer.Argument(help="The Jinja2 source.")],
                 connection: ConnReq, as_json: JsonOpt = False) -> None:
    """Validate and save an override (a refused one changes nothing)."""
    if not file.is_file():
        raise InputError(f"no such file: {file}")
    ctx = context()
    ctx.connection(connection)
    path = DbTemplateStore(ctx.engine, ctx.clock).save(str(connection), kind, name,
                                                      file.read_text(encoding="utf-8"))
    emit(as_json, {"connection_id": connection, "path": path, "status": "saved"},
         lambda: [f"connection {connection}: {path} saved"])


@template_app.command("show")
@command
def template_show(connection: ConnReq, as_json: JsonOpt = False) -> None:
    """The connection's overrides (paths; ``--json`` includes the sources)."""
    ctx = context()
    ctx.connection(connection)
    found = DbTemplateStore(ctx.engine, ctx.clock).overrides(str(connection))
    emit(as_json, [{"path": p, "source": found[p]} for p in sorted(found)],
         lambda: [p for p in sorted(found)] or ["(no overrides: the shipped templates apply)"])


@template_app.command("reset")
@command
def template_reset(kind: Kind, name: Name, connection: ConnReq, as_json: JsonOpt = False) -> None:
    """Go back to the shipped template."""
    ctx = context()
    ctx.connection(connection)
    DbTemplateStore(ctx.engine, ctx.clock).delete(str(connection), kind, name)
    emit(as_json, {"connection_id": connection, "kind": kind, "name": name, "status": "reset"},
         lambda: [f"connection {connection}: {kind}/{name} reset to the shipped template"])


@app.command("reply-to")
@command
def reply_to(address: Annotated[str, typer.Argument(help="e.g. 'Acme Billing <ar@acme.com>'")],
             connection: ConnReq, as_json: JsonOpt = False) -> None:
    """Where customers' replies to a company's messages go (the Reply-To header)."""
    from email.utils import parseaddr

    from sqlmodel import Session

    from arsync.models import Connection

    addr = parseaddr(address)[1]
    if "@" not in addr or " " in addr or len(address) > 254:
        raise InputError(f"not an email address: {address!r}")
    ctx = context()
    ctx.connection(connection)
    with Session(ctx.engine) as s, s.begin():
        conn = s.get(Connection, connection)
        assert conn is not None
        conn.reply_to = address.strip()
    emit(as_json, {"connection_id": connection, "reply_to": address.strip()},
         lambda: [f"connection {connection}: replies go to {address.strip()}"])
