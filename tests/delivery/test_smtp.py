"""Real SMTP: a local aiosmtpd server receives the bytes; refusals are classified."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from arsync.mailer import (
    DeliveryOutcomeUnknownError,
    PermanentDeliveryError,
    SmtpConfig,
    SmtpMailer,
    TemporaryDeliveryError,
    build_email,
    parse_smtp_url,
)
from arsync.render import render
from arsync.render_links import unsubscribe_urls
from tests.delivery.conftest import SmtpServer, free_port, make_ctx

NOW = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def message(key: str = "conn1:cust9:overdue_7:2026-03-16", n: int = 3) -> EmailMessage:
    rendered = render("email", "overdue_7", make_ctx(n, currencies=("USD", "EUR"),
                                                     amount="1234.56"))
    return build_email(rendered, idempotency_key=key, mail_from="reminders@acme.example",
                       to="ap@globex.example", reply_to="ar@acme.example", now=NOW,
                       list_unsubscribe=unsubscribe_urls(
                           public_url="https://ar.acme.example", secret="k" * 32,
                           customer_ref="1:cust9"))


def received(server: SmtpServer) -> list[EmailMessage]:
    return [email.message_from_bytes(env.original_content or b"", policy=email.policy.default)
            for env in server.handler.received]  # type: ignore[misc]


def smtp(port: int, query: str = "", userinfo: str = "", scheme: str = "smtp") -> SmtpConfig:
    return parse_smtp_url(f"{scheme}://{userinfo}127.0.0.1:{port}{query}")


def test_plain_delivery_bytes(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp(smtp_server.port, "?timeout=5"))
    first, again, other = message(), message(), message("conn1:cust9:overdue_14:2026-03-23")
    for m in (first, again, other):
        mailer.send(m)
    envelopes = smtp_server.handler.received
    assert [e.mail_from for e in envelopes] == ["reminders@acme.example"] * 3
    assert envelopes[0].rcpt_tos == ["ap@globex.example"]
    got = received(smtp_server)
    assert got[0]["Message-ID"] == got[1]["Message-ID"] != got[2]["Message-ID"]
    assert got[0]["Message-ID"].endswith("@arsync.acme.example>")
    assert got[0]["Reply-To"] == "ar@acme.example"
    assert got[0]["From"] == "reminders@acme.example" and got[0]["To"] == "ap@globex.example"
    # the long header is folded; receivers unfold it (RFC 5322), so compare stripped
    assert got[0]["List-Unsubscribe"].strip().startswith("<https://ar.acme.example/unsubscribe/")
    assert got[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = got[0].iter_parts()
    body = text.get_content()
    assert "Invoice INV-1, due Mar 15, 2026 (1 day overdue): $1,234.56" in body
    assert "Invoice INV-2, due Mar 14, 2026 (2 days overdue): €1,234.56" in body
    assert "Total due in USD: $2,469.12" in body and "Total due in EUR: €1,234.56" in body
    assert "<td>INV-3</td>" in html.get_content() and "$2,469.12" in html.get_content()


def test_dot_lines_survive_transport(smtp_server: SmtpServer) -> None:
    m = message()
    text_part = next(iter(m.iter_parts()))
    text_part.set_content(".\n.hidden\nend\n", cte="7bit")
    SmtpMailer(smtp(smtp_server.port)).send(m)
    body = next(iter(received(smtp_server)[0].iter_parts())).get_content()
    assert body.replace("\r\n", "\n") == ".\n.hidden\nend\n"


def test_starttls_with_auth(smtp_server_factory: Callable[..., SmtpServer],
                            server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    server = smtp_server_factory(tls_context=server_tls, require_starttls=True, auth=True)
    cfg = smtp(server.port, "?starttls=true", "mailer:p%40ss%3Aw%2Frd%20%25@")
    SmtpMailer(cfg, ssl_context=client_tls).send(message())
    assert server.handler.logins == [(b"mailer", b"p@ss:w/rd %")]
    assert len(received(server)) == 1


def test_wrong_password_is_temporary_and_not_logged(
        smtp_server_factory: Callable[..., SmtpServer], server_tls: ssl.SSLContext,
        client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture) -> None:
    server = smtp_server_factory(tls_context=server_tls, require_starttls=True, auth=True)
    cfg = smtp(server.port, "?starttls=true&timeout=5", "mailer:hunter2@")
    with pytest.raises(TemporaryDeliveryError, match="authentication failed") as info:
        SmtpMailer(cfg, ssl_context=client_tls).send(message())
    assert info.value.code == 535
    assert "hunter2" not in str(info.value) and "hunter2" not in caplog.text
    assert server.handler.received == []


def test_untrusted_certificate_is_temporary(smtp_server_factory: Callable[..., SmtpServer],
                                            server_tls: ssl.SSLContext) -> None:
    server = smtp_server_factory(tls_context=server_tls, require_starttls=True)
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        SmtpMailer(smtp(server.port, "?starttls=true")).send(message())  # system CAs only


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(smtp_server_factory: Callable[..., SmtpServer],
                      server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    # aiosmtpd only counts STARTTLS as TLS, so let it offer AUTH on the implicit-TLS socket
    server = smtp_server_factory(ssl_context=server_tls, auth=True, auth_require_tls=False)
    cfg = smtp(server.port, userinfo="mailer:p%40ss%3Aw%2Frd%20%25@", scheme="smtps")
    SmtpMailer(cfg, ssl_context=client_tls).send(message())
    assert len(received(server)) == 1


def test_mailbox_unavailable_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "550 5.1.1 <ap@globex.example>: mailbox unavailable"
    with pytest.raises(PermanentDeliveryError, match="mailbox unavailable") as info:
        SmtpMailer(smtp(smtp_server.port)).send(message())
    assert info.value.code == 550 and info.value.permanent and not info.value.retryable


def test_553_on_data_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_reply = "553 5.7.1 message rejected"
    with pytest.raises(PermanentDeliveryError) as info:
        SmtpMailer(smtp(smtp_server.port)).send(message())
    assert info.value.code == 553


def test_greylisting_is_temporary(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_reply = "451 4.7.1 greylisted, try again later"
    with pytest.raises(TemporaryDeliveryError, match="greylisted") as info:
        SmtpMailer(smtp(smtp_server.port)).send(message())
    assert info.value.code == 451 and info.value.retryable


def test_connection_refused_is_temporary() -> None:
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        SmtpMailer(smtp(free_port())).send(message())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    yield int(sock.getsockname()[1])
    sock.close()


def test_timeout_is_temporary(silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(TemporaryDeliveryError, match="timed out"):
        SmtpMailer(smtp(silent_server, "?timeout=0.3")).send(message())
    assert time.monotonic() - started < 3


@pytest.fixture
def dropping_server() -> Iterator[int]:
    """Speaks SMTP up to the message body, then hangs up without a verdict."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def serve() -> None:
        conn, _ = sock.accept()
        with conn, conn.makefile("rb") as rfile:
            conn.sendall(b"220 hi\r\n")
            for line in rfile:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO", b"MAIL", b"RCPT"):
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                elif line == b".\r\n":
                    return  # the body is in; drop the line before answering

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    thread.join(timeout=5)
    sock.close()


def test_drop_after_body_is_outcome_unknown(dropping_server: int) -> None:
    with pytest.raises(DeliveryOutcomeUnknownError, match="may have been delivered") as info:
        SmtpMailer(smtp(dropping_server, "?timeout=5")).send(message())
    assert not info.value.retryable and not info.value.permanent
