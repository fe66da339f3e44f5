"""Pay links: QuickBooks' ``InvoiceLink`` and Xero's online invoice URL, fetched once and cached.

A link is read from the provider the first time a message needs it and kept on the invoice row
(``Invoice.pay_url``); every later message reuses it without a call. An invoice the provider
offers no link for is cached as "checked, none" (``pay_url`` NULL, ``pay_url_checked_at`` set)
and asked again only after :data:`RECHECK_NONE`:

* a link appears only when a person changes something in the books (turns online payments on,
  adds the customer's email address), which is rare and never urgent;
* every read costs: QuickBooks meters reads (CorePlus) and a Xero Starter organisation has 1,000
  calls a day. Reminder stages are days apart, so re-asking every three days means a company that
  turns payments on sees links in its next reminders, at most ~10 reads per invoice per month,
  and only for invoices that are actually being chased.

A failure to fetch never blocks a message: the invoice renders without a link (the templates then
say how to pay) and nothing is cached, so the next message asks again. After the first failure
that is not about the invoice itself (throttled, provider down, grant dead) the rest of the batch
is not asked: the same failure would only cost time on the send path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import ArsyncError, PermanentError
from arsync.models import Connection, Invoice

log = logging.getLogger(__name__)

#: How long "the provider offers no link" is believed before asking again (see module doc).
RECHECK_NONE = timedelta(days=3)
#: Only invoices still owed get a link: Xero refuses drafts, and a paid invoice needs none.
LINKABLE_STATUSES = frozenset({"open"})


class PayLinkSource(Protocol):
    """What a connector offers for pay links (both connectors implement it)."""

    def pay_link(self, invoice_id: str) -> str | None: ...


def ensure_pay_links(ctx: AppContext, conn: Connection,
                     invoice_ids: Iterable[str]) -> dict[str, str | None]:
    """Each invoice's pay link (None: none offered, or not available right now).

    Cached links cost nothing; others are read from the provider once and written to the row.
    Invoices not in the mirror, or not open, map to None without a call.
    """
    wanted = sorted(set(invoice_ids))
    now = ctx.clock.now()
    with Session(ctx.engine) as s:
        rows = {r.external_id: r for r in s.scalars(
            select(Invoice).where(Invoice.connection_id == conn.id)
            .where(Invoice.external_id.in_(wanted)))}  # type: ignore[attr-defined]
        s.expunge_all()
    links: dict[str, str | None] = dict.fromkeys(wanted)
    to_fetch: list[str] = []
    for eid in wanted:
        row = rows.get(eid)
        if row is None or row.status not in LINKABLE_STATUSES:
            continue
        if row.pay_url:
            links[eid] = row.pay_url
        elif row.pay_url_checked_at is None or now - row.pay_url_checked_at >= RECHECK_NONE:
            to_fetch.append(eid)
    if not to_fetch:
        return links
    try:
        source: PayLinkSource = ctx.connector_for(conn)  # type: ignore[assignment]
    except ArsyncError as exc:
        log.warning("connection %s: no pay links this time (%s)", conn.id, exc)
        return links
    found: dict[str, str | None] = {}
    for eid in to_fetch:
        try:
            found[eid] = source.pay_link(eid)
        except PermanentError as exc:
            # About this invoice (Xero: not an approved sales invoice; unknown id): no link.
            log.info("connection %s invoice %s: no pay link (%s)", conn.id, eid, exc)
            found[eid] = None
        except Exception as exc:  # never let a pay link block a message
            log.warning("connection %s: pay link of invoice %s unavailable (%s); messages "
                        "go out without links for now", conn.id, eid, exc)
            break
    if found:
        _store(ctx, conn, found)
        links.update(found)
    return links


def _store(ctx: AppContext, conn: Connection, found: dict[str, str | None]) -> None:
    now = ctx.clock.now()
    with Session(ctx.engine) as s, s.begin():
        for row in s.scalars(select(Invoice).where(Invoice.connection_id == conn.id)
                             .where(Invoice.external_id.in_(list(found)))):  # type: ignore[attr-defined]
            row.pay_url = found[row.external_id]
            row.pay_url_checked_at = now
