"""Server-side sessions and CSRF tokens.

A session cookie holds 32 random bytes (URL-safe base64); the database keeps only their SHA-256,
so a leaked database or log cannot be replayed as a cookie. Sessions end after
``web_session_idle_minutes`` unused or ``web_session_max_hours`` after sign-in, whichever comes
first; signing in always issues a fresh id (no fixation) and signing out deletes the row.

CSRF tokens are an HMAC of the session id under a key derived from ``ARSYNC_SECRET_KEY``, so a
token is bound to one session and needs no storage. Before sign-in (the login and signup forms,
the payer's page) the same HMAC is taken over a random value in a separate ``arsync_csrf``
cookie: a cross-site form cannot read that cookie, so it cannot produce the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session

from arsync.config import Settings
from arsync.models_web import Membership, WebSession

SESSION_COOKIE = "arsync_session"
CSRF_COOKIE = "arsync_csrf"
#: Writing ``last_seen_at`` on every request would make each page view a write; once a minute
#: is precise enough for an idle timeout counted in minutes.
TOUCH_EVERY = timedelta(seconds=60)


def hash_session_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def cookie_secure(settings: Settings) -> bool:
    """Cookies carry ``Secure`` whenever the app is served over https."""
    return settings.public_url.lower().startswith("https://")


def start_session(db: Session, *, user_id: int, org_id: int, settings: Settings, now: datetime,
                  replaces: str | None = None) -> str:
    """Create a session and return the raw id for the cookie; ``replaces`` (the raw id the
    browser had, if any) is deleted, so signing in rotates the id. Commits."""
    if replaces:
        db.execute(delete(WebSession).where(WebSession.id_hash == hash_session_id(replaces)))
    # Sessions nobody presents again are never loaded (and so never deleted there): sweep
    # the dead ones here, which keeps the table at about the number of live sessions.
    idle = timedelta(minutes=settings.web_session_idle_minutes)
    db.execute(delete(WebSession).where(
        (WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - idle)))
    raw = secrets.token_urlsafe(32)
    db.add(WebSession(id_hash=hash_session_id(raw), user_id=user_id, org_id=org_id,
                      created_at=now, last_seen_at=now,
                      expires_at=now + timedelta(hours=settings.web_session_max_hours)))
    db.commit()
    return raw


def load_session(db: Session, raw: str | None, *, settings: Settings,
                 now: datetime) -> WebSession | None:
    """The live session for a cookie value, or None (unknown, idle too long, too old, or the
    user no longer belongs to its organisation). Expired rows are deleted. Commits."""
    if not raw or len(raw) > 100:
        return None
    row = db.get(WebSession, hash_session_id(raw))
    if row is None:
        return None
    idle = timedelta(minutes=settings.web_session_idle_minutes)
    member = db.get(Membership, (row.user_id, row.org_id))
    if now >= row.expires_at or now - row.last_seen_at >= idle or member is None:
        db.delete(row)
        db.commit()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.commit()
    return row


def end_session(db: Session, raw: str | None) -> None:
    if raw:
        db.execute(delete(WebSession).where(WebSession.id_hash == hash_session_id(raw)))
        db.commit()


def _csrf_key(settings: Settings) -> bytes:
    return hmac.new(settings.require_secret_key().encode(), b"arsync web csrf v1",
                    hashlib.sha256).digest()


def csrf_token(settings: Settings, basis: str) -> str:
    """The CSRF token for a session id (``session:…``) or anonymous cookie (``anon:…``)."""
    return hmac.new(_csrf_key(settings), basis.encode(), hashlib.sha256).hexdigest()


def csrf_matches(settings: Settings, basis: str | None, token: str | None) -> bool:
    if not basis or not token:
        return False
    return hmac.compare_digest(csrf_token(settings, basis).encode(), token.encode())
