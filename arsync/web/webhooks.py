"""Webhook receivers (QuickBooks, Xero): verify, acknowledge fast, de-duplicate, queue a refresh.

Both providers want a quick 200 with an empty body (Xero: within 5 s, no cookies; Intuit: 3 s)
and retry otherwise. So the route verifies the signature over the raw body, stores the events
once, answers, and only then (a background task after the response) fetches the changed records.
A bad signature is 401 with nothing stored; that is also Xero's intent-to-receive check. A
signed body we cannot parse is acknowledged and logged: an error would only be retried forever.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from arsync import webhooks
from arsync.context import AppContext
from arsync.errors import ArsyncError, InputError, WebhookSignatureError
from arsync.web.deps import get_ctx

log = logging.getLogger(__name__)

router = APIRouter()

SIGNATURE_HEADERS = {"quickbooks": "intuit-signature", "xero": "x-xero-signature"}


def _process(ctx: AppContext) -> None:
    try:
        webhooks.process_webhook_events(ctx)
    except ArsyncError as exc:  # the scheduler's job picks the events up again
        log.warning("webhook processing after acknowledgement failed: %s", exc)


@router.post("/webhooks/sms")
async def receive_sms(request: Request) -> Response:
    """Twilio's inbound-SMS webhook: STOP/START replies opt a number out of (back into) SMS.

    Twilio signs the exact URL it called, so the URL checked is ``ARSYNC_PUBLIC_URL`` plus the
    path and query (behind a proxy the app's own URL would differ). Answers an empty TwiML
    ``<Response/>``: Twilio itself confirms STOP/START to the person.
    """
    from arsync import sms

    ctx = get_ctx(request)
    form = await request.form()
    params: dict[str, str | list[str]] = {}
    for name in form:
        values = [str(v) for v in form.getlist(name)]
        params[name] = values[0] if len(values) == 1 else values
    url = ctx.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    fields = {k: v if isinstance(v, str) else v[0] for k, v in params.items()}
    try:
        await run_in_threadpool(sms.verify_signature, ctx.settings, url, params,
                                request.headers.get("x-twilio-signature"))
        result = await run_in_threadpool(sms.receive_inbound_verified, ctx, fields)
    except WebhookSignatureError as exc:
        log.warning("inbound SMS refused: %s", exc)
        return Response(status_code=403)
    except InputError as exc:
        log.warning("inbound SMS not understood: %s", exc)
        return Response(status_code=400)
    log.info("inbound SMS: %s", result.action)
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', status_code=200,
                    media_type="application/xml")


@router.post("/webhooks/{provider}")
async def receive_webhook(request: Request, provider: str,
                          background: BackgroundTasks) -> Response:
    """Verify and store one delivery, answer at once, refresh the changed records after."""
    header = SIGNATURE_HEADERS.get(provider)
    if header is None:
        raise HTTPException(status_code=404)
    ctx = get_ctx(request)
    body = await request.body()
    try:
        new = await run_in_threadpool(webhooks.receive, ctx, provider, body,
                                      request.headers.get(header), ctx.clock.now())
    except WebhookSignatureError as exc:
        log.warning("%s webhook refused: %s", provider, exc)
        return Response(status_code=401)
    except InputError as exc:
        log.warning("%s webhook acknowledged but not understood: %s", provider, exc)
        return Response(status_code=200)
    if new:
        background.add_task(_process, ctx)
    return Response(status_code=200)
