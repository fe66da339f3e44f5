"""CLI: people's work (``tasks``, ``promise``, ``dispute``, ``plan``, ``pause``, ``resume``,
``exclude``), registered on the one Typer app of :mod:`arsync.cli`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import Session

from arsync.cli import ConnOpt, JsonOpt, app, command, context, emit
from arsync.cli_ledger import action_json
from arsync.context import AppContext
from arsync.errors import InputError
from arsync.models import Action, Connection, CustomerOverride, InvoiceOverride

tasks_app = typer.Typer(help="People's work: calls, letters, agency hand-offs.")
dispute_app = typer.Typer(no_args_is_help=True, help="Disputed invoices (chasing stops).")
app.add_typer(tasks_app, name="tasks")
app.add_typer(dispute_app, name="dispute")

InvoiceOpt = Annotated[str, typer.Option("--invoice", help="Invoice external id.")]


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} must be an ISO date (YYYY-MM-DD), not {text!r}") from None


def parse_money(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError(f"{option} must be a decimal amount, not {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise InputError(f"{option} must be a positive amount, not {text!r}")
    return value


def pick_connection(ctx: AppContext, connection: int | None) -> int:
    """The named connection, or the only one there is."""
    if connection is not None:
        return ctx.connection(connection).id or 0
    with Session(ctx.engine) as s:
        ids = list(s.scalars(select(Connection.id).where(Connection.status != "disconnected")))
    if len(ids) != 1:
        raise InputError("name the connection with --connection ID"
                         + (" (there are several)" if ids else " (there are none)"))
    return ids[0]


def _now(ctx: AppContext) -> datetime:
    return ctx.clock.now()


# -- tasks ----------------------------------------------------------------------------------------

@tasks_app.callback(invoke_without_command=True)
@command
def tasks(typer_ctx: typer.Context, connection: ConnOpt = None,
          all_: Annotated[bool, typer.Option("--all", help="Include done tasks.")] = False,
          as_json: JsonOpt = False) -> None:
    """Open tasks, highest priority first (``arsync tasks done ID`` completes one)."""
    if typer_ctx.invoked_subcommand is not None:
        return
    ctx = context()
    with Session(ctx.engine) as s:
        q = select(Action).where(Action.kind == "task")
        if not all_:
            q = q.where(Action.status == "planned")
        if connection is not None:
            q = q.where(Action.connection_id == connection)
        rows = sorted((action_json(a) for a in s.scalars(q)),
                      key=lambda r: (-Decimal(r["priority"] or 0), r["id"]))
    emit(as_json, rows, lambda: [
        f"#{r['id']:<5} {r['task_kind'] or 'task':<7} priority {r['priority']:>12} "
        f"{r['customer_external_id']:<10} {','.join(r['invoice_external_ids'])} {r['status']}"
        for r in rows] or ["no open tasks"])


@tasks_app.command("done")
@command
def tasks_done(task_id: Annotated[int, typer.Argument(help="Task (action) id.")],
               outcome: Annotated[str | None, typer.Option(
                   "--outcome", help="promise|dispute|plan|no_answer")] = None,
               invoice: Annotated[str | None, typer.Option(
                   "--invoice", help="Which invoice the outcome is about.")] = None,
               on: Annotated[str | None, typer.Option("--date", help="Promised date.")] = None,
               amount: Annotated[str | None, typer.Option("--amount", help="Amount.")] = None,
               reason: Annotated[str | None, typer.Option(
                   "--reason", help="Dispute reason.")] = None,
               instalment: Annotated[list[str] | None, typer.Option(
                   "--instalment", help="DATE:AMOUNT, repeat for each (plan).")] = None,
               as_json: JsonOpt = False) -> None:
    """Complete a task, recording what came of it."""
    from arsync.work import complete_task

    details: dict[str, Any] = {"invoice": invoice}
    if outcome == "promise":
        if on is None:
            raise InputError("--outcome promise needs --date")
        details["date"] = parse_day(on, "--date")
        details["amount"] = parse_money(amount, "--amount") if amount else None
    elif outcome == "dispute":
        details["reason"] = reason
    elif outcome == "plan":
        details["instalments"] = _instalments(instalment)
    ctx = context()
    with Session(ctx.engine) as s, s.begin():
        row = complete_task(s, task_id, outcome=outcome, details=details, now=_now(ctx))
        s.flush()
        s.refresh(row)
        out = action_json(row)
    emit(as_json, out, lambda: [f"task {task_id} done ({outcome or 'no outcome'})"])


def _instalments(values: list[str] | None) -> list[tuple[date, Decimal]]:
    out = []
    for text in values or []:
        day, sep, amount = text.partition(":")
        if not sep:
            raise InputError(f"--instalment takes DATE:AMOUNT, not {text!r}")
        out.append((parse_day(day, "--instalment"), parse_money(amount, "--instalment")))
    if not out:
        raise InputError("a plan needs at least one --instalment DATE:AMOUNT")
    return out


# -- promises, disputes, plans ---------------------------------------------------------------------

@app.command()
@command
def promise(invoice: InvoiceOpt,
            on: Annotated[str, typer.Option("--date", help="Promised payment date.")],
            amount: Annotated[str | None, typer.Option("--amount", help="Promised amount.")] = None,
            connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """Record a promise to pay: chasing holds through the date, then resumes firmer."""
    from arsync.work import record_promise

    day = parse_day(on, "--date")
    value = parse_money(amount, "--amount") if amount else None
    ctx = context()
    cid = pick_connection(ctx, connection)
    with Session(ctx.engine) as s, s.begin():
        row = record_promise(s, cid, invoice, on=day, amount=value, now=_now(ctx))
        out = {"id": row.id, "connection_id": cid, "invoice_external_id": invoice,
               "customer_external_id": row.customer_external_id, "date": day.isoformat(),
               "amount": str(value) if value is not None else None,
               "recorded_at": row.recorded_at.isoformat()}
    emit(as_json, out, lambda: [f"promise recorded: invoice {invoice} by {day}"])


@dispute_app.command("open")
@command
def dispute_open(invoice: InvoiceOpt,
                 reason: Annotated[str, typer.Option("--reason", help="What is wrong.")],
                 connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """Open a dispute: the invoice is not chased until it is resolved."""
    from arsync.work import open_dispute

    ctx = context()
    cid = pick_connection(ctx, connection)
    with Session(ctx.engine) as s, s.begin():
        row = open_dispute(s, cid, invoice, reason=reason, now=_now(ctx))
        out = {"id": row.id, "connection_id": cid, "invoice_external_id": invoice,
               "customer_external_id": row.customer_external_id, "reason": row.reason,
               "status": "open", "opened_at": row.opened_at.isoformat()}
    emit(as_json, out, lambda: [f"dispute opened on invoice {invoice}"])


@dispute_app.command("resolve")
@command
def dispute_resolve(invoice: InvoiceOpt,
                    resolution: Annotated[str, typer.Option(
                        "--resolution", help="How it was settled.")] = "resolved",
                    connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """Resolve an invoice's dispute: chasing resumes."""
    from arsync.work import resolve_dispute

    ctx = context()
    cid = pick_connection(ctx, connection)
    with Session(ctx.engine) as s, s.begin():
        n = resolve_dispute(s, cid, invoice, resolution=resolution, now=_now(ctx))
    out = {"connection_id": cid, "invoice_external_id": invoice, "status": "resolved",
           "resolved": n, "resolution": resolution}
    emit(as_json, out, lambda: [f"dispute on invoice {invoice} resolved"])


