"""Twilio's inbound-SMS webhook in the real app: STOP opts out, a forgery changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.sms import is_opted_out, twilio_signature
from arsync.web.app import create_app
from tests.factories import make_connection
from tests.web.conftest import NOW

SID, TOKEN = "AC" + "1" * 32, "t" * 32
PUBLIC = "https://ar.example.com"


@pytest.fixture
def sms_app(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, home=tmp_path / "home", secret_key="w" * 32,  # type: ignore[call-arg]
                        database_url=f"sqlite:///{tmp_path / 'web.db'}", public_url=PUBLIC,
                        sms_account_sid=SID, sms_auth_token=TOKEN, sms_from="+15005550006")
    ctx = AppContext(settings, clock=SimClock(NOW))
    make_connection(ctx.engine, country="US")  # a company that sends SMS
    yield ctx, TestClient(create_app(ctx))
    ctx.engine.dispose()


def _form(body: str) -> dict[str, str]:
    return {"AccountSid": SID, "From": "+14155552671", "To": "+15005550006", "Body": body,
            "MessageSid": "SM" + "2" * 32}


def _opted_out(ctx: AppContext) -> bool:
    from sqlmodel import Session

    with Session(ctx.engine) as s:
        return is_opted_out(s, "+14155552671")


def test_stop_and_start_through_the_app(sms_app) -> None:  # type: ignore[no-untyped-def]
    ctx, client = sms_app
    for word, expected in (("STOP", True), ("start", False)):
        form = _form(word)
        sig = twilio_signature(TOKEN, f"{PUBLIC}/webhooks/sms", form)
        response = client.post("/webhooks/sms", data=form, headers={"X-Twilio-Signature": sig})
        assert response.status_code == 200
        assert response.text.endswith("<Response/>")
        assert _opted_out(ctx) is expected


def test_a_forged_or_unsigned_stop_changes_nothing(sms_app) -> None:  # type: ignore[no-untyped-def]
    ctx, client = sms_app
    form = _form("STOP")
    wrong_url = twilio_signature(TOKEN, "http://testserver/webhooks/sms", form)
    for headers in ({}, {"X-Twilio-Signature": wrong_url},
                    {"X-Twilio-Signature": twilio_signature("x" * 32, f"{PUBLIC}/webhooks/sms",
                                                            form)}):
        assert client.post("/webhooks/sms", data=form, headers=headers).status_code == 403
    assert _opted_out(ctx) is False
