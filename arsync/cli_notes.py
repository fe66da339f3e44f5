"""CLI: ``arsync notes`` — the write-back queue (notes on invoices in the books), registered on
the one Typer app of :mod:`arsync.cli`. ``--status failed`` lists what will never be written,
with the reason (invoice deleted, refused by the provider, no room beside a person's text)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import Session

from arsync.cli import ConnOpt, JsonOpt, app, command, context, emit
from arsync.errors import InputError
from arsync.models_notes import NOTE_STATUSES, NoteJob
from arsync.views import now_iso

STATUS_FILTERS = (*NOTE_STATUSES, "all")


def note_json(job: NoteJob) -> dict[str, Any]:
    """One job as ``arsync notes --json`` prints it."""
    return {"id": job.id, "connection_id": job.connection_id, "key": job.key,
            "invoice_external_id": job.invoice_external_id, "kind": job.kind,
            "status": job.status, "attempts": job.attempts, "text": job.text,
            "event_at": now_iso(job.event_at), "next_attempt_at": now_iso(job.next_attempt_at),
            "written_at": now_iso(job.written_at), "last_error": job.last_error,
            "provider_ref": job.provider_ref}


@app.command()
@command
def notes(connection: ConnOpt = None,
          status: Annotated[str, typer.Option(
              "--status", help="pending|writing|done|failed|all")] = "all",
          as_json: JsonOpt = False) -> None:
    """The write-back queue: one note per action per invoice, and what became of it."""
    if status not in STATUS_FILTERS:
        raise InputError(f"--status must be one of {', '.join(STATUS_FILTERS)}, not {status!r}")
    ctx = context()
    q = select(NoteJob).order_by(NoteJob.id)
    if connection is not None:
        q = q.where(NoteJob.connection_id == ctx.connection(connection).id)
    if status != "all":
        q = q.where(NoteJob.status == status)
    with Session(ctx.engine) as s:
        rows = [note_json(j) for j in s.scalars(q)]

    def lines() -> list[str]:
        out = [f"#{r['id']} c{r['connection_id']} {r['invoice_external_id']:<12} "
               f"{r['kind']:<10} {r['status']:<8} {r['text'][:70]}"
               + (f"  [{r['last_error']}]" if r["last_error"] else "") for r in rows]
        return out or ["no notes"]

    emit(as_json, rows, lines)
