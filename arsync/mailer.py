"""Email out: build the MIME message, send it over SMTP, or write it as an ``.eml`` file.

Failures are classified once, here: a 5xx reply to MAIL, RCPT or DATA is permanent (the message
fails with the server's reason); a 4xx reply, a refused or dropped connection, a timeout, or a
setup problem (TLS, authentication: the operator's to fix) is temporary (retry with backoff).
When the connection dies after the message body went out, nobody can know whether it was
accepted: that raises :class:`DeliveryOutcomeUnknownError`, which must not be blindly retried.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from arsync.clock import Clock
from arsync.config import Settings
from arsync.errors import ArsyncError, ConfigError
from arsync.files import write_atomically
from arsync.message import (
    OutcomeUnknownError,
    OutgoingMessage,
    SendError,
    TransientSendError,
)
from arsync.render import RenderedEmail

log = logging.getLogger(__name__)

#: How messages are serialised: CRLF, and header lines up to RFC 5322's hard limit of 998. At the
#: default 78 the email package turns any longer word into an RFC 2047 encoded-word, which
#: mangles a long URL in ``List-Unsubscribe`` beyond what mail clients will parse.
WIRE = SMTP.clone(max_line_length=998)


class DeliveryError(ArsyncError):
    """Sending a message failed; ``code`` is the SMTP reply code when there was one."""

    permanent: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryDeliveryError(DeliveryError):
    """Nothing was delivered, and trying again later may work (4xx, network, timeout)."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """The server refused this message for good (5xx): mark it failed with the reason."""

    permanent = True


class DeliveryOutcomeUnknownError(DeliveryError):
    """The connection broke after the body was sent: it may or may not have been accepted."""


def sender_domain(mail_from: str) -> str:
    """The domain of ``mail_from``'s address, IDNA-encoded ("localhost" when there is none)."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2].strip().lower()
    try:
        return domain.encode("idna").decode("ascii") if domain else "localhost"
    except UnicodeError:
        return "localhost"


def message_id_for(idempotency_key: str, mail_from: str) -> str:
    """The same action always has the same Message-ID, so a resend is recognisably the same."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@arsync.{sender_domain(mail_from)}>"


def build_email(rendered: RenderedEmail, *, idempotency_key: str, mail_from: str, to: str,
                now: datetime, reply_to: str | None = None,
                list_unsubscribe: tuple[str, ...] = (),
                headers: Mapping[str, str] | None = None) -> EmailMessage:
    """A multipart/alternative (text, then HTML) message with stable, deliverable headers."""
    if now.tzinfo is None:
        raise ValueError("build_email needs a timezone-aware `now`")
    msg = EmailMessage()
    msg["Message-ID"] = message_id_for(idempotency_key, mail_from)
    msg["Date"] = format_datetime(now)
    msg["From"] = mail_from
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = rendered.subject
    # RFC 3834: out-of-office robots should not answer a reminder (people still can).
    msg["Auto-Submitted"] = "auto-generated"
    if list_unsubscribe:
        msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in list_unsubscribe)
        if any(u.startswith("https://") for u in list_unsubscribe):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    for name, value in (headers or {}).items():
        msg[name] = value
    # Quoted-printable keeps every line 7-bit, so no relay needs 8BITMIME to pass it intact.
    msg.set_content(rendered.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


class Mailer(Protocol):
    """Delivers built messages; the outbox's boundary for email."""

    def send(self, msg: EmailMessage) -> None:
        """Deliver, or raise Temporary/Permanent/OutcomeUnknown ``DeliveryError``."""

    def outcome(self, msg: EmailMessage) -> bool | None:
        """After a crash: True delivered, False certainly not, None unknowable."""


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+-]")


def eml_path(directory: Path, message_id: str) -> Path:
    """Where the ``.eml`` for ``message_id`` lives: one name per message, ever."""
    return directory / (_UNSAFE_FILENAME.sub("_", message_id.strip().strip("<>")) + ".eml")


def write_eml(msg: EmailMessage, directory: Path) -> Path:
    """Write ``msg`` atomically (temp, fsync, rename) so that "file exists" means "sent"."""
    return write_atomically(eml_path(directory, str(msg["Message-ID"])),
                            msg.as_bytes(policy=WIRE))


