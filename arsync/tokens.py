"""The token store: encrypted grants, refreshed by one worker at a time.

Both providers rotate refresh tokens, and a refresh token used twice can kill the grant
(QuickBooks may revoke the chain; Xero allows a retry only within 30 minutes). So:

1. A refresh is taken under a *lease* claimed with a conditional UPDATE on the credential row
   (zero rows updated = someone else is refreshing): this works across threads, processes and
   machines, on SQLite and PostgreSQL alike, without holding a database lock over the network call.
2. Whoever waits re-reads the row: when its ``version`` moved, the other worker's fresh token is
   used and no second refresh is made.
3. The rotated refresh token is written in the same transaction as the new access token.
4. ``invalid_grant`` marks the grant dead and every connection using it ``needs_reconnect`` with a
   clear reason: nothing retries a dead grant (no crash loop).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.clock import Clock
from arsync.crypto import Vault
from arsync.domain import TokenSet
from arsync.errors import AuthError, TransientError
from arsync.models import Connection, Credential
from connectors.base import OAuthClient

log = logging.getLogger(__name__)

#: Refresh when the access token has less than this left, so no request races its expiry.
EXPIRY_SKEW = timedelta(seconds=120)
LEASE = timedelta(seconds=30)


def new_credential(session: Session, *, provider: str, tokens: TokenSet, vault: Vault,
                   now: datetime) -> Credential:
    """Store a freshly obtained grant (encrypted) and return its row."""
    cred = Credential(
        provider=provider,
        access_token_enc=vault.encrypt(tokens.access_token),
        refresh_token_enc=vault.encrypt(tokens.refresh_token),
        access_expires_at=tokens.access_expires_at,
        refresh_expires_at=tokens.refresh_expires_at,
        scope=" ".join(tokens.scope),
        updated_at=now,
    )
    session.add(cred)
    session.flush()
    return cred


def mark_dead(session: Session, credential_id: int, reason: str, now: datetime) -> None:
    """A grant the provider refused: its connections need a person to reconnect."""
    session.execute(update(Credential).where(Credential.id == credential_id)  # type: ignore[arg-type]
                    .values(dead_reason=reason, refresh_lease_until=None,
                            refresh_lease_owner=None, updated_at=now))
    session.execute(update(Connection)
                    .where(Connection.credential_id == credential_id)  # type: ignore[arg-type]
                    .where(Connection.status == "active")  # type: ignore[arg-type]
                    .values(status="needs_reconnect", status_reason=reason))


class StoredTokens:
    """A :class:`~connectors.base.TokenSource` backed by one credential row."""

    def __init__(self, engine: Engine, vault: Vault, oauth: OAuthClient, credential_id: int,
                 clock: Clock, *, wait_limit: timedelta = timedelta(seconds=90)) -> None:
        self._engine = engine
        self._vault = vault
        self._oauth = oauth
        self._id = credential_id
        self._clock = clock
        self._owner = uuid.uuid4().hex
        self._wait_limit = wait_limit
        self.refreshes = 0  # refreshes this instance performed itself (tests, metrics)

    def _load(self) -> Credential:
        with Session(self._engine, expire_on_commit=False) as s:
            cred = s.get(Credential, self._id)
        if cred is None:
            raise AuthError(f"credential {self._id} no longer exists")
        if cred.dead_reason:
            raise AuthError(cred.dead_reason, provider=cred.provider)
        return cred

    def _usable(self, cred: Credential) -> bool:
        return cred.access_expires_at > self._clock.now() + EXPIRY_SKEW

    def access_token(self) -> str:
        cred = self._load()
        if self._usable(cred):
            return self._vault.decrypt(cred.access_token_enc)
        return self._refresh(cred.version)

    def refreshed_after(self, rejected: str) -> str:
        cred = self._load()
        current = self._vault.decrypt(cred.access_token_enc)
        if current != rejected and self._usable(cred):
            return current
        return self._refresh(cred.version)

    def _claim(self, seen_version: int) -> bool:
        now = self._clock.now()
        with self._engine.begin() as conn:
            result = conn.execute(
                update(Credential)
                .where(Credential.id == self._id)  # type: ignore[arg-type]
                .where(Credential.version == seen_version)  # type: ignore[arg-type]
                .where(Credential.dead_reason.is_(None))  # type: ignore[union-attr]
                .where((Credential.refresh_lease_until.is_(None))  # type: ignore[union-attr]
                       | (Credential.refresh_lease_until < now))  # type: ignore[operator]
                .values(refresh_lease_until=now + LEASE, refresh_lease_owner=self._owner))
            return result.rowcount == 1

    def _release(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(Credential)
                         .where(Credential.id == self._id)  # type: ignore[arg-type]
                         .where(Credential.refresh_lease_owner == self._owner)  # type: ignore[arg-type]
                         .values(refresh_lease_until=None, refresh_lease_owner=None))

    def _refresh(self, seen_version: int) -> str:
        waited = 0.0
        while not self._claim(seen_version):
            cred = self._load()  # raises AuthError if the other refresher found the grant dead
            if cred.version != seen_version:
                return self._vault.decrypt(cred.access_token_enc)  # someone refreshed for us
            if waited >= self._wait_limit.total_seconds():
                raise TransientError("timed out waiting for another worker's token refresh")
            self._clock.sleep(0.05)
            waited += 0.05

        cred = self._load()
        old_refresh = self._vault.decrypt(cred.refresh_token_enc)
        try:
            tokens = self._oauth.refresh(old_refresh)
        except AuthError as exc:
            now = self._clock.now()
            reason = (f"{cred.provider} refused the refresh token ({exc}); "
                      "reconnect the company to restore access")
            with Session(self._engine) as s:
                mark_dead(s, self._id, reason, now)
                s.commit()
            log.error("credential %s is dead: %s", self._id, exc)
            raise AuthError(reason, provider=cred.provider) from exc
        except BaseException:
            self._release()
            raise

        now = self._clock.now()
        with self._engine.begin() as conn:
            result = conn.execute(
                update(Credential)
                .where(Credential.id == self._id)  # type: ignore[arg-type]
                # Not conditioned on still holding the lease: the provider has rotated the grant
                # already, so unless someone else *completed* a refresh, ours must be kept.
                .where(Credential.version == cred.version)  # type: ignore[arg-type]
                .values(access_token_enc=self._vault.encrypt(tokens.access_token),
                        refresh_token_enc=self._vault.encrypt(tokens.refresh_token),
                        previous_refresh_token_enc=cred.refresh_token_enc,
                        access_expires_at=tokens.access_expires_at,
                        refresh_expires_at=tokens.refresh_expires_at,
                        scope=" ".join(tokens.scope) or cred.scope,
                        rotated_at=now, version=Credential.version + 1,
                        refresh_lease_until=None, refresh_lease_owner=None, updated_at=now))
            if result.rowcount != 1:
                log.warning("token refresh for credential %s raced another; kept theirs", self._id)
        self.refreshes += 1
        return tokens.access_token
