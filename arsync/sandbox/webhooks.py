"""The sandboxes send webhooks as the real services do: signed POSTs after data changes.

A sender watches its sandbox's books and, after a change (the sandbox calls :meth:`notify`, or
:meth:`flush` is called directly), POSTs what changed since it last looked to one endpoint:

* **QuickBooks** (:class:`QuickBooksWebhooks`): one ``eventNotifications`` entry per realm
  (legacy format, the default) or a CloudEvents array of at most 100 events
  (``cloudevents=True``), signed ``intuit-signature`` = base64(HMAC-SHA256(verifier, body)).
  Only realms connected to the app (a live refresh token) are reported, as Intuit does.
* **Xero** (:class:`XeroWebhooks`): ``{"events": [...], "firstEventSequence",
  "lastEventSequence", "entropy"}`` signed ``x-xero-signature``. Registering first runs the
  intent-to-receive check (a correctly signed empty delivery must get 200 and an incorrectly
  signed one 401); until it passes nothing is delivered. Only organisations connected to the app
  are reported; payments have no events of their own (the invoice's UPDATE covers them).

Changes are found by comparing each record's last-updated instant with what the sender saw
before (records that existed when the sender started are not announced). A delivery answered
with anything but 2xx is kept and retried on the next round, in order, as both services retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import string
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from arsync.sandbox.quickbooks import QuickBooksSandbox
    from arsync.sandbox.xero import XeroSandbox

log = logging.getLogger(__name__)

#: QuickBooks entities a webhook subscription covers here (the app picks them in the portal).
QBO_ENTITIES = ("Customer", "Invoice", "Payment", "CreditMemo")
CLOUDEVENTS_PER_POST = 100  # Intuit: at most 100 events per delivery
TIMEOUT = 10  # seconds; both services give up on a slow endpoint


def sign(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), the signature both services send."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Delivery:
    """One POST the sender made, and the endpoint's answer (0: unreachable)."""

    body: bytes
    headers: dict[str, str]
    status: int
    response_body: bytes = b""


class _Sender:
    """Delivery plumbing shared by both services: queue, retry, background thread."""

    signature_header = ""
    content_type = "application/json"

    def __init__(self, url: str, secret: str, *, background: bool) -> None:
        self.url = url
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self._queue: deque[bytes] = deque()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks",
                                            daemon=True)
            self._thread.start()

    # -- what the sandbox and tests call --------------------------------------------------------

    def notify(self) -> None:
        """Something changed: the background thread looks soon (no-op without one)."""
        self._wake.set()

    def flush(self) -> int:
        """Find changes, queue them, and deliver the queue; returns deliveries accepted."""
        with self._lock:
            for body in self._scan():
                self._queue.append(body)
            accepted = 0
            while self._queue:
                status = self._post(self._queue[0], self._sign(self._queue[0]))
                if not 200 <= status < 300:
                    break  # kept, in order, for the next round
                self._queue.popleft()
                accepted += 1
            return accepted

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT + 5)

    @property
    def undelivered(self) -> int:
        return len(self._queue)

    # -- internals ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # a sandbox thread must never die of one bad round
                log.exception("sandbox webhook round failed")

    def _sign(self, body: bytes, *, secret: str | None = None) -> dict[str, str]:
        return {"Content-Type": self.content_type,
                self.signature_header: sign(self.secret if secret is None else secret, body)}

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            resp = requests.post(self.url, data=body, headers=headers, timeout=TIMEOUT,
                                 allow_redirects=False)
            status, content = resp.status_code, resp.content
        except requests.RequestException as exc:
            log.info("sandbox webhook to %s failed: %s", self.url, exc)
            status, content = 0, b""
        self.deliveries.append(Delivery(body, headers, status, content))
        return status

    def _scan(self) -> list[bytes]:
        raise NotImplementedError


def _diff(seen: dict[Any, Any], current: dict[Any, Any]) -> list[tuple[Any, str]]:
    """(key, "created"|"updated") for what is new or newer than ``seen``; updates ``seen``."""
    changes = []
    for key, stamp in current.items():
        before = seen.get(key)
        if before is None:
            changes.append((key, "created"))
        elif stamp != before:
            changes.append((key, "updated"))
        seen[key] = stamp
    return changes


