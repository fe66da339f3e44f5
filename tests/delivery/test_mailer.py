"""Building the message, the .eml outbox, the SMTP URL and the unsubscribe token."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.errors import ConfigError
from arsync.mailer import (
    EmlMailer,
    SmtpMailer,
    build_email,
    eml_path,
    mailer_for,
    message_id_for,
    parse_smtp_url,
    write_eml,
)
from arsync.render import render
from arsync.render_links import read_unsubscribe_token, unsubscribe_token, unsubscribe_urls
from tests.delivery.conftest import make_ctx

NOW = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)
SECRET = "s3cret-key-for-tests-only-0123456789"


def make_message(key: str = "action:42", *, n: int = 2,
                 now: datetime = NOW) -> email.message.EmailMessage:
    rendered = render("email", "firm", make_ctx(n))
    urls = unsubscribe_urls(public_url="https://ar.acme.example", secret=SECRET,
                            customer_ref="7:C42", mailto="reminders@acme.example")
    return build_email(rendered, idempotency_key=key, mail_from="Acme AR <reminders@acme.example>",
                       to="Globex AP <ap@globex.example>", reply_to="ar@acme.example", now=now,
                       list_unsubscribe=urls, headers={"X-Arsync-Action": "42"})


def test_message_id_is_stable_per_key() -> None:
    a = message_id_for("k1", "reminders@acme.example")
    assert a == message_id_for("k1", "Other Name <reminders@acme.example>")
    assert a != message_id_for("k2", "reminders@acme.example")
    assert a.startswith("<") and a.endswith("@arsync.acme.example>")
    assert len(a.split("@")[0]) == 33  # "<" + 32 hex digits


def test_headers_and_parts() -> None:
    msg = make_message(now=SimClock(NOW).now())
    assert msg["Message-ID"] == message_id_for("action:42", "reminders@acme.example")
    assert msg["Date"] == "Mon, 16 Mar 2026 09:30:00 +0000"
    assert msg["Reply-To"] == "ar@acme.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = str(msg["List-Unsubscribe"])
    assert unsub.startswith("<https://ar.acme.example/unsubscribe/")
    assert "<mailto:reminders@acme.example?subject=unsubscribe%20" in unsub
    assert msg["X-Arsync-Action"] == "42"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert "$1,250.00" in text.get_content() and "$2,500.00" in html.get_content()
    raw = msg.as_bytes(policy=email.policy.SMTP)
    assert all(len(line) <= 998 and line.isascii() for line in raw.split(b"\r\n"))


def test_date_follows_the_injected_clock_in_any_zone() -> None:
    later = make_message(now=datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    assert later["Date"] == "Wed, 01 Jul 2026 12:00:00 +0200"
    with pytest.raises(ValueError, match="timezone-aware"):
        make_message(now=datetime(2026, 7, 1, 12, 0))


def test_unsubscribe_token_round_trip_and_tamper() -> None:
    token = unsubscribe_token(SECRET, "7:C42")
    assert read_unsubscribe_token(SECRET, token) == "7:C42"
    assert read_unsubscribe_token("another-secret-0123456789", token) is None
    forged = unsubscribe_token(SECRET, "7:C43").split(".")[0] + "." + token.split(".")[1]
    assert read_unsubscribe_token(SECRET, forged) is None
    assert read_unsubscribe_token(SECRET, "garbage!!") is None


def test_eml_written_atomically_and_named_by_message_id(tmp_path: Path) -> None:
    msg = make_message()
    path = write_eml(msg, tmp_path / "outbox")
    assert path == eml_path(tmp_path / "outbox", str(msg["Message-ID"]))
    assert path.name.endswith("@arsync.acme.example.eml") and "<" not in path.name
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == [path.name]  # no temp left
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == msg["Message-ID"]
    assert b"\r\n" in path.read_bytes()
    mailer = EmlMailer(tmp_path / "outbox")
    other = make_message("action:43")
    assert mailer.outcome(other) is False
    mailer.send(other)
    mailer.send(other)  # a resend overwrites the same file: still one message
    assert mailer.outcome(other) is True
    assert len(list((tmp_path / "outbox").iterdir())) == 2


def test_parse_smtp_url() -> None:
    cfg = parse_smtp_url("smtp://mailer:p%40ss%3Aw%2Frd%20%25@mail.example:2525?starttls=true")
    assert (cfg.host, cfg.port, cfg.starttls, cfg.implicit_tls) == ("mail.example", 2525, True,
                                                                    False)
    assert (cfg.username, cfg.password) == ("mailer", "p@ss:w/rd %")
    assert "p@ss" not in repr(cfg) and "p@ss" not in cfg.redacted()
    assert parse_smtp_url("smtps://h").port == 465
    assert parse_smtp_url("smtp://h?starttls=true").port == 587
    assert parse_smtp_url("smtp://h").port == 25
    assert parse_smtp_url("smtp://h?timeout=2.5").timeout == 2.5


@pytest.mark.parametrize("url", ["http://h", "smtp://", "smtp://u:hunter2@h:notaport",
                                 "smtps://u:hunter2@h?starttls=true", "smtp://h?tls=1",
                                 "smtp://h?starttls=maybe", "smtp://h?timeout=soon"])
def test_bad_smtp_urls_never_echo_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_smtp_url(url)
    assert "hunter2" not in str(info.value)
    assert "ARSYNC_SMTP_URL" in str(info.value)


def test_mailer_for_settings(tmp_path: Path) -> None:
    eml = mailer_for(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    assert isinstance(eml, EmlMailer) and eml.directory == tmp_path / "outbox"
    smtp = mailer_for(Settings(home=tmp_path, smtp_url="smtps://u:p@mail.example",
                               _env_file=None))  # type: ignore[call-arg]
    assert isinstance(smtp, SmtpMailer) and smtp.config.implicit_tls
    assert smtp.outcome(make_message()) is None  # SMTP keeps no receipt to ask after a crash