class EmlMailer:
    """The local outbox used when ``ARSYNC_SMTP_URL`` is unset.

    Each message is one file named after its Message-ID, written atomically: "the file exists"
    means "sent", and a resend overwrites the same name instead of adding a second message.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, msg: EmailMessage) -> None:
        path = write_eml(msg, self.directory)
        log.info("wrote %s to %s", msg["Message-ID"], path)

    def outcome(self, msg: EmailMessage) -> bool | None:
        return eml_path(self.directory, str(msg["Message-ID"])).exists()

    def sweep(self, older_than: float = 3600) -> int:
        """Delete partial files a crash left behind (older than ``older_than`` seconds)."""
        removed = 0
        if not self.directory.is_dir():
            return removed
        for part in self.directory.glob(".tmp-*.part"):
            try:
                if time.time() - part.stat().st_mtime > older_than:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect; the password never appears in a repr or a log line."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def redacted(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_smtp_url(url: str) -> SmtpConfig:
    """``smtp://user:pass@host:port?starttls=true&timeout=10`` or ``smtps://...`` (465)."""
    # Errors never quote the URL: it carries the password.
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("ARSYNC_SMTP_URL is not a valid URL (bad port?)") from exc
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("ARSYNC_SMTP_URL must look like smtp://user:pass@host:port "
                          "(or smtps:// for implicit TLS)")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"starttls", "timeout"}
    if unknown:
        raise ConfigError(f"ARSYNC_SMTP_URL: unknown option(s) {', '.join(sorted(unknown))}")
    flag = options.get("starttls", "false").lower()
    if flag not in _TRUE | _FALSE:
        raise ConfigError("ARSYNC_SMTP_URL: starttls must be true or false")
    starttls, implicit = flag in _TRUE, parts.scheme == "smtps"
    if starttls and implicit:
        raise ConfigError("ARSYNC_SMTP_URL: smtps:// is already TLS; drop ?starttls=true")
    try:
        timeout = float(options.get("timeout", "30"))
    except ValueError as exc:
        raise ConfigError("ARSYNC_SMTP_URL: timeout must be a number of seconds") from exc
    default_port = 465 if implicit else 587 if starttls else 25
    return SmtpConfig(host=parts.hostname, port=port or default_port, implicit_tls=implicit,
                      starttls=starttls,
                      username=unquote(parts.username) if parts.username else None,
                      password=unquote(parts.password) if parts.password is not None else None,
                      timeout=timeout)


def _classify(code: int, reply: bytes | str, what: str) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"{what} refused: {code} {text}".strip()
    if 500 <= code < 600:
        return PermanentDeliveryError(message, code=code)
    return TemporaryDeliveryError(message, code=code)


def _dot_stuff(data: bytes) -> bytes:
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


