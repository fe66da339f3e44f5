"""CLI: the loop and its ledger (``run``, ``actions``, ``approve``, ``reject``, ``resolve``,
``pilot``, ``policy``, ``worker``), registered on the one Typer app of :mod:`arsync.cli`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import Session

from arsync.cli import ConnOpt, JsonOpt, app, command, context, emit
from arsync.errors import InputError
from arsync.models import Action, Connection
from arsync.queries import money

policy_app = typer.Typer(no_args_is_help=True, help="A connection's escalation policy.")
app.add_typer(policy_app, name="policy")


def parse_instant(text: str, option: str = "--as-of") -> datetime:
    """An ISO 8601 instant that carries its offset (else a one-line InputError)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} must be an ISO 8601 datetime, not {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{option} must carry a UTC offset, e.g. {text}+00:00")
    return value


def action_json(row: Action) -> dict[str, Any]:
    """A ledger row as ``arsync actions --json`` reports it (the contract's fields first)."""
    in_flight = row.status == "sending"
    return {
        "id": row.id, "connection_id": row.connection_id,
        "customer_external_id": row.customer_external_id,
        "invoice_external_ids": json.loads(row.invoice_ids_json), "stage": row.stage,
        "channel": row.channel, "recipient": row.recipient,
        # ``sending`` is internal to the outbox: to readers it is still planned, in flight.
        "status": "planned" if in_flight else row.status,
        "planned_for": row.planned_for.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "reason": row.status_reason,
        "in_flight": in_flight, "kind": row.kind, "task_kind": row.task_kind,
        "tone": row.tone, "local_date": row.local_date.isoformat(),
        "explanation": row.explanation, "priority": money(row.priority),
        "message_id": row.message_id, "attempts": row.attempts,
        "outcome": json.loads(row.outcome_json) if row.outcome_json else None,
    }


def _line(r: dict[str, Any]) -> str:
    return (f"#{r['id']:<5} conn {r['connection_id']} {r['status']:<17} {r['planned_for'][:16]} "
            f"{r['stage']:<14} {r['channel']:<6} {r['customer_external_id']:<10} "
            f"{','.join(r['invoice_external_ids'])}"
            + (f"  ({r['reason']})" if r["reason"] else ""))


@app.command()
@command
def run(connection: ConnOpt = None,
        as_of: Annotated[str | None, typer.Option(
            "--as-of", help="Evaluate as if now were this instant (ISO 8601 with offset).")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Plan and report; send and write nothing.")] = False,
        days: Annotated[int | None, typer.Option(
            "--days", min=1, max=366,
            help="With --dry-run: what would go out over N days.")] = None,
        as_json: JsonOpt = False) -> None:
    """One pass: freshness sync, evaluate the policy, plan, send what is due."""
    from arsync.passes import preview_connection, run_all

    ctx = context()
    now = parse_instant(as_of) if as_of else ctx.clock.now()
    if days is not None:
        if not dry_run:
            raise InputError("--days previews what would go out: use it with --dry-run")
        ids = [connection] if connection is not None else _active_ids(ctx)
        rows = [r for cid in ids for r in preview_connection(ctx, cid, now, days)]
        emit(as_json, {"as_of": now.isoformat(), "days": days, "actions": rows}, lambda: [
            f"{r['local_date']} conn {r['connection_id']} {r['stage']:<14} {r['channel']:<6} "
            f"{r['customer_external_id']:<10} {','.join(r['invoice_external_ids'])}"
            for r in rows] or ["nothing would go out"])
        return
    reports = run_all(ctx, now, connection_id=connection, dry_run=dry_run,
                      full=dry_run or as_of is not None)
    emit(as_json, reports, lambda: [
        f"#{r['connection_id']}: " + (f"error: {r['error']}" if r.get("error") else
                                      f"{r['evaluated']} customers evaluated, {r['planned']} "
                                      f"{'would be planned' if dry_run else 'planned'}"
                                      + ("" if dry_run else
                                         f", {len(r['outbox']['sent'])} sent, "
                                         f"{len(r['outbox']['cancelled'])} cancelled"))
        for r in reports])
    if any(r.get("error") for r in reports):
        raise typer.Exit(1)


def _active_ids(ctx: Any) -> list[int]:
    with Session(ctx.engine) as s:
        return list(s.scalars(select(Connection.id).where(Connection.status == "active")
                              .order_by(Connection.id)))


@app.command()
@command
def actions(connection: ConnOpt = None,
            status: Annotated[str | None, typer.Option("--status",
                                                       help="Only this status.")] = None,
            customer: Annotated[str | None, typer.Option("--customer",
                                                         help="Customer external id.")] = None,
            as_json: JsonOpt = False) -> None:
    """The action ledger, newest first."""
    ctx = context()
    with Session(ctx.engine) as s:
        q = select(Action).order_by(Action.id.desc())  # type: ignore[union-attr]
        if connection is not None:
            ctx.connection(connection)
            q = q.where(Action.connection_id == connection)
        if customer is not None:
            q = q.where(Action.customer_external_id == customer)
        if status is not None:
            q = q.where(Action.status.in_(["planned", "sending"] if status == "planned"
                                          else [status]))
        rows = [action_json(a) for a in s.scalars(q)]
    emit(as_json, rows, lambda: [_line(r) for r in rows] or ["no actions"])


@app.command()
@command
def approve(connection: ConnOpt = None,
            customer: Annotated[str | None, typer.Option("--customer",
                                                         help="Customer external id.")] = None,
            action: Annotated[int | None, typer.Option("--action", help="Action id.")] = None,
            all_: Annotated[bool, typer.Option("--all", help="Everything awaiting.")] = False,
            as_json: JsonOpt = False) -> None:
    """Pilot mode: release actions awaiting approval (they are sent when due)."""
    from arsync.ledger import transition

    if not (all_ or customer or action is not None):
        raise InputError("say what to approve: --action ID, --customer EXT_ID or --all")
    ctx = context()
    now = ctx.clock.now()
    with Session(ctx.engine) as s, s.begin():
        q = select(Action).where(Action.status == "awaiting_approval")
        if connection is not None:
            ctx.connection(connection)
            q = q.where(Action.connection_id == connection)
        if customer is not None:
            q = q.where(Action.customer_external_id == customer)
        if action is not None:
            row = s.get(Action, action)
            if row is None:
                raise InputError(f"no action with id {action}")
            if row.status != "awaiting_approval":
                raise InputError(f"action {action} is {row.status}, not awaiting approval")
            q = q.where(Action.id == action)
        ids = list(s.scalars(q.with_only_columns(Action.id)))
        done = [i for i in ids if transition(s, i, "planned", now=now,
                                             expect={"awaiting_approval"},
                                             reason="approved")]
        rows = [action_json(r) for r in s.scalars(select(Action).where(Action.id.in_(done)))]  # type: ignore[union-attr]
    emit(as_json, rows, lambda: [f"approved {len(rows)} action(s)"] + [_line(r) for r in rows])


@app.command()
@command
def reject(action: Annotated[int, typer.Option("--action", help="Action id.")],
           reason: Annotated[str, typer.Option("--reason", help="Why.")] = "rejected by a person",
           as_json: JsonOpt = False) -> None:
    """Pilot mode: decline one action awaiting approval (it is never sent, nor planned again)."""
    from arsync.ledger import transition

    ctx = context()
    with Session(ctx.engine) as s, s.begin():
        row = s.get(Action, action)
        if row is None or row.status != "awaiting_approval":
            raise InputError(f"action {action} is not awaiting approval")
        transition(s, action, "rejected", now=ctx.clock.now(), reason=reason)
        s.refresh(row)
        out = action_json(row)
    emit(as_json, out, lambda: [_line(out)])


@app.command()
@command
def resolve(action: Annotated[int, typer.Option("--action", help="An action in unknown.")],
            sent: Annotated[bool, typer.Option("--sent/--not-sent",
                                               help="What a person found out.")] = True,
            as_json: JsonOpt = False) -> None:
    """Settle an ``unknown`` action once a person knows whether it went out."""
    from arsync.ledger import mark_for_review, transition

    ctx = context()
    now = ctx.clock.now()
    with Session(ctx.engine) as s, s.begin():
        row = s.get(Action, action)
        if row is None or row.status != "unknown":
            raise InputError(f"action {action} is not unknown")
        if sent:
            transition(s, action, "sent", now=now, sent_at=now, reason="confirmed by a person")
        else:
            transition(s, action, "failed", now=now, reason="not delivered (confirmed by a person)")
            mark_for_review(s, row.connection_id, [row.customer_external_id])
        s.refresh(row)
        out = action_json(row)
    emit(as_json, out, lambda: [_line(out)])


@app.command()
@command
def pilot(mode: Annotated[str, typer.Argument(help="on|off")],
          connection: Annotated[int, typer.Option("--connection", help="Connection id.")],
          as_json: JsonOpt = False) -> None:
    """Pilot mode on or off: when on, messages wait for ``arsync approve``."""
    if mode not in ("on", "off"):
        raise InputError(f"pilot takes on or off, not {mode!r}")
    ctx = context()
    ctx.connection(connection)
    with Session(ctx.engine) as s, s.begin():
        conn = s.get(Connection, connection)
        assert conn is not None
        conn.pilot_mode = mode == "on"
    out = {"connection_id": connection, "pilot_mode": mode == "on"}
    emit(as_json, out, lambda: [f"connection {connection}: pilot mode {mode}"])


@policy_app.command("set")
@command
def policy_set(file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
               connection: Annotated[int, typer.Option("--connection", help="Connection id.")],
               as_json: JsonOpt = False) -> None:
    """Give a connection its own policy (validated; a bad one is refused with its line)."""
    from arsync.views import validate_policy_text

    if not file.is_file():
        raise InputError(f"no such file: {file}")
    text = file.read_text(encoding="utf-8")
    policy = validate_policy_text(text, str(file))
    from arsync.models import Invoice

    ctx = context()
    ctx.connection(connection)
    with Session(ctx.engine) as s, s.begin():
        conn = s.get(Connection, connection)
        assert conn is not None
        conn.policy_yaml = text
        # Every customer is looked at again under the new policy.
        s.execute(Invoice.__table__.update().where(Invoice.connection_id == connection)  # type: ignore[attr-defined]
                  .values(review_on=None))
    out = {"connection_id": connection, "policy": policy.name, "stages": len(policy.stages)}
    emit(as_json, out, lambda: [f"connection {connection} now uses policy {policy.name!r}"])


@policy_app.command("show")
@command
def policy_show(connection: Annotated[int, typer.Option("--connection", help="Connection id.")],
                as_json: JsonOpt = False) -> None:
    """The policy a connection uses."""
    from arsync.views import policy_for

    conn = context().connection(connection)
    policy = policy_for(conn)
    out = {"connection_id": connection, "policy": policy.name, "custom": bool(conn.policy_yaml),
           "stages": [{"id": st.id, "anchor": st.anchor, "offset": st.offset,
                       "channels": list(st.channels)} for st in policy.stages]}
    emit(as_json, out, lambda: [f"{policy.name}: " + ", ".join(
        f"{st.id}({st.offset:+d})" for st in policy.stages)])


@app.command()
@command
def worker() -> None:
    """The background loop (sync, policy, outbox, token refresh) until SIGTERM or SIGINT."""
    from arsync.scheduler import run_worker

    ctx = context()
    ctx.settings.require_secret_key()
    run_worker(ctx)
