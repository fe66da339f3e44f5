"""Web accounts: organisations, users, memberships, sessions and login throttling.

Tenancy is one rule: a user sees a connection only through an ``org_connections`` row of the
organisation their session is currently in. Tables here are registered by the import at the
bottom of :mod:`arsync.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from arsync.models import _when

ROLES = ("owner", "staff", "accountant")


class Organisation(SQLModel, table=True):
    """A business using arsync (or, for an accountant, one client company's team)."""

    __tablename__ = "organisations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_when(nullable=False))


class User(SQLModel, table=True):
    """A person who signs in; ``email`` is stored lower-cased so it is unique however typed."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254)
    #: ``scrypt$n$r$p$salt$hash`` (base64); the parameters travel with the hash.
    password_hash: str
    created_at: datetime = Field(sa_column=_when(nullable=False))
    last_login_at: datetime | None = Field(default=None, sa_column=_when())


class Membership(SQLModel, table=True):
    """A user's role in one organisation; an accountant may have several."""

    __tablename__ = "memberships"

    user_id: int = Field(foreign_key="users.id", primary_key=True)
    org_id: int = Field(foreign_key="organisations.id", primary_key=True)
    role: str = Field(max_length=20)  # owner|staff|accountant
    created_at: datetime = Field(sa_column=_when(nullable=False))


class OrgConnection(SQLModel, table=True):
    """Which organisation may see which connection (granted by the connect flow)."""

    __tablename__ = "org_connections"

    org_id: int = Field(foreign_key="organisations.id", primary_key=True)
    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    created_at: datetime = Field(sa_column=_when(nullable=False))


class WebSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the cookie's random id is stored, so a copy of
    the database does not hand out live sessions."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id")
    #: The organisation the user is looking at now (the org switcher changes it).
    org_id: int = Field(foreign_key="organisations.id")
    created_at: datetime = Field(sa_column=_when(nullable=False))
    last_seen_at: datetime = Field(sa_column=_when(nullable=False))
    #: Absolute expiry: the session ends then however active it is.
    expires_at: datetime = Field(sa_column=_when(nullable=False))


class LoginFailure(SQLModel, table=True):
    """One failed sign-in, counted per key (``email:…`` and ``ip:…``) over a sliding window."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key", "key", "failed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300)
    failed_at: datetime = Field(sa_column=_when(nullable=False))