class QuickBooksWebhooks(_Sender):
    """Intuit's webhooks for a :class:`~arsync.sandbox.quickbooks.QuickBooksSandbox`."""

    signature_header = "intuit-signature"

    def __init__(self, sandbox: QuickBooksSandbox, url: str, verifier: str, *,
                 cloudevents: bool = False, background: bool = True) -> None:
        self.sandbox = sandbox
        self.cloudevents = cloudevents
        self.content_type = "application/cloudevents+json" if cloudevents else "application/json"
        self._seen: dict[str, dict[tuple[str, str], Any]] = {}
        self._gone: dict[str, dict[tuple[str, str], Any]] = {}
        for realm in list(sandbox.companies):
            self._look(realm)  # what exists now is not news
        super().__init__(url, verifier, background=background)

    def _look(self, realm: str) -> list[tuple[str, str, str, float]]:
        """(entity, id, operation, when) changed in ``realm`` since the last look."""
        co = self.sandbox.companies[realm]
        with co.lock:
            # SyncToken too: two writes within one clock instant must both count as changes.
            live = {(e, i): (t, co.objects[e].get(i, {}).get("SyncToken"))
                    for e in QBO_ENTITIES for i, t in co.updated[e].items()}
            dead = {(e, i): t for e in QBO_ENTITIES for i, t in co.tombstones[e].items()}
            first = realm not in self._seen
            seen = self._seen.setdefault(realm, {})
            gone = self._gone.setdefault(realm, {})
            found = []
            for (entity, id_), kind in _diff(seen, live):
                op = "Create" if kind == "created" else "Update"
                obj = co.objects[entity].get(id_) or {}
                if (op == "Update" and entity in ("Invoice", "Payment")
                        and str(obj.get("PrivateNote") or "").startswith("Voided")
                        and Decimal(str(obj.get("TotalAmt") or 0)) == 0):
                    op = "Void"
                found.append((entity, id_, op, live[(entity, id_)][0]))
            for (entity, id_), _kind in _diff(gone, dead):
                seen.pop((entity, id_), None)
                found.append((entity, id_, "Delete", dead[(entity, id_)]))
        return [] if first else found

    def _scan(self) -> list[bytes]:
        connected = self.sandbox.oauth.connected_realms()
        per_realm = {}
        for realm in list(self.sandbox.companies):
            changes = self._look(realm)
            if changes and realm in connected:  # Intuit notifies connected companies only
                per_realm[realm] = changes
        if not per_realm:
            return []
        if self.cloudevents:
            events = [self._cloudevent(realm, *c) for realm, cs in per_realm.items() for c in cs]
            return [json.dumps(events[i:i + CLOUDEVENTS_PER_POST]).encode()
                    for i in range(0, len(events), CLOUDEVENTS_PER_POST)]
        notes = [{"realmId": realm, "dataChangeEvent": {"entities": [
            {"name": entity, "id": id_, "operation": op, "lastUpdated": _iso(when)}
            for entity, id_, op, when in changes]}} for realm, changes in per_realm.items()]
        return [json.dumps({"eventNotifications": notes}, separators=(",", ":")).encode()]

    @staticmethod
    def _cloudevent(realm: str, entity: str, id_: str, op: str, when: float) -> dict[str, Any]:
        verb = {"Create": "created", "Update": "updated", "Delete": "deleted",
                "Void": "voided"}[op]
        return {"specversion": "1.0", "id": str(uuid.uuid4()),
                "source": "intuit." + base64.b64encode(hashlib.sha256(realm.encode()).digest())
                .decode(),
                "type": f"qbo.{entity.lower()}.{verb}.v1", "datacontenttype": "application/json",
                "time": _iso(when), "intuitentityid": id_, "intuitaccountid": realm, "data": {}}