@app.command()
@command
def plan(invoice: InvoiceOpt,
         instalment: Annotated[list[str], typer.Option(
             "--instalment", help="DATE:AMOUNT, once per instalment; they must add up to the "
                                  "open balance.")],
         connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """Agree a payment plan: its instalments replace the invoice's due-date reminders."""
    from arsync.work import agree_plan

    items = _instalments(instalment)
    ctx = context()
    cid = pick_connection(ctx, connection)
    with Session(ctx.engine) as s, s.begin():
        row = agree_plan(s, cid, invoice, items, now=_now(ctx))
        out = {"id": row.id, "connection_id": cid, "invoice_external_id": invoice,
               "customer_external_id": row.customer_external_id,
               "instalments": [{"date": d.isoformat(), "amount": str(a)} for d, a in items]}
    emit(as_json, out, lambda: [f"plan agreed for invoice {invoice}: {len(items)} instalments"])


# -- pause and exclude ----------------------------------------------------------------------------

def _set_override(ctx: AppContext, cid: int, *, invoice: str | None, customer: str | None,
                  **values: Any) -> dict[str, Any]:
    from arsync.ledger import mark_for_review
    from arsync.work import _invoice

    if (invoice is None) == (customer is None):
        raise InputError("name exactly one of --invoice or --customer")
    now = _now(ctx)
    with Session(ctx.engine) as s, s.begin():
        if invoice is not None:
            inv = _invoice(s, cid, invoice)
            row: Any = s.get(InvoiceOverride, (cid, invoice)) or InvoiceOverride(
                connection_id=cid, invoice_external_id=invoice, updated_at=now)
            who = inv.customer_external_id
        else:
            assert customer is not None
            row = s.get(CustomerOverride, (cid, customer)) or CustomerOverride(
                connection_id=cid, customer_external_id=customer, updated_at=now)
            who = customer
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = now
        s.add(row)
        mark_for_review(s, cid, [who])
        out = {"connection_id": cid, "invoice_external_id": invoice,
               "customer_external_id": who if customer is None else customer,
               **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}}
    return out


@app.command()
@command
def pause(until: Annotated[str, typer.Option("--until", help="Last paused day (inclusive).")],
          invoice: Annotated[str | None, typer.Option("--invoice", help="Invoice id.")] = None,
          customer: Annotated[str | None, typer.Option("--customer", help="Customer id.")] = None,
          connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """Pause chasing of one invoice or one customer through a date."""
    day = parse_day(until, "--until")
    ctx = context()
    out = _set_override(ctx, pick_connection(ctx, connection), invoice=invoice,
                        customer=customer, paused_until=day)
    emit(as_json, out, lambda: [f"paused through {day}"])


@app.command()
@command
def resume(invoice: Annotated[str | None, typer.Option("--invoice", help="Invoice id.")] = None,
           customer: Annotated[str | None, typer.Option("--customer", help="Customer id.")] = None,
           connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """End a pause (of one invoice or one customer) now."""
    ctx = context()
    out = _set_override(ctx, pick_connection(ctx, connection), invoice=invoice,
                        customer=customer, paused_until=None)
    emit(as_json, out, lambda: ["resumed"])


@app.command()
@command
def exclude(customer: Annotated[str, typer.Option("--customer", help="Customer external id.")],
            undo: Annotated[bool, typer.Option("--undo", help="Chase them again.")] = False,
            connection: ConnOpt = None, as_json: JsonOpt = False) -> None:
    """Never chase a customer (strategic partners), or ``--undo`` that."""
    ctx = context()
    out = _set_override(ctx, pick_connection(ctx, connection), invoice=None, customer=customer,
                        excluded=not undo)
    emit(as_json, out, lambda: [f"customer {customer} {'included' if undo else 'excluded'}"])
