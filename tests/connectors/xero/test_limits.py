"""Xero's rate limits on a simulated clock: minute storms are waited out, the day defers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from arsync.domain import Entity, SyncPage
from arsync.errors import RateLimitedError
from tests.connectors.xero.conftest import NZ, T0, XeroWorld, by_entity

BIG = {NZ: {"invoices": 3000, "contacts": 120}}


def expected_ids(world: XeroWorld) -> dict[Entity, set[str]]:
    org = world.sandbox.organisation(NZ)
    return {
        Entity.CUSTOMERS: set(org.contacts),
        Entity.INVOICES: {i.invoice_id for i in org.invoices.values() if i.type == "ACCREC"},
        Entity.CREDIT_NOTES: {n.credit_note_id for n in org.credit_notes.values()},
        Entity.PAYMENTS: {p.payment_id for p in org.payments.values()
                          if p.payment_type != "ACCPAYPAYMENT"},
    }


def test_a_429_storm_ends_with_the_complete_page_stream(
        make_world: Callable[..., XeroWorld]) -> None:
    world = make_world([NZ], sizes=BIG, rate_limits=True, minute_limit=4)
    connector = world.connector(NZ, world.tokens(world.grant([NZ])))
    world.sandbox.inject_faults(429, 5, tenant_id=NZ)  # on top of the tiny minute limit
    pages = list(connector.sync({}, full=True))

    got = by_entity(pages)
    assert {e: set(r) for e, r in got.items()} == expected_ids(world)
    assert len(got[Entity.INVOICES]) > 2000  # several pages of 1000
    assert sum(p.full_listing_done for p in pages) == 4
    calls = world.sandbox.stats[NZ]["api_calls"]
    assert connector.api_calls == calls
    # The waits happened in simulated time: four calls a minute at most.
    accepted = calls - world.sandbox.stats[NZ]["throttled"] - world.sandbox.stats[NZ]["faults"]
    assert world.clock.now() - T0 >= timedelta(minutes=(accepted - 1) // 4)
    # After the first minute 429 the budget knows the limit: no train of 429s follows.
    assert world.sandbox.stats[NZ]["throttled"] <= 2


def drain_until_deferred(pages: Any) -> tuple[list[SyncPage], RateLimitedError | None]:
    done: list[SyncPage] = []
    try:
        for page in pages:
            done.append(page)
    except RateLimitedError as exc:
        return done, exc
    return done, None


def test_the_day_reserve_defers_sync_and_keeps_urgent_calls(
        make_world: Callable[..., XeroWorld]) -> None:
    world = make_world([NZ], sizes=BIG, rate_limits=True, day_limit=6, reserve=2)
    connector = world.connector(NZ, world.tokens(world.grant([NZ])))
    applied, deferred = drain_until_deferred(connector.sync({}, full=True))

    assert deferred is not None
    assert deferred.problem == "day"
    assert deferred.retry_after == pytest.approx(30 * 60)  # no reset time known: probe later
    assert world.sandbox.stats[NZ]["api_calls"] == 4  # 6 a day, 2 kept back
    assert [p.entity for p in applied][:1] == [Entity.CUSTOMERS]
    assert applied[0].full_listing_done
    assert world.clock.now() == T0  # nothing slept
    # notes and pre-send freshness checks may still spend the reserve
    assert connector.request_json("get_organisations", urgent=True)["Organisations"]
    with pytest.raises(RateLimitedError):
        list(connector.sync({}, full=True))


def test_a_day_429_defers_until_the_window_resets_then_resumes(
        make_world: Callable[..., XeroWorld]) -> None:
    world = make_world([NZ], sizes=BIG, rate_limits=True, day_limit=5, reserve=0)
    connector = world.connector(NZ, world.tokens(world.grant([NZ])))
    for _ in range(5):  # another app instance spends the whole day at T0
        assert world.sandbox.limits.acquire(NZ).allowed
        world.sandbox.limits.release(NZ)
    world.clock.advance(timedelta(hours=1))
    applied, deferred = drain_until_deferred(connector.sync({}, full=True))

    assert applied == []
    assert deferred is not None
    assert deferred.problem == "day"
    # Xero's Retry-After: the tenant's day started with its first call, an hour ago.
    assert deferred.retry_after == pytest.approx(23 * 3600, abs=2)
    assert world.clock.now() == T0 + timedelta(hours=1)  # urllib3 did not sleep through it

    world.clock.advance(timedelta(seconds=deferred.retry_after or 0))
    world.sandbox.limits.day_limit = 5000
    got = by_entity(connector.sync({}, full=True))
    assert {e: set(r) for e, r in got.items()} == expected_ids(world)
