"""SMS: E.164, opt-outs, inbound STOP/START, signatures, and the exact Twilio requests (cassettes).

The cassettes in ``cassettes/`` were constructed from Twilio's documentation (see the README
there) and replay in record mode ``none``: a request that differs in method, URL, query, form
body or Basic-auth user fails.
"""

from __future__ import annotations

import base64
import socket
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import vcr
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from vcr.request import Request as VcrRequest

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.errors import InputError, WebhookSignatureError
from arsync.message import OutcomeUnknownError, OutgoingMessage, SendError, TransientSendError
from arsync.models import Connection
from arsync.models_sms import SmsOptOut
from arsync.sms import (
    LIST_PAGE,
    InvalidNumberError,
    SmsSender,
    _settle,
    handle_inbound,
    is_opted_out,
    normalise_number,
    receive_inbound,
    twilio_signature,
    verify_signature,
)
from tests.channels.conftest import NOW, make_action
from tests.factories import make_connection

CASSETTES = Path(__file__).parent / "cassettes"
SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
TOKEN = "test-auth-token-0123456789abcdef"
FROM = "+15005550006"
TO = "+14155552671"
BODY = ("Acme Supplies: invoice INV-1 (USD 1,250.00) is 7 days overdue. "
        "Pay: https://pay.example/i1")


def basic_auth(r1: VcrRequest, r2: VcrRequest) -> None:
    """The live request authenticates as the Account SID of its URL (the token is not stored)."""
    live = r1 if r1.headers.get("Authorization") else r2
    header = live.headers.get("Authorization") or ""
    assert header.startswith("Basic "), "no HTTP Basic auth"
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    assert (user, password) == (SID, TOKEN)
    assert f"/Accounts/{user}/" in live.path


def replay() -> vcr.VCR:
    v = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                match_on=["method", "scheme", "host", "port", "path", "query", "body",
                          "basic_auth"])
    v.register_matcher("basic_auth", basic_auth)
    return v


def sms_ctx(engine: Engine, home: Path, **extra: Any) -> AppContext:
    settings = dict(sms_account_sid=SID, sms_auth_token=TOKEN, sms_from=FROM)
    settings.update(extra)
    ctx = AppContext(Settings(_env_file=None, home=home, secret_key="s" * 32,  # type: ignore[call-arg]
                              **settings), clock=SimClock(NOW))
    ctx.__dict__["engine"] = engine
    return ctx


def sms(conn: Connection, recipient: str, body: str = BODY, action_id: int = 0
        ) -> OutgoingMessage:
    return OutgoingMessage(action_id, "<m@arsync.local>", "sms", recipient, "", "", body,
                           connection_id=conn.id or 0)


@pytest.fixture
def ctx(sqlite_engine: Engine, tmp_path: Path) -> AppContext:
    return sms_ctx(sqlite_engine, tmp_path)


