"""A Xero sandbox on a loopback port with several organisations, and connectors wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.crypto import Vault
from arsync.db import make_engine, upgrade
from arsync.domain import Entity, Record, SyncPage
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.xero import XeroSandbox
from arsync.tokens import StoredTokens, new_credential
from connectors.xero.auth import XeroOAuth
from connectors.xero.budget import reset_budgets
from connectors.xero.connector import XeroConnector

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
CLIENT_ID, CLIENT_SECRET = "sandbox-xero-client", "sandbox-xero-secret"
NZ = "6f1b3a52-5d2e-4d0c-9b7a-0c1f2e3d4a51"
GB = "0b8e2c47-1f3a-4e6b-8d9c-2a3b4c5d6e72"
AU = "9c4d1e23-7a8b-4c5d-9e0f-1a2b3c4d5e93"
ORGS: dict[str, dict[str, Any]] = {
    NZ: {"name": "Kiwi Plumbing Ltd", "country": "NZ", "currency": "NZD",
         "timezone": "NEWZEALANDSTANDARDTIME", "contacts": 40, "invoices": 400, "seed": 11},
    GB: {"name": "Harbour Design Ltd", "country": "GB", "currency": "GBP",
         "timezone": "GMTSTANDARDTIME", "contacts": 30, "invoices": 300, "seed": 12},
    AU: {"name": "Summit Freight Pty", "country": "AU", "currency": "AUD",
         "timezone": "AUSEASTERNSTANDARDTIME", "contacts": 25, "invoices": 250, "seed": 13},
}


def xero_settings(url: str, home: Path, **extra: Any) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="s" * 32,  # type: ignore[call-arg]
                    xero_client_id=CLIENT_ID, xero_client_secret=CLIENT_SECRET,
                    xero_api_url=url, xero_token_url=f"{url}/connect/token",
                    xero_revoke_url=f"{url}/connect/revocation",
                    xero_auth_url=f"{url}/identity/connect/authorize", **extra)


@dataclass
class XeroWorld:
    sandbox: XeroSandbox
    url: str
    clock: SimClock
    settings: Settings
    engine: Engine
    vault: Vault = field(default_factory=lambda: Vault("x" * 32))

    @property
    def oauth(self) -> XeroOAuth:
        return XeroOAuth(self.settings, clock=self.clock)

    def grant(self, tenant_ids: Iterable[str] = tuple(ORGS)) -> int:
        """One consent covering ``tenant_ids``: refreshed once, stored; returns the credential."""
        tokens = self.oauth.refresh(self.sandbox.mint_refresh_token(list(tenant_ids)))
        with Session(self.engine) as s:
            cred = new_credential(s, provider="xero", tokens=tokens, vault=self.vault,
                                  now=self.clock.now())
            s.commit()
            assert cred.id is not None
            return cred.id

    def tokens(self, credential_id: int, oauth: Any = None) -> StoredTokens:
        return StoredTokens(self.engine, self.vault, oauth or self.oauth, credential_id,
                            self.clock)

    def connector(self, tenant_id: str, tokens: Any, **kw: Any) -> XeroConnector:
        return XeroConnector(self.settings, tenant_id=tenant_id, tokens=tokens, clock=self.clock,
                             **kw)


WorldFactory = Callable[..., XeroWorld]


@pytest.fixture(autouse=True)
def _fresh_budgets() -> Iterator[None]:
    reset_budgets()  # budgets are process-wide; each test talks to a new sandbox
    yield
    reset_budgets()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[WorldFactory]:
    """Build a sandbox with ``orgs`` (default: all three) and limits as asked, serve it."""
    servers: list[SandboxServer] = []
    engines: list[Engine] = []

    def build(orgs: Iterable[str] = tuple(ORGS), *, sizes: dict[str, dict[str, int]] | None = None,
              reserve: int = 250, **limits: Any) -> XeroWorld:
        clock = SimClock(T0)
        limits.setdefault("rate_limits", False)
        sandbox = XeroSandbox(clock=clock, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                              **limits)
        for tenant_id in orgs:
            sandbox.add_organisation(tenant_id, **{**ORGS[tenant_id],
                                                   **(sizes or {}).get(tenant_id, {})})
        server = SandboxServer(sandbox)
        server.start()
        servers.append(server)
        engine = make_engine(f"sqlite:///{tmp_path / f'x{len(engines)}.db'}")
        upgrade(engine)
        engines.append(engine)
        settings = xero_settings(server.url, tmp_path / "home", xero_day_reserve=reserve)
        return XeroWorld(sandbox, server.url, clock, settings, engine)

    yield build
    for server in servers:
        server.stop()
    for engine in engines:
        engine.dispose()


@pytest.fixture
def xero(make_world: WorldFactory) -> XeroWorld:
    """Three organisations, rate limits off."""
    return make_world()


def by_entity(pages: Iterable[SyncPage]) -> dict[Entity, dict[str, Record]]:
    """Records of a page stream keyed by entity and id (later pages win)."""
    out: dict[Entity, dict[str, Record]] = {e: {} for e in Entity}
    for page in pages:
        for record in page.records:
            out[page.entity][record.external_id] = record
    return out
