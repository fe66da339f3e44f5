"""The provider-neutral connector interface that QuickBooks and Xero both implement.

Two halves: an :class:`OAuthClient` per provider app (authorize, exchange, refresh, revoke,
list the companies a grant reaches) and a :class:`Connector` per connected company (read the
company, stream the books as :class:`~arsync.domain.SyncPage` s). Only arsync's own value types
cross this line; SDK objects stay inside each connector's ``mapping`` module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import ClassVar, Protocol

from arsync.domain import CompanyInfo, Entity, SyncPage, Tenant, TokenSet


class TokenSource(Protocol):
    """Hands a connector a valid access token; refreshing is the token store's job."""

    def access_token(self) -> str:
        """Return an access token valid for at least a minute, refreshing it if needed.

        Raises:
            AuthError: the grant is dead; the connection needs a person to reconnect.
        """
        ...

    def refreshed_after(self, rejected: str) -> str:
        """Return a token other than ``rejected`` (which the provider answered 401 to).

        If another worker already refreshed, its token is returned without a second refresh.
        """
        ...


class OAuthClient(Protocol):
    """One provider app's OAuth 2.0 endpoints."""

    provider: ClassVar[str]

    def authorization_url(self, *, redirect_uri: str, state: str,
                          code_challenge: str | None = None) -> str:
        """The provider's consent page URL for the authorization-code flow."""
        ...

    def exchange_code(self, *, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        """Trade an authorization code for tokens."""
        ...

    def refresh(self, refresh_token: str) -> TokenSet:
        """Trade a refresh token for a new token set (the provider may rotate the refresh token).

        Raises:
            AuthError: ``invalid_grant`` — the refresh token is used, expired or revoked.
            TransientError: the token endpoint is unavailable; the same token may be retried.
        """
        ...

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant at the provider."""
        ...

    def list_tenants(self, access_token: str, *, realm_id: str | None = None) -> list[Tenant]:
        """The companies this grant reaches (QuickBooks: the one realm; Xero: /connections)."""
        ...


class Connector(Protocol):
    """Reads one connected company's books."""

    provider: ClassVar[str]
    api_calls: int

    def fetch_company(self) -> CompanyInfo:
        """Name, home currency, country and IANA time zone of the company."""
        ...

    def sync(self, cursors: Mapping[Entity, datetime | None], *, full: bool) -> Iterator[SyncPage]:
        """Stream the changes since ``cursors`` (everything when ``full``) as pages to apply.

        Pages must be applied in order; a page's ``cursor`` may be persisted with it, so a sync
        interrupted at any point resumes without losing or duplicating anything.
        """
        ...
