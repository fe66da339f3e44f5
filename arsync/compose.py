"""One customer message built from mirror data: template context, rendering and mail headers.

Everything here is pure (no database, no network, no clock): the outbox gathers the inputs
(mirror rows, cached pay links, the signed payer link, the company's template overrides) and
:func:`compose_message` turns them into the :class:`~arsync.message.OutgoingMessage` a sender
delivers. Keeping it pure is what lets a test pin the exact message for given data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from email.utils import formataddr, parseaddr
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.languages import get_official_languages

from arsync.mailer import message_id_for
from arsync.message import OutgoingMessage
from arsync.render import render, usable_locale
from arsync.render_context import CompanyCtx, CustomerCtx, InvoiceLine, MessageContext, line_from
from arsync.resources import templates_dir
from rules import InvoiceView

#: Channels whose message is an email we render ourselves (provider email is rendered too: the
#: provider sends its own invoice email, but the rendered text is kept for the record).
EMAIL_CHANNELS = frozenset({"email", "provider_email"})


@lru_cache(maxsize=256)
def company_locale(country: str | None) -> str:
    """The locale messages of a company in ``country`` are written and formatted in.

    The country's first official language that has shipped templates, with the country as
    territory (``de_DE`` once German ships); otherwise English in that country (``en_DE``: text
    in English, dates and numbers as the reader there expects), else ``en_US``.
    """
    code = (country or "").strip().upper()
    if len(code) != 2:
        return "en_US"
    shipped = {p.name for p in (templates_dir() / "email").iterdir() if p.is_dir()}
    for lang in get_official_languages(code, de_facto=True):
        if lang in shipped and _known(f"{lang}_{code}"):
            return f"{lang}_{code}"
    return f"en_{code}" if _known(f"en_{code}") else "en_US"


def _known(locale: str) -> bool:
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        return False
    return True


def invoice_lines(invoices: Iterable[InvoiceView], *, today: date,
                  pay_urls: Mapping[str, str | None]) -> tuple[InvoiceLine, ...]:
    """The template's invoice lines, each with its cached provider pay link when there is one."""
    return tuple(line_from(inv, today=today, pay_url=pay_urls.get(inv.external_id) or None)
                 for inv in invoices)


def sender_address(configured: str | None, company: str, tenant_id: str) -> str:
    """``From``: the configured address (under the company's name when it has none of its own)."""
    address = configured or f"accounts@{tenant_id}.arsync.local"
    name, addr = parseaddr(address)
    return address if name else formataddr((company, addr))


def unsubscribe_targets(payer_link: str | None, reply_to: str | None) -> tuple[str, ...]:
    """``List-Unsubscribe`` targets: the payer page's opt-out, then a mailto to the company."""
    targets = []
    if payer_link:
        targets.append(f"{payer_link.rstrip('/')}/unsubscribe")
    if reply_to:
        targets.append(f"mailto:{parseaddr(reply_to)[1]}?subject=unsubscribe")
    return tuple(targets)


@dataclass(frozen=True)
class Draft:
    """What one ledger action says, plus who it goes to and from whom."""

    action_id: int
    idempotency_key: str
    connection_id: int
    channel: str
    template: str
    stage: str
    tone: str
    recipient: str
    mail_from: str
    reply_to: str | None
    today: date
    invoice_external_ids: tuple[str, ...]


def compose_message(draft: Draft, *, company: CompanyCtx, customer: CustomerCtx,
                    invoices: tuple[InvoiceLine, ...], payer_link: str | None,
                    overrides: Mapping[str, str] | None = None) -> OutgoingMessage:
    """Render ``draft`` for its channel (email parts, or SMS text) with all its headers.

    Raises :class:`arsync.render.RenderError` when the shipped template cannot render it.
    """
    ctx = MessageContext(
        company=company, customer=customer, invoices=invoices, today=draft.today,
        stage=draft.stage, tone=draft.tone, pay_portal_url=payer_link,
        unsubscribe_url=f"{payer_link.rstrip('/')}/unsubscribe" if payer_link else None)
    message_id = message_id_for(draft.idempotency_key, draft.mail_from)
    common = {"action_id": draft.action_id, "message_id": message_id, "channel": draft.channel,
              "recipient": draft.recipient, "mail_from": draft.mail_from,
              "connection_id": draft.connection_id,
              "invoice_external_ids": draft.invoice_external_ids,
              "idempotency_key": draft.idempotency_key}
    if draft.channel == "sms":
        sms = render("sms", draft.template, ctx, overrides=overrides)
        return OutgoingMessage(subject="", body=sms.text, **common)  # type: ignore[arg-type]
    email = render("email", draft.template, ctx, overrides=overrides)
    headers = {"X-Arsync-Action": str(draft.action_id), "X-Arsync-Channel": draft.channel}
    if draft.reply_to:
        headers["Reply-To"] = draft.reply_to
    targets = unsubscribe_targets(payer_link, draft.reply_to)
    if targets:
        headers["List-Unsubscribe"] = ", ".join(f"<{t}>" for t in targets)
    return OutgoingMessage(subject=email.subject, body=email.text,  # type: ignore[arg-type]
                           html=email.html, headers=headers, **common)


def customer_context(name: str, locale: str | None) -> CustomerCtx:
    """The payer; an unknown locale falls back to the company's (never stops a message)."""
    return CustomerCtx(name, usable_locale(locale) if locale else None)


__all__ = ["EMAIL_CHANNELS", "Draft", "company_locale", "compose_message", "customer_context",
           "invoice_lines", "sender_address", "unsubscribe_targets"]
