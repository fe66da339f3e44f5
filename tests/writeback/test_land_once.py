"""Notes land once per action on every invoice concerned, in both sandboxes (real HTTP)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from arsync.models_notes import NoteJob
from arsync.notes_queue import drain_notes
from tests.writeback.conftest import World, add_action, add_people_records


def _jobs(w: World) -> list[NoteJob]:
    with Session(w.ctx.engine) as s:
        return list(s.scalars(select(NoteJob).where(NoteJob.connection_id == w.cid)
                              .order_by(NoteJob.id)))


def test_every_action_lands_once_on_every_invoice(world: World) -> None:
    a, b, c, d = world.open_invoices(4)
    now = world.clock.now()
    sent = add_action(world, [a, b])  # one reminder about two invoices
    task = add_action(world, [c], kind="task", status="planned", stage="call_30")
    due_cancelled = add_action(world, [d], status="cancelled",
                               reason="cancelled before sending: invoice 9 is paid")
    add_action(world, [d], status="cancelled", planned_for=now - timedelta(days=1),
               reason="not approved on its day; planned again if still due")  # noise: no note
    add_action(world, [d], status="cancelled", planned_for=now + timedelta(days=2),
               reason="a person cancelled it")  # never became due: no note
    add_action(world, [d], status="planned", planned_for=now + timedelta(days=1))  # not yet
    people = add_people_records(world, c)

    report = drain_notes(world.ctx, world.clock.now(), world.cid)

    assert report.errors == []
    keys = {j.key: j for j in _jobs(world)}
    assert set(keys) == {
        f"action:{sent}:sent:{a}", f"action:{sent}:sent:{b}", f"action:{task}:escalated:{c}",
        f"action:{due_cancelled}:cancelled:{d}", f"promise:{people['promise']}:{c}",
        f"dispute:{people['dispute']}:opened:{c}", f"dispute:{people['dispute']}:resolved:{c}",
        f"plan:{people['plan']}:{c}"}
    assert {j.status for j in keys.values()} == {"done"}
    assert report.enqueued == report.written == 8
    # Each invoice carries exactly its notes, each once.
    notes = {inv: world.notes_on(inv) for inv in (a, b, c, d)}
    assert len(notes[a]) == len(notes[b]) == 1 and "reminder" in notes[a][0]
    assert notes[a][0].split(" [ar:")[0].endswith(notes[b][0].split(" [ar:")[0][-40:])
    assert len(notes[c]) == 5
    text_c = " ".join(notes[c])
    for words in ("escalated", "promised to pay", "dispute opened", "dispute resolved",
                  "payment plan"):
        assert words in text_c
    assert len(notes[d]) == 1 and "cancelled" in notes[d][0] and "paid" in notes[d][0]

    # Again, and after the clock moved: nothing new to write, nothing written twice.
    world.clock.advance(timedelta(hours=2))
    again = drain_notes(world.ctx, world.clock.now(), world.cid)
    assert (again.enqueued, again.written, again.api_calls) == (0, 0, 0)
    assert {inv: world.notes_on(inv) for inv in (a, b, c, d)} == notes