@pytest.fixture
def us(sqlite_engine: Engine) -> Connection:
    return make_connection(sqlite_engine, country="US")


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "country", "e164"), [
    ("(415) 555-2671", "US", "+14155552671"),
    ("415.555.2671", "US", "+14155552671"),
    ("+1 415 555 2671", "GB", "+14155552671"),  # international form wins over the country
    ("1-415-555-2671", "CA", "+14155552671"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("020 7946 0958", "UK", "+442079460958"),  # Xero/QuickBooks sometimes say UK
    ("07911 123456", "GB", "+447911123456"),
    ("0491 570 156", "AU", "+61491570156"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("  +61 491 570 156 ", None, "+61491570156"),
])
def test_numbers_are_normalised_to_e164(raw: str, country: str | None, e164: str) -> None:
    assert normalise_number(raw, country) == e164


@pytest.mark.parametrize(("raw", "country", "reason"), [
    ("", "US", "no phone number"),
    ("call me", "US", "is not a phone number"),
    ("555-2671", "US", "is not a valid phone number"),  # too short
    ("07700 900123", "GB", "is not a valid phone number"),  # Ofcom drama range, not in service
    ("415 555 2671", None, "is not a phone number"),  # national form, no country to read it in
])
def test_invalid_numbers_fail_with_a_reason(raw: str, country: str | None, reason: str) -> None:
    with pytest.raises(InvalidNumberError, match=reason):
        normalise_number(raw, country)


def test_an_invalid_number_fails_the_send_without_a_request(ctx: AppContext,
                                                            us: Connection) -> None:
    with replay().use_cassette("sms_sent.yaml") as cassette, \
            pytest.raises(SendError, match="not a valid phone number"):
        SmsSender(ctx).send(sms(us, "555-2671"))
    assert cassette.play_count == 0


# -- sending: the exact request, and every answer mapped -------------------------------------


def test_send_makes_exactly_the_documented_request(ctx: AppContext, us: Connection) -> None:
    with replay().use_cassette("sms_sent.yaml") as cassette:
        SmsSender(ctx).send(sms(us, "(415) 555-2671"))  # national form, read in the US
    assert cassette.play_count == 1
    assert cassette.all_played


def test_a_messaging_service_is_sent_as_messaging_service_sid(sqlite_engine: Engine,
                                                              tmp_path: Path,
                                                              us: Connection) -> None:
    ctx = sms_ctx(sqlite_engine, tmp_path, sms_from="MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
    with replay().use_cassette("sms_sent_service.yaml") as cassette:
        SmsSender(ctx).send(sms(us, TO))
    assert cassette.play_count == 1


@pytest.mark.parametrize(("cassette", "to", "error", "text"), [
    ("sms_invalid_number.yaml", "+15005550001", SendError, "not a valid phone number.*21211"),
    ("sms_throttled.yaml", TO, TransientSendError, "20429"),
    ("sms_unavailable.yaml", TO, TransientSendError, "503"),
    ("sms_server_error.yaml", TO, OutcomeUnknownError, "500"),
    ("sms_bad_credentials.yaml", TO, SendError, "ARSYNC_SMS_AUTH_TOKEN"),
])
def test_twilio_errors_are_mapped(ctx: AppContext, us: Connection, cassette: str, to: str,
                                  error: type[Exception], text: str) -> None:
    with replay().use_cassette(cassette) as played, pytest.raises(error, match=text) as info:
        SmsSender(ctx).send(sms(us, to))
    assert played.play_count == 1
    if error is SendError:  # permanent, and not a subclass that would mean something else
        assert not isinstance(info.value, (TransientSendError, OutcomeUnknownError))


def test_unsubscribed_answer_records_the_opt_out_and_is_never_retried(
        ctx: AppContext, us: Connection) -> None:
    other = make_connection(ctx.engine, country="US")
    with replay().use_cassette("sms_unsubscribed.yaml") as cassette:
        with pytest.raises(SendError, match="opted out"):
            SmsSender(ctx).send(sms(us, "+15005550004"))
        with pytest.raises(SendError, match="opted out of SMS"):  # stopped before any request
            SmsSender(ctx).send(sms(other, "+15005550004"))
    assert cassette.play_count == 1
    with Session(ctx.engine) as s:
        rows = s.exec(select(SmsOptOut).where(SmsOptOut.number == "+15005550004")).all()
    assert {r.source for r in rows} == {"provider"}
    assert {r.connection_id for r in rows} == {us.id, other.id}


def test_an_opted_out_number_is_never_sent_to(ctx: AppContext, us: Connection) -> None:
    with Session(ctx.engine) as s, s.begin():
        handle_inbound(s, {"From": TO, "To": FROM, "Body": "STOP", "AccountSid": SID}, NOW)
    with replay().use_cassette("sms_sent.yaml") as cassette, \
            pytest.raises(SendError, match="ending 2671 opted out"):
        SmsSender(ctx).send(sms(us, "(415) 555-2671"))
    assert cassette.play_count == 0


def test_missing_settings_fail_the_send_with_their_names(sqlite_engine: Engine, tmp_path: Path,
                                                         us: Connection) -> None:
    ctx = sms_ctx(sqlite_engine, tmp_path, sms_auth_token=None, sms_from=None)
    with pytest.raises(SendError, match="ARSYNC_SMS_AUTH_TOKEN, ARSYNC_SMS_FROM"):
        SmsSender(ctx).send(sms(us, TO))


def test_overlong_text_is_refused(ctx: AppContext, us: Connection) -> None:
    with pytest.raises(SendError, match="1601 characters"):
        SmsSender(ctx).send(sms(us, TO, body="x" * 1601))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_transient(sqlite_engine: Engine, tmp_path: Path,
                                         us: Connection) -> None:
    ctx = sms_ctx(sqlite_engine, tmp_path, sms_api_url=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(TransientSendError, match="unreachable"):
        SmsSender(ctx).send(sms(us, TO))


def test_connection_lost_after_the_request_is_outcome_unknown(sqlite_engine: Engine,
                                                              tmp_path: Path,
                                                              us: Connection) -> None:
    """A real server that reads the whole request, then hangs up without answering."""
    received: list[bytes] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def hang_up() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while b"From=" not in data:  # the form's last field: the request is all here
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                received.append(data)

        worker = threading.Thread(target=hang_up)
        worker.start()
        port = server.getsockname()[1]
        ctx = sms_ctx(sqlite_engine, tmp_path, sms_api_url=f"http://127.0.0.1:{port}")
        with pytest.raises(OutcomeUnknownError, match="lost mid-send"):
            SmsSender(ctx).send(sms(us, TO))
        worker.join(5)
    assert received
    assert b"POST /2010-04-01/Accounts/" in received[0]


# -- outcome after a crash ---------------------------------------------------------------------


@pytest.mark.parametrize(("cassette", "expected"), [
    ("sms_outcome_found.yaml", True), ("sms_outcome_none.yaml", False)])
def test_outcome_lists_messages_sent_since_the_claim(ctx: AppContext, us: Connection,
                                                     cassette: str, expected: bool) -> None:
    action = make_action(ctx.engine, us, channel="sms", recipient="(415) 555-2671",
                         invoice_ids=["I1"], claimed_at=NOW)
    ctx.clock.advance(timedelta(minutes=10))  # the lease expired; recovery asks
    probe = OutgoingMessage(action.id or 0, "<m@arsync.local>", "sms", "", "", "", "")
    with replay().use_cassette(cassette) as played:
        assert SmsSender(ctx).outcome(probe) is expected
    assert played.play_count == 1


def _listed(body: str, created: str, to: str = TO, direction: str = "outbound-api",
            status: str = "queued") -> dict[str, Any]:
    return {"to": to, "body": body, "direction": direction, "status": status,
            "date_created": created, "date_sent": None}


def test_settling_reads_queued_messages_and_admits_a_full_page() -> None:
    since = NOW - timedelta(minutes=2)
    at = "Tue, 10 Mar 2026 15:00:02 +0000"
    assert _settle([_listed(BODY, at)], TO, BODY, since) is True  # queued: no DateSent yet
    assert _settle([_listed("other text", at)], TO, BODY, since) is False
    assert _settle([_listed("other text", at)], TO, "", since) is True  # body unknown
    assert _settle([_listed(BODY, at, direction="inbound")], TO, BODY, since) is False
    assert _settle([_listed(BODY, "Tue, 10 Mar 2026 14:00:00 +0000")], TO, BODY, since) is False
    newer = [_listed("other", at)] * LIST_PAGE
    assert _settle(newer, TO, BODY, since) is None  # nothing old enough to prove absence
    older = [*newer[:-1], _listed("old", "Mon, 09 Mar 2026 10:00:00 +0000")]
    assert _settle(older, TO, BODY, since) is False


def test_outcome_of_an_action_not_being_sent_is_unknown(ctx: AppContext, us: Connection) -> None:
    action = make_action(ctx.engine, us, channel="sms", recipient=TO, invoice_ids=["I1"],
                         status="sent")
    probe = OutgoingMessage(action.id or 0, "<m@arsync.local>", "sms", TO, "", "", "")
    with replay().use_cassette("sms_outcome_found.yaml") as played:
        assert SmsSender(ctx).outcome(probe) is None
    assert played.play_count == 0


# -- inbound STOP / START ----------------------------------------------------------------------


def _inbound(engine: Engine, body: str, sender: str = TO, account: str = SID) -> str:
    with Session(engine) as s, s.begin():
        return handle_inbound(s, {"From": sender, "To": FROM, "Body": body,
                                  "AccountSid": account}, NOW, account_sid=SID).action


def _opted_out(engine: Engine, number: str = TO) -> bool:
    with Session(engine) as s:
        return is_opted_out(s, number)


def test_stop_then_start_round_trip(engine: Engine) -> None:
    first = make_connection(engine, country="US")
    second = make_connection(engine, country="GB")
    assert _inbound(engine, "Stop") == "opt_out"
    assert _opted_out(engine)
    with Session(engine) as s:
        rows = s.exec(select(SmsOptOut)).all()
    assert {(r.connection_id, r.number, r.detail) for r in rows} == {
        (first.id, TO, "STOP"), (second.id, TO, "STOP")}
    assert _inbound(engine, "STOP") == "opt_out"  # again: nothing changes
    assert _inbound(engine, " unstop ") == "opt_in"
    assert not _opted_out(engine)
    assert _inbound(engine, "QUIT!") == "opt_out"
    assert _opted_out(engine)
    assert _inbound(engine, "start") == "opt_in"
    assert not _opted_out(engine)


@pytest.mark.parametrize("word", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "quit",
                                  "revoke", "optout"])
def test_every_opt_out_word_opts_out(sqlite_engine: Engine, word: str) -> None:
    make_connection(sqlite_engine)
    assert _inbound(sqlite_engine, word) == "opt_out"
    assert _opted_out(sqlite_engine)


@pytest.mark.parametrize("body", ["please stop texting me", "YES", "paid yesterday", ""])
def test_other_replies_change_nothing(sqlite_engine: Engine, body: str) -> None:
    make_connection(sqlite_engine)
    assert _inbound(sqlite_engine, body) == "none"
    assert not _opted_out(sqlite_engine)


def test_inbound_for_another_account_or_without_a_number_is_refused(
        sqlite_engine: Engine) -> None:
    make_connection(sqlite_engine)
    with pytest.raises(InputError, match="another account"):
        _inbound(sqlite_engine, "STOP", account="ACYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY")
    with pytest.raises(InputError, match="not a phone number"):
        _inbound(sqlite_engine, "STOP", sender="not-a-number")
    assert not _opted_out(sqlite_engine)


# -- signatures --------------------------------------------------------------------------------

DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
              "From": "+14158675310", "To": "+18005551212"}


def test_signature_matches_twilios_worked_example() -> None:
    assert twilio_signature("12345", DOC_URL, DOC_PARAMS) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_verify_signature_accepts_only_the_exact_request(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path, sms_auth_token="12345")  # type: ignore[call-arg]
    good = "GvWf1cFY/Q7PnoempGyD5oXAezc="
    verify_signature(settings, DOC_URL, DOC_PARAMS, good)
    for url, params, sig in [
            (DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, good),  # a parameter changed
            (DOC_URL.replace("https", "http"), DOC_PARAMS, good),  # another URL
            (DOC_URL, DOC_PARAMS, good.lower()),
            (DOC_URL, DOC_PARAMS, None)]:
        with pytest.raises(WebhookSignatureError):
            verify_signature(settings, url, params, sig)
    unset = Settings(_env_file=None, home=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(WebhookSignatureError, match="ARSYNC_SMS_AUTH_TOKEN"):
        verify_signature(unset, DOC_URL, DOC_PARAMS, good)


def test_receive_inbound_verifies_before_it_changes_anything(ctx: AppContext,
                                                            us: Connection) -> None:
    url = "https://ar.example.com/webhooks/sms"
    form = {"From": TO, "To": FROM, "Body": "STOP", "AccountSid": SID,
            "MessageSid": "SM4c0e8ae6ade43cb3c0ce4525424e404f"}
    with pytest.raises(WebhookSignatureError):
        receive_inbound(ctx, url, form, twilio_signature("wrong-token", url, form))
    assert not _opted_out(ctx.engine)
    result = receive_inbound(ctx, url, form, twilio_signature(TOKEN, url, form))
    assert (result.action, result.number) == ("opt_out", TO)
    assert _opted_out(ctx.engine)


def test_repeated_parameters_are_signed_value_by_value() -> None:
    one = twilio_signature("t", "https://x.example/sms", {"A": ["2", "1"], "B": "3"})
    assert one == twilio_signature("t", "https://x.example/sms", {"B": "3", "A": ["1", "2"]})
    assert one != twilio_signature("t", "https://x.example/sms", {"A": "12", "B": "3"})


# -- settings ----------------------------------------------------------------------------------


def test_sms_api_url_must_be_https_unless_loopback(tmp_path: Path) -> None:
    ok = Settings(_env_file=None, home=tmp_path, sms_api_url="http://127.0.0.1:8099/")  # type: ignore[call-arg]
    assert ok.sms_api_url == "http://127.0.0.1:8099"
    with pytest.raises(ValidationError, match="https"):
        Settings(_env_file=None, home=tmp_path, sms_api_url="http://api.twilio.com")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="ARSYNC_SMS_AUTH_TOKEN is a placeholder"):
        Settings(_env_file=None, home=tmp_path, sms_auth_token="changeme")  # type: ignore[call-arg]
