"""A QuickBooks sandbox on a loopback port, and an arsync wired to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Connection
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox

REALM = "9341453050298464"


@dataclass
class QBOWorld:
    sandbox: QuickBooksSandbox
    url: str
    clock: SimClock
    ctx: AppContext
    settings: Settings

    def connect(self) -> Connection:
        [conn] = connect_with_refresh_token(self.ctx, "quickbooks",
                                            self.sandbox.mint_refresh_token(REALM),
                                            tenant_id=REALM)
        return conn


def qbo_settings(url: str, home: Path, **extra: object) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="s" * 32,  # type: ignore[call-arg]
                    quickbooks_client_id="sandbox-qbo-client",
                    quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=url,
                    quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer",
                    quickbooks_revoke_url=f"{url}/oauth2/v1/tokens/revoke",
                    quickbooks_auth_url=f"{url}/connect/oauth2", **extra)


@pytest.fixture
def qbo(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[QBOWorld]:
    """A seeded company (small by default; ``@pytest.mark.parametrize`` can't size it, so
    tests needing more data call ``sandbox.add_company`` themselves)."""
    clock = SimClock(datetime(2026, 11, 20, 15, 0, tzinfo=UTC))
    sandbox = QuickBooksSandbox(clock=clock)
    sandbox.add_company(REALM, name="Sandbox Landscaping", customers=40, invoices=400, seed=3)
    with SandboxServer(sandbox) as server:
        settings = qbo_settings(server.url, tmp_path)
        yield QBOWorld(sandbox, server.url, clock, AppContext(settings, clock=clock), settings)
