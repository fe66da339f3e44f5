"""Delivery fixtures: message contexts, a self-signed certificate, real local SMTP servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from arsync.render_context import CompanyCtx, CustomerCtx, EventCtx, InvoiceLine, MessageContext

TODAY = dt.date(2026, 3, 16)


def make_ctx(n: int = 3, *, currencies: tuple[str, ...] = ("USD",), locale: str = "en_US",
             pay_links: bool = True, portal: bool = True, tone: str = "firm",
             customer: str = "Globex Corporation", company_email: str | None = "ar@acme.example",
             company_phone: str | None = "+1 555 0100", note: bool = False,
             amount: str = "1250.00") -> MessageContext:
    """A customer with ``n`` overdue invoices (INV-1..n), cycling through ``currencies``."""
    invoices = tuple(
        InvoiceLine(number=f"INV-{i}", currency=currencies[(i - 1) % len(currencies)],
                    amount=Decimal(amount), balance=Decimal(amount),
                    due_date=TODAY - dt.timedelta(days=i), days_overdue=i,
                    pay_url=f"https://pay.example/inv-{i}" if pay_links else None)
        for i in range(1, n + 1))
    return MessageContext(
        company=CompanyCtx("Acme Supplies", company_email, company_phone, "en_US"),
        customer=CustomerCtx(customer, locale), invoices=invoices, today=TODAY,
        stage="overdue_7", tone=tone,
        pay_portal_url="https://ar.acme.example/p/tok" if portal else None,
        event=EventCtx(on=TODAY, channel="email", recipient="ap@globex.example") if note
        else None)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


@pytest.fixture(scope="session")
def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts only the test's own certificate."""
    return ssl.create_default_context(cafile=str(tls_files[0]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it accepts and can answer with canned refusals."""

    received: list[Envelope] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append(envelope)
        return "250 2.0.0 Message accepted for delivery"

    def authenticate(self, server: Any, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            ok = auth_data.login == b"mailer" and auth_data.password == b"p@ss:w/rd %"
            # handled=False: aiosmtpd then answers 535 itself (True would leave the client hanging)
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)


@dataclass
class SmtpServer:
    handler: Recorder
    port: int


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpServer]]:
    """Start aiosmtpd servers on 127.0.0.1 (random ports); all stopped after the test."""
    started: list[Controller] = []

    def start(**kwargs: Any) -> SmtpServer:
        handler = Recorder()
        if kwargs.pop("auth", False):
            kwargs.update(authenticator=handler.authenticate, auth_required=True)
            kwargs.setdefault("auth_require_tls", True)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return SmtpServer(handler, port)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    return smtp_server_factory()
