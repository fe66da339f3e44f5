"""Users, organisations and who may see which connection; passwords and sign-in throttling.

Passwords are hashed with the standard library's ``hashlib.scrypt`` (n=2**14, r=8, p=1, a 16-byte
random salt, 32-byte key): a memory-hard KDF needing no extra dependency. The parameters are
stored with each hash so they can be raised later while old hashes still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlmodel import Session

from arsync.clock import SystemClock
from arsync.config import Settings
from arsync.errors import ArsyncError, InputError
from arsync.models import Connection
from arsync.models_web import ROLES, LoginFailure, Membership, Organisation, OrgConnection, User

SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, KEY_BYTES = 2**14, 8, 1, 16, 32
MIN_PASSWORD = 10
#: Verified against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH: str | None = None


class BadCredentialsError(InputError):
    """Wrong email or password (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("wrong email or password")


class LoginThrottledError(ArsyncError):
    """Too many failed sign-ins for this email or address; try again in ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} seconds")
        self.retry_after = retry_after


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         dklen=KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check against a stored ``scrypt$n$r$p$salt$key``."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email or len(email) > 254:
        raise InputError(f"{email!r} is not an email address")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must be at least {MIN_PASSWORD} characters long")


def create_user(session: Session, email: str, password: str, *, role: str = "owner",
                org_name: str | None = None, now: datetime | None = None) -> User:
    """Create a user and their membership in ``org_name`` (created when it does not exist;
    default: the email's domain).

    Flushes but does not commit: the caller's transaction decides. Raises :class:`InputError`
    for a taken email, a weak password or an unknown role.
    """
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    now = now or SystemClock().now()
    user = new_user(session, email, password, now=now)
    org = find_or_create_org(session, org_name or user.email.split("@", 1)[1], now=now)
    add_membership(session, user.id or 0, org.id or 0, role, now=now)
    return user


def new_user(session: Session, email: str, password: str, *, now: datetime) -> User:
    """A user row with no membership yet (flushed)."""
    email = normalise_email(email)
    check_password_strength(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise InputError(f"a user with email {email} already exists")
    user = User(email=email, password_hash=hash_password(password), created_at=now)
    session.add(user)
    session.flush()
    return user


def find_or_create_org(session: Session, name: str, *, now: datetime) -> Organisation:
    name = name.strip()
    if not name:
        raise InputError("the organisation needs a name")
    org = session.scalars(select(Organisation).where(Organisation.name == name)
                          .order_by(Organisation.id)).first()
    if org is None:
        org = Organisation(name=name, created_at=now)
        session.add(org)
        session.flush()
    return org


def add_membership(session: Session, user_id: int, org_id: int, role: str, *,
                   now: datetime) -> None:
    """Give a user (typically an accountant) a role in one more organisation."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if session.get(Membership, (user_id, org_id)) is None:
        session.add(Membership(user_id=user_id, org_id=org_id, role=role, created_at=now))
        session.flush()


def grant_connection(session: Session, org_id: int, connection_id: int, *,
                     now: datetime | None = None) -> None:
    """Let organisation ``org_id`` see connection ``connection_id`` (idempotent).

    The connect flow calls this after a successful OAuth callback.
    """
    if session.get(Organisation, org_id) is None:
        raise InputError(f"no organisation with id {org_id}")
    conn = session.get(Connection, connection_id)
    if conn is None:
        raise InputError(f"no connection with id {connection_id}")
    if session.get(OrgConnection, (org_id, connection_id)) is None:
        session.add(OrgConnection(org_id=org_id, connection_id=connection_id,
                                  created_at=now or conn.created_at))
        session.flush()


def memberships(session: Session, user_id: int) -> list[tuple[Organisation, str]]:
    """The organisations a user belongs to, with their role in each, by name."""
    rows = session.execute(select(Organisation, Membership.role)
                           .join(Membership, Membership.org_id == Organisation.id)
                           .where(Membership.user_id == user_id)
                           .order_by(Organisation.name, Organisation.id)).all()
    return [(org, role) for org, role in rows]


# -- sign-in ---------------------------------------------------------------------------------

def _throttle_keys(email: str, ip: str | None) -> dict[str, str]:
    keys = {"email": f"email:{email.strip().lower()}"}
    if ip:
        keys["ip"] = f"ip:{ip}"
    return keys


def _check_throttle(session: Session, keys: dict[str, str], settings: Settings,
                    now: datetime) -> None:
    window = timedelta(minutes=settings.login_window_minutes)
    limits = {"email": settings.login_max_failures, "ip": settings.login_max_failures_per_ip}
    waits = []
    for kind, key in keys.items():
        times = list(session.scalars(
            select(LoginFailure.failed_at).where(LoginFailure.key == key)
            .where(LoginFailure.failed_at > now - window).order_by(LoginFailure.failed_at.desc())
            .limit(limits[kind])))
        if len(times) >= limits[kind]:
            # Locked until the limit-th most recent failure leaves the window.
            waits.append(int((times[-1] + window - now).total_seconds()) + 1)
    if waits:
        raise LoginThrottledError(max(waits))


def authenticate(session: Session, email: str, password: str, *, ip: str | None,
                 settings: Settings, now: datetime) -> User:
    """The user with this email and password, or an error; failures are counted.

    Checked before the password: a throttled email or address is refused even with the right
    password, so guessing cannot continue. A success clears the email's failures (not the
    address's: one valid account must not let an attacker reset the per-address budget).
    Commits its own bookkeeping.
    """
    global _DUMMY_HASH
    keys = _throttle_keys(email, ip)
    _check_throttle(session, keys, settings, now)
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        verify_password(password, _DUMMY_HASH)
        ok = False
    else:
        ok = verify_password(password, user.password_hash)
    if not ok or user is None:
        for key in keys.values():
            session.add(LoginFailure(key=key, failed_at=now))
        # Old rows are useless once out of the window; prune so the table stays small.
        session.execute(delete(LoginFailure).where(
            LoginFailure.failed_at < now - timedelta(minutes=settings.login_window_minutes)))
        session.commit()
        raise BadCredentialsError()
    session.execute(delete(LoginFailure).where(LoginFailure.key == keys["email"]))
    user.last_login_at = now
    session.commit()
    return user


def failure_count(session: Session, key: str) -> int:
    """How many failures are on record for ``key`` (for tests and the CLI)."""
    return session.scalar(select(func.count()).select_from(LoginFailure)
                          .where(LoginFailure.key == key)) or 0