class SmtpMailer:
    """Sends over SMTP: plain, STARTTLS or implicit TLS, with AUTH when credentials are set."""

    def __init__(self, config: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None,
                 local_hostname: str | None = None) -> None:
        self.config = config
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.local_hostname = local_hostname

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        if cfg.implicit_tls:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, self.local_hostname,
                                                  timeout=cfg.timeout, context=self.ssl_context)
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, self.local_hostname, timeout=cfg.timeout)
        try:
            conn.ehlo()
            if cfg.starttls:
                if not conn.has_extn("starttls"):
                    raise TemporaryDeliveryError(f"{cfg.redacted()} does not offer STARTTLS")
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if cfg.username:
                conn.login(cfg.username, cfg.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, msg: EmailMessage) -> None:
        """Deliver ``msg`` to its To/Cc recipients; see the module docstring for failures."""
        sender = parseaddr(str(msg["From"]))[1]
        rcpts = [a for _, a in getaddresses([str(v) for v in msg.get_all("To", []) +
                                             msg.get_all("Cc", [])]) if a]
        if not rcpts:
            raise PermanentDeliveryError("the message has no recipient")
        data = _dot_stuff(msg.as_bytes(policy=WIRE))
        where = self.config.redacted()
        try:
            conn = self._connect()
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryDeliveryError(f"{where}: authentication failed ({exc.smtp_code}); "
                                         "check ARSYNC_SMTP_URL", code=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryDeliveryError(f"{where}: cannot connect: {_describe(exc)}") from exc
        try:
            self._transact(conn, sender, rcpts, data)
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()  # the verdict is already in; a failed QUIT changes nothing
        log.info("sent %s via %s", msg["Message-ID"], where)

    def outcome(self, msg: EmailMessage) -> bool | None:
        """SMTP keeps no receipt we could ask for: after a crash the outcome is unknowable."""
        return None

    def _transact(self, conn: smtplib.SMTP, sender: str, rcpts: list[str], data: bytes) -> None:
        try:
            code, reply = conn.mail(sender)
            if code != 250:
                raise _classify(code, reply, f"MAIL FROM:<{sender}>")
            for rcpt in rcpts:
                code, reply = conn.rcpt(rcpt)
                if code not in (250, 251):
                    raise _classify(code, reply, f"RCPT TO:<{rcpt}>")
            conn.putcmd("data")
            code, reply = conn.getreply()
            if code != 354:
                raise _classify(code, reply, "DATA")
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryDeliveryError(f"{self.config.redacted()}: {_describe(exc)}") from exc
        try:
            conn.send(data + b".\r\n")
            code, reply = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryOutcomeUnknownError(
                f"{self.config.redacted()}: connection lost after sending the message "
                f"({_describe(exc)}); it may have been delivered") from exc
        if code != 250:
            raise _classify(code, reply, "message")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return f"{exc.__class__.__name__}: {exc}"


def mailer_for(settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> Mailer:
    """SMTP when ``ARSYNC_SMTP_URL`` is set, else the ``.eml`` outbox in the data folder."""
    if settings.smtp_url:
        return SmtpMailer(parse_smtp_url(settings.smtp_url), ssl_context=ssl_context)
    return EmlMailer(settings.outbox_dir)


class MailerSender:
    """The outbox's email :class:`~arsync.message.Sender`: a :class:`Mailer` behind it.

    Builds the MIME message (:func:`build_email`; ``Date`` from the injected clock) and turns
    delivery errors into the channel-neutral ones the outbox acts on: permanent → SendError,
    temporary → TransientSendError, outcome unknown → OutcomeUnknownError.
    """

    def __init__(self, mailer: Mailer, clock: Clock) -> None:
        self.mailer = mailer
        self.clock = clock

    def build(self, message: OutgoingMessage) -> EmailMessage:
        extra = dict(message.headers)
        reply_to = extra.pop("Reply-To", None)
        unsubscribe = tuple(u.strip().strip("<>") for u in
                            extra.pop("List-Unsubscribe", "").split(",") if u.strip())
        if message.html is None:
            raise ValueError(f"action {message.action_id}: an email needs its HTML part")
        rendered = RenderedEmail(message.subject, message.html, message.body, (), "")
        msg = build_email(rendered, idempotency_key=message.idempotency_key,
                          mail_from=message.mail_from, to=message.recipient,
                          now=self.clock.now(), reply_to=reply_to,
                          list_unsubscribe=unsubscribe, headers=extra)
        if str(msg["Message-ID"]) != message.message_id:
            # The ledger stores the id it claimed with; the outcome check after a crash looks
            # for exactly that id, so the two must never differ.
            raise ValueError(f"action {message.action_id}: Message-ID mismatch")
        return msg

    def send(self, message: OutgoingMessage) -> None:
        msg = self.build(message)
        try:
            self.mailer.send(msg)
        except PermanentDeliveryError as exc:
            raise SendError(str(exc)) from exc
        except DeliveryOutcomeUnknownError as exc:
            raise OutcomeUnknownError(str(exc)) from exc
        except DeliveryError as exc:
            raise TransientSendError(str(exc)) from exc

    def outcome(self, message: OutgoingMessage) -> bool | None:
        probe = EmailMessage()
        probe["Message-ID"] = message.message_id
        return self.mailer.outcome(probe)

    def sweep(self) -> int:
        """Clear torn ``.eml`` writes (only the file outbox has any)."""
        return self.mailer.sweep() if isinstance(self.mailer, EmlMailer) else 0
