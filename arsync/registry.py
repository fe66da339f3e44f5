"""The providers arsync knows, imported on first use (a plain dict, as healthchecks does)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arsync.clock import Clock
    from arsync.config import Settings
    from connectors.base import Connector, OAuthClient, TokenSource

#: provider -> (OAuth client class, connector class), as "module:Class" strings.
PROVIDERS: dict[str, tuple[str, str]] = {
    "quickbooks": ("connectors.quickbooks.auth:QuickBooksOAuth",
                   "connectors.quickbooks.connector:QuickBooksConnector"),
    "xero": ("connectors.xero.auth:XeroOAuth", "connectors.xero.connector:XeroConnector"),
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def oauth_client(provider: str, settings: Settings, clock: Clock | None = None) -> OAuthClient:
    """The OAuth client of ``provider``'s app; token expiry times are read off ``clock``."""
    return _load(PROVIDERS[provider][0])(settings, clock)  # type: ignore[no-any-return]


def connector(provider: str, settings: Settings, *, tenant_id: str, tokens: TokenSource,
              clock: Clock) -> Connector:
    """A connector for one connected company."""
    cls = _load(PROVIDERS[provider][1])
    return cls(settings, tenant_id=tenant_id, tokens=tokens, clock=clock)  # type: ignore[no-any-return]