class XeroWebhooks(_Sender):
    """Xero's webhooks for a :class:`~arsync.sandbox.xero.XeroSandbox`."""

    signature_header = "x-xero-signature"

    def __init__(self, sandbox: XeroSandbox, url: str, key: str, *,
                 background: bool = True) -> None:
        self.sandbox = sandbox
        self._seen: dict[str, dict[tuple[str, str], Any]] = {}
        self._versions: dict[str, int] = {}
        self._sequence = 0
        for tenant in list(sandbox._orgs):
            self._look(tenant)
        super().__init__(url, key, background=False)
        self.intent_to_receive_ok = self.intent_to_receive()
        if background and self.intent_to_receive_ok:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks",
                                            daemon=True)
            self._thread.start()

    def intent_to_receive(self) -> bool:
        """Xero's registration check: 200 for a good signature, 401 for a bad one, empty body."""
        body = self._envelope([])
        good = self._post(body, self._sign(body))
        good_body = self.deliveries[-1].response_body
        bad = self._post(body, self._sign(body, secret=secrets.token_urlsafe(24)))
        ok = good == 200 and not good_body and bad == 401
        if not ok:
            log.warning("Xero intent to receive failed for %s (good: %s, bad: %s)", self.url,
                        good, bad)
        return ok

    def flush(self) -> int:
        if not self.intent_to_receive_ok:  # Xero sends nothing to an unverified endpoint
            return 0
        return super().flush()

    def _envelope(self, events: list[dict[str, Any]]) -> bytes:
        first = self._sequence + 1 if events else 0
        self._sequence += len(events)
        entropy = "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))
        return json.dumps({"events": events, "firstEventSequence": first,
                           "lastEventSequence": self._sequence if events else 0,
                           "entropy": entropy}, separators=(",", ":")).encode()

    def _look(self, tenant: str) -> list[dict[str, Any]]:
        with self.sandbox._lock:
            org = self.sandbox._orgs[tenant]
            first = tenant not in self._seen
            if not first and self._versions.get(tenant) == org.version:
                return []
            self._versions[tenant] = org.version
            records: dict[tuple[str, str], Any] = {}
            for inv in org.invoices.values():
                records[("INVOICE", inv.invoice_id)] = inv
            for contact in org.contacts.values():
                records[("CONTACT", contact.contact_id)] = contact
            for note in org.credit_notes.values():
                records[("CREDITNOTE", note.credit_note_id)] = note
            # More than the timestamp: several changes within one clock instant all count.
            current = {k: _xero_stamp(r) for k, r in records.items()}
            changes = _diff(self._seen.setdefault(tenant, {}), current)
            events = []
            for (category, rid), kind in changes:
                record = records[(category, rid)]
                plural = {"INVOICE": "Invoices", "CONTACT": "Contacts",
                          "CREDITNOTE": "CreditNotes"}[category]
                event: dict[str, Any] = {
                    "resourceUrl": f"https://api.xero.com/api.xro/2.0/{plural}/{rid}",
                    "resourceId": rid, "tenantId": tenant, "tenantType": "ORGANISATION",
                    "eventCategory": category,
                    "eventType": "CREATE" if kind == "created" else "UPDATE",
                    "eventDateUtc": record.updated.astimezone(UTC).strftime(
                        "%Y-%m-%dT%H:%M:%S.%f")[:-3]}
                if category == "CREDITNOTE":
                    event["data"] = {"Type": record.type, "Status": record.status}
                events.append(event)
        return [] if first else events

    def _scan(self) -> list[bytes]:
        connected = self.sandbox.identity.connected_tenants()
        events = []
        for tenant in list(self.sandbox._orgs):
            found = self._look(tenant)
            if tenant in connected:  # only organisations connected to the app
                events += found
        return [self._envelope(events)] if events else []


def _iso(epoch: float) -> str:
    """``2025-09-08T20:52:31.657Z``: the instant, UTC, milliseconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _xero_stamp(record: Any) -> tuple[Any, ...]:
    """What makes a Xero record "changed": its timestamp plus the fields a change moves."""
    fields = ("status", "amount_due", "amount_paid", "amount_credited", "due_date", "total",
              "allocations", "payment_ids", "name", "email")
    return (record.updated, *(getattr(record, f, None) for f in fields))
