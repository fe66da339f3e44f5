"""The one settings object, read from ``ARSYNC_*`` environment variables and ``./.env``.

Nothing else in arsync reads the environment. Use :func:`get_settings`; tests build
:class:`Settings` directly or clear the cache.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from arsync.errors import ConfigError

PLACEHOLDERS = {"changethis", "changeme", "secret", "password"}


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every knob arsync has; the names are the scripted contract (``ARSYNC_`` + upper case)."""

    model_config = SettingsConfigDict(env_prefix="ARSYNC_", env_file=".env",
                                      env_ignore_empty=True, extra="ignore")

    home: Path = Path(".arsync")
    database_url: str | None = None
    secret_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    demo: bool = False

    quickbooks_client_id: str | None = None
    quickbooks_client_secret: SecretStr | None = None
    quickbooks_api_url: str = "https://quickbooks.api.intuit.com"
    quickbooks_auth_url: str = "https://appcenter.intuit.com/connect/oauth2"
    quickbooks_token_url: str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105
    quickbooks_revoke_url: str = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
    quickbooks_webhook_verifier: SecretStr | None = None
    #: Intuit retired minor versions below 75 on 1 Aug 2025.
    quickbooks_minor_version: int = Field(default=75, ge=75)

    xero_client_id: str | None = None
    xero_client_secret: SecretStr | None = None
    xero_api_url: str = "https://api.xero.com"
    xero_auth_url: str = "https://login.xero.com/identity/connect/authorize"
    xero_token_url: str = "https://identity.xero.com/connect/token"  # noqa: S105
    xero_revoke_url: str = "https://identity.xero.com/connect/revocation"
    xero_webhook_key: SecretStr | None = None
    #: Calls per organisation per day kept back for urgent work (notes, pre-send freshness).
    xero_day_reserve: int = Field(default=250, ge=0)

    smtp_url: str | None = None
    mail_from: str | None = None
    #: Reply-To for messages whose company has no email address of its own.
    mail_reply_to: str | None = None

    #: A Twilio-compatible Messages API (``/2010-04-01/Accounts/{sid}/Messages.json``).
    sms_api_url: str = "https://api.twilio.com"
    sms_account_sid: str | None = None
    sms_auth_token: SecretStr | None = None
    #: The sending number (E.164) or alphanumeric id; a ``MG...`` Messaging Service SID is
    #: sent as ``MessagingServiceSid`` instead of ``From``.
    sms_from: str | None = None

    #: A connection synced longer ago than this is synced again right before anything is sent.
    freshness_minutes: int = Field(default=15, ge=0)
    sync_interval_minutes: int = Field(default=5, ge=1)
    #: How long a worker may hold an action in ``sending``; after that it is recovered.
    send_lease_seconds: float = Field(default=300, gt=0)
    #: A temporary send failure (SMTP 4xx, network) is retried after a random delay up to
    #: base * 2^(attempt-1) seconds ("full jitter"), at most the cap; after ``send_max_attempts``
    #: tries the action fails with the last reason. Defaults: 7 retries within at most ~3 hours
    #: (~1.5 on average), inside one send window.
    send_retry_base_seconds: float = Field(default=120, gt=0)
    send_retry_cap_seconds: float = Field(default=3600, gt=0)
    send_max_attempts: int = Field(default=8, ge=1)
    #: How often the worker drains the outbox (messages due now are sent on this beat).
    drain_interval_seconds: int = Field(default=60, ge=1)
    #: How often the worker retries webhook events not yet processed (the web app processes
    #: each delivery right after acknowledging it; this is the safety net).
    webhook_interval_seconds: int = Field(default=30, ge=1)
    #: Refresh an access token this long before it expires, so no call races its expiry.
    token_refresh_ahead_minutes: int = Field(default=10, ge=0)

    #: Whether /signup may create organisations (turn off where users are added by the CLI).
    web_signup_enabled: bool = True
    #: A web session unused this long ends; one older than the maximum ends however used.
    web_session_idle_minutes: int = Field(default=120, ge=1)
    web_session_max_hours: int = Field(default=24, ge=1)
    #: Sign-in throttling: this many failures within the window lock the email (the per-IP
    #: limit is higher, since an office shares one address) until the oldest failure ages out.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)

    @field_validator("quickbooks_api_url", "quickbooks_auth_url", "quickbooks_token_url",
                     "quickbooks_revoke_url", "xero_api_url", "xero_auth_url", "xero_token_url",
                     "xero_revoke_url", "sms_api_url")
    @classmethod
    def _https_unless_loopback(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme == "https" or (scheme == "http" and is_loopback_url(url)):
            return url.rstrip("/")
        raise ValueError(f"{url!r}: provider URLs must be https:// (http:// only for loopback)")

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        for name in ("secret_key", "quickbooks_client_secret", "xero_client_secret",
                     "sms_auth_token"):
            value = getattr(self, name)
            if value is not None and value.get_secret_value().lower() in PLACEHOLDERS:
                raise ValueError(f"ARSYNC_{name.upper()} is a placeholder; set a real value")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'arsync.db').resolve()}"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    def require_secret_key(self) -> str:
        """The key that encrypts tokens; in demo mode one is generated and kept in the home."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if len(key) < 16:
                raise ConfigError("ARSYNC_SECRET_KEY must be at least 16 characters long")
            return key
        if not self.demo:
            raise ConfigError(
                "ARSYNC_SECRET_KEY is not set: it encrypts tokens at rest. Generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.")
        keyfile = self.home / "demo-secret.key"
        if not keyfile.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            keyfile.write_text(secrets.token_urlsafe(32))
            keyfile.chmod(0o600)
        return keyfile.read_text().strip()

    def allow_loopback_oauth(self) -> None:
        """Let oauthlib speak plain HTTP, which it refuses by default.

        Only called after validation has proven every provider URL https:// or loopback, so the
        relaxation can never apply to a remote host arsync talks to.
        """
        urls = [self.quickbooks_api_url, self.quickbooks_token_url, self.xero_api_url,
                self.xero_token_url]
        if any(urlsplit(u).scheme == "http" for u in urls):
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; ``get_settings.cache_clear()`` re-reads)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad variable, e.g. ``ARSYNC_XERO_API_URL: must be https://``."""
    parts = []
    for err in exc.errors():
        loc = "_".join(str(p) for p in err["loc"]).upper()
        name = f"ARSYNC_{loc}" if loc else "settings"
        parts.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
