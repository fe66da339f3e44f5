"""SMS through a Twilio-compatible Messages API, with opt-outs honoured before every send.

Sending is ``POST {ARSYNC_SMS_API_URL}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with the
form fields ``To``, ``From`` (or ``MessagingServiceSid`` for an ``MG...`` sender) and ``Body``,
HTTP Basic auth as AccountSid:AuthToken. Numbers are normalised to E.164 with ``phonenumbers``,
national numbers read in the connection's country.

Opt-outs: a reply of STOP (and Twilio's other opt-out words) to our sender makes Twilio refuse
every later message to that number with error 21610 until the person replies START or UNSTOP.
arsync mirrors that state in ``sms_opt_outs`` (:func:`handle_inbound` for the inbound webhook,
and any 21610 answer) and checks it right before each send, so an opted-out number is never
sent to. Twilio's block is per sender, and every connection sends through the one configured
sender, so an opt-out applies to all connections.

Twilio error codes (docs.twilio.com/docs/api/errors/<code>) and what they mean for the action:

=============================================  ====================================================
answer                                         raised
=============================================  ====================================================
21211 invalid To, 21612 unroutable, 21614 not  SendError: that number cannot be texted
SMS-capable, 21408 region not enabled, 21608
unverified (trial), other 4xx
21610 recipient replied STOP                   opt-out recorded, then SendError
20003 / 401 bad credentials                    SendError naming the settings to fix
20429 / 429 too many requests                  TransientSendError (Twilio: "never processed,
                                               always safe to retry")
502, 503, and connection refused               TransientSendError: the request was not processed
500, 504, timeouts, connection lost mid-call   OutcomeUnknownError: the message may exist
=============================================  ====================================================

``outcome`` after a crash: Twilio has no idempotency key, but it lists messages. An outbound
message to the number created since the action was claimed (and with the same body, when the
body is known) means it went out; none means it did not. Twilio creates the Message resource
when it accepts the POST (queued messages are listed too: no DateSent filter), and recovery
runs only after the send lease (minutes) has expired, so the listing cannot miss a send that
is still in flight. A page full of newer messages (none old enough to prove the absence) is
None. Without the body (the recovery probe carries none) any outbound message since the claim
counts as ours: at worst a reminder is taken as sent when it was not, never sent twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import phonenumbers
import requests
import urllib3
from sqlalchemy import select
from sqlmodel import Session

from arsync.config import Settings
from arsync.context import AppContext
from arsync.errors import ConfigError, InputError, WebhookSignatureError
from arsync.message import OutcomeUnknownError, OutgoingMessage, SendError, TransientSendError
from arsync.models import Action, Connection
from arsync.models_sms import SmsOptOut
from arsync.provider_email import claimed_at

log = logging.getLogger(__name__)

CHANNEL = "sms"
API_VERSION = "2010-04-01"
#: Twilio refuses bodies longer than this (error 21617).
MAX_BODY = 1600
#: Connect quickly or not at all; a reply can take a little longer.
TIMEOUT = (5, 30)
CLOCK_SKEW = timedelta(minutes=2)
#: Messages read back per number when settling a crashed send (a payer gets a few a week).
LIST_PAGE = 50
#: Twilio's default opt-out words on long codes (docs.twilio.com advanced-opt-out), and the
#: ones that opt back in. Twilio also honours YES for opting in; arsync does not, so that a
#: "yes" answering a reminder cannot undo a STOP here (we then stay silent, the safe side).
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                           "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
#: Twilio error codes meaning "this number cannot receive this message", for good.
_BAD_NUMBER = {21211: "not a valid phone number", 21612: "not reachable from our sender",
               21614: "not able to receive SMS", 21408: "in a region our account may not text",
               21608: "not verified on a trial account", 21610: "opted out (replied STOP)"}
UNSUBSCRIBED = 21610
_COUNTRY_ALIASES = {"UK": "GB"}


class InvalidNumberError(SendError):
    """A phone number that cannot be read as a valid number in E.164."""


class RecipientRefusedError(SendError):
    """Twilio refused the number for good; ``code`` is its error code (21610: opted out)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def normalise_number(raw: str, country: str | None) -> str:
    """``raw`` in E.164 (``+14155550100``); national numbers are read in ``country``.

    Raises:
        InvalidNumberError: not a phone number, or not a valid one for its country.
    """
    region = _COUNTRY_ALIASES.get((country or "").upper(), (country or "").upper()) or None
    text = (raw or "").strip()
    if not text:
        raise InvalidNumberError("no phone number to text")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        where = f" (read as a {region} number)" if region and not text.startswith("+") else ""
        raise InvalidNumberError(f"{text!r} is not a phone number{where}: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region or "unknown country"
        raise InvalidNumberError(f"{text!r} is not a valid phone number ({where})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# -- opt-outs ---------------------------------------------------------------------------------


def is_opted_out(session: Session, number: str) -> bool:
    """True if ``number`` is opted out. Twilio blocks per sender, and all connections share it,
    so a row of any connection counts (also for a connection added after the STOP)."""
    return session.scalars(select(SmsOptOut.number).where(SmsOptOut.number == number)
                           .where(SmsOptOut.opted_out_at.is_not(None))  # type: ignore[union-attr]
                           .limit(1)).first() is not None


def record_opt_out(session: Session, connection_ids: Iterable[int], number: str, *,
                   now: datetime, source: str, detail: str | None = None) -> None:
    """Mark ``number`` opted out for each connection (idempotent; the first time stands)."""
    for cid in connection_ids:
        row = session.get(SmsOptOut, (cid, number))
        if row is None:
            session.add(SmsOptOut(connection_id=cid, number=number, opted_out_at=now,
                                  source=source, detail=detail, updated_at=now))
        elif row.opted_out_at is None:
            row.opted_out_at, row.source, row.detail, row.updated_at = now, source, detail, now


def record_opt_in(session: Session, connection_ids: Iterable[int], number: str, *,
                  now: datetime, detail: str | None = None) -> None:
    for cid in connection_ids:
        row = session.get(SmsOptOut, (cid, number))
        if row is not None and row.opted_out_at is not None:
            row.opted_out_at, row.opted_in_at, row.updated_at = None, now, now
            row.source, row.detail = "inbound", detail


@dataclass(frozen=True)
class InboundResult:
    """What an inbound message changed: ``opt_out``, ``opt_in`` or ``none``."""

    action: str
    number: str
    word: str


def handle_inbound(session: Session, form_fields: Mapping[str, str], now: datetime, *,
                   account_sid: str | None = None) -> InboundResult:
    """Apply one inbound SMS from Twilio's webhook form (``From``, ``To``, ``Body``,
    ``AccountSid``); the caller has verified the signature and commits the session.

    Like Twilio, only a message that is exactly one keyword (any case, surrounding spaces and
    punctuation ignored) counts: "please stop texting me" is left for a person to read.

    Raises:
        InputError: a field is missing, the sender is not a phone number, or the message was
            for another Twilio account.
    """
    sender, body = form_fields.get("From"), form_fields.get("Body")
    if not sender or body is None:
        raise InputError("inbound SMS without From or Body")
    if account_sid and form_fields.get("AccountSid") != account_sid:
        raise InputError("inbound SMS for another account")
    try:
        number = normalise_number(sender, None)
    except InvalidNumberError as exc:
        raise InputError(f"inbound SMS from {sender!r}: {exc}") from None
    word = body.strip().strip(".!").strip().upper()
    if word not in OPT_OUT_WORDS and word not in OPT_IN_WORDS:
        return InboundResult("none", number, word[:20])
    connections = list(session.scalars(select(Connection.id)))  # type: ignore[call-overload]
    if word in OPT_OUT_WORDS:
        record_opt_out(session, connections, number, now=now, source="inbound", detail=word)
        log.info("SMS opt-out (%s) from a number ending %s", word, number[-4:])
        return InboundResult("opt_out", number, word)
    record_opt_in(session, connections, number, now=now, detail=word)
    log.info("SMS opt-in (%s) from a number ending %s", word, number[-4:])
    return InboundResult("opt_in", number, word)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str | list[str]]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by every parameter's name
    and value, in name order (a repeated name: each value, in value order)."""
    data = url
    for name in sorted(params):
        values = params[name]
        for value in sorted(values) if isinstance(values, list) else [values]:
            data += name + value
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(settings: Settings, url: str, params: Mapping[str, str | list[str]],
                     signature: str | None) -> None:
    """Check an inbound webhook's ``X-Twilio-Signature``; the web app calls this first.

    ``url`` must be the exact URL Twilio requested (scheme, host, path and query), i.e. the
    public URL, not the one a proxy forwarded to.

    Raises:
        WebhookSignatureError: no signature, no auth token configured, or no match.
    """
    if settings.sms_auth_token is None:
        raise WebhookSignatureError("inbound SMS refused: ARSYNC_SMS_AUTH_TOKEN is not set")
    if not signature:
        raise WebhookSignatureError("inbound SMS without X-Twilio-Signature")
    expected = twilio_signature(settings.sms_auth_token.get_secret_value(), url, params)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookSignatureError("inbound SMS signature does not match")


def receive_inbound(ctx: AppContext, url: str, form: Mapping[str, str],
                    signature: str | None) -> InboundResult:
    """The inbound-SMS webhook in one call: verify, apply, commit (for the web app to mount).

    Answer Twilio with an empty ``<Response/>``: Twilio itself confirms STOP and START to the
    person, so arsync sends no reply of its own.

    Raises:
        WebhookSignatureError: answer 403 and change nothing.
        InputError: a malformed or foreign message; answer 400.
    """
    verify_signature(ctx.settings, url, form, signature)
    return receive_inbound_verified(ctx, form)


def receive_inbound_verified(ctx: AppContext, form: Mapping[str, str]) -> InboundResult:
    """Apply and commit an inbound message whose signature the caller has verified."""
    with Session(ctx.engine) as s, s.begin():
        return handle_inbound(s, form, ctx.clock.now(), account_sid=ctx.settings.sms_account_sid)


# -- the Messages API -------------------------------------------------------------------------


class TwilioClient:
    """The two Messages API calls arsync makes; answers as parsed JSON."""

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        sid, token, sender = settings.sms_account_sid, settings.sms_auth_token, settings.sms_from
        if not sid or token is None or not sender:
            missing = [n for n, v in (("ACCOUNT_SID", sid), ("AUTH_TOKEN", token), ("FROM", sender))
                       if not v]
            raise ConfigError("SMS is not configured: set " +
                              ", ".join(f"ARSYNC_SMS_{n}" for n in missing))
        self.account_sid, self.sender = sid, sender
        self._url = f"{settings.sms_api_url}/{API_VERSION}/Accounts/{sid}/Messages.json"
        self._auth = (sid, token.get_secret_value())
        self._http = session or requests.Session()

    def create_message(self, to: str, body: str) -> dict[str, Any]:
        """Send one SMS; the new Message resource (``sid``, ``status``...)."""
        form = {"To": to, "Body": body}
        form["MessagingServiceSid" if self.sender.startswith("MG") else "From"] = self.sender
        try:
            resp = self._http.post(self._url, data=form, auth=self._auth, timeout=TIMEOUT)
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise TransientSendError(f"SMS provider unreachable: {exc}") from exc
            raise OutcomeUnknownError(f"connection to the SMS provider lost mid-send: "
                                      f"{exc.__class__.__name__}") from exc
        except requests.Timeout as exc:  # read timeout: the POST was delivered
            raise OutcomeUnknownError("the SMS provider did not answer in time") from exc
        if resp.status_code in (200, 201):
            return _json(resp)
        raise _error_for(resp)

    def list_messages(self, to: str) -> list[dict[str, Any]]:
        """The newest :data:`LIST_PAGE` messages to ``to``, newest first.

        No ``DateSent`` filter: a message still queued has no DateSent yet and would be left
        out, and "not in the list" must mean "not sent".
        """
        params = {"To": to, "PageSize": str(LIST_PAGE)}
        try:
            resp = self._http.get(self._url, params=params, auth=self._auth, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise TransientSendError(f"SMS provider unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise _error_for(resp)
        messages = _json(resp).get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made (so the request certainly was not sent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # Refused, unresolvable, unreachable: urllib3 says NewConnectionError (NameResolutionError
    # is one); a connection dropped after the request went out is a ProtocolError instead.
    return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                               urllib3.exceptions.ConnectTimeoutError))


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise OutcomeUnknownError(f"SMS provider answered {resp.status_code} with no JSON")
    return doc


def _error_for(resp: requests.Response) -> Exception:
    """Twilio's error answer (``{"code", "message", "more_info", "status"}``) as a send error."""
    status = resp.status_code
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    code = doc.get("code") if isinstance(doc, dict) else None
    text = str(doc.get("message") or "") if isinstance(doc, dict) else ""
    what = f"SMS provider answered {status}" + (f" (error {code}: {text})" if code else "")
    if status == 429 or code == 20429:
        return TransientSendError(what)
    if status in (401, 403) or code == 20003:
        return SendError(f"{what}; check ARSYNC_SMS_ACCOUNT_SID and ARSYNC_SMS_AUTH_TOKEN")
    if status in (502, 503):
        return TransientSendError(what)
    if status >= 500:
        return OutcomeUnknownError(what)
    if isinstance(code, int) and code in _BAD_NUMBER:
        return RecipientRefusedError(f"the number is {_BAD_NUMBER[code]} ({what})", code)
    return SendError(what)


# -- the Sender ---------------------------------------------------------------------------------


class SmsSender:
    """Implements :class:`arsync.message.Sender` for the ``sms`` channel."""

    channel = CHANNEL

    def __init__(self, ctx: AppContext, session: requests.Session | None = None) -> None:
        self.ctx = ctx
        self._session = session
        self._client: TwilioClient | None = None

    @property
    def client(self) -> TwilioClient:
        if self._client is None:
            try:
                self._client = TwilioClient(self.ctx.settings, self._session)
            except ConfigError as exc:
                raise SendError(str(exc)) from exc
        return self._client

    def send(self, message: OutgoingMessage) -> None:
        body = message.body.strip()
        if not body:
            raise SendError("an SMS needs a text")
        if len(body) > MAX_BODY:
            raise SendError(f"the SMS text is {len(body)} characters; at most {MAX_BODY} are sent")
        number = self._number(message)
        now = self.ctx.clock.now()
        with Session(self.ctx.engine) as s:  # right before sending: a STOP may just have come
            if is_opted_out(s, number):
                raise SendError(f"the number ending {number[-4:]} opted out of SMS (STOP)")
        try:
            created = self.client.create_message(number, body)
        except RecipientRefusedError as exc:
            if exc.code == UNSUBSCRIBED:
                self._opted_out_at_provider(number, now, str(exc))
            raise
        log.info("action %s: SMS %s %s", message.action_id, created.get("sid"),
                 created.get("status"))

    def _opted_out_at_provider(self, number: str, now: datetime, detail: str) -> None:
        with Session(self.ctx.engine) as s, s.begin():
            ids = list(s.scalars(select(Connection.id)))  # type: ignore[call-overload]
            record_opt_out(s, ids, number, now=now, source="provider", detail=detail[:200])

    def _number(self, message: OutgoingMessage) -> str:
        country = None
        if message.connection_id:
            with Session(self.ctx.engine) as s:
                conn = s.get(Connection, message.connection_id)
                country = conn.country if conn is not None else None
        return normalise_number(message.recipient, country)

    def outcome(self, message: OutgoingMessage) -> bool | None:
        with Session(self.ctx.engine) as s:
            action = s.get(Action, message.action_id) if message.action_id else None
            claimed = claimed_at(action, self.ctx.settings.send_lease_seconds)
            conn_id = message.connection_id or (action.connection_id if action else 0)
        recipient = message.recipient or (action.recipient if action else None)
        if claimed is None or not recipient:
            return None
        try:
            number = self._number(OutgoingMessage(0, "", CHANNEL, recipient, "", "", "",
                                                  connection_id=conn_id))
            found = self.client.list_messages(number)
        except (SendError, TransientSendError, OutcomeUnknownError) as exc:
            log.warning("action %s: cannot tell whether the SMS went out (%s)",
                        message.action_id, exc)
            return None
        return _settle(found, number, message.body.strip(), claimed - CLOCK_SKEW)


def _settle(found: list[dict[str, Any]], number: str, body: str, since: datetime) -> bool | None:
    """True: an outbound message to ``number`` was created since ``since`` (with ``body``, when
    known); False: certainly none; None: the page is full of newer messages, so cannot tell."""
    oldest: datetime | None = None
    for m in found:
        created = _rfc2822(m.get("date_created"))
        if created is not None:
            oldest = created if oldest is None else min(oldest, created)
        if not str(m.get("direction", "")).startswith("outbound") or m.get("to") != number:
            continue
        if created is None or created < since:
            continue
        if not body or m.get("body") == body:
            return True
    if len(found) >= LIST_PAGE and (oldest is None or oldest >= since):
        return None
    return False


def _rfc2822(value: Any) -> datetime | None:
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None
