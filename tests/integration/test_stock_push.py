"""`push_changed` at more than one batch, against a channel that records what it is sent: every
quantity pushed ends up as last pushed and in the inventory log, however the writes are grouped
(they run on a thread of their own while the pushing goes on), and a failure half-way keeps what
went before it and the listings looked up so far. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import insert, select

from app.channels.base import ChannelApiError, InventoryApi, Listing, QuantityChange, SetResult
from app.db import Database, upgrade
from app.models import ChannelListing, InventoryLog
from app.types import new_id, utcnow
from stock import levels
from stock.availability import ChannelRule
from stock.levels import StockRules, push_changed

CHANNEL = "shopify"
LOCATION = "gid://shopify/Location/24826418"
SKUS = [f"GS-SEED-{n:03d}" for n in range(600)]
RULES = StockRules(default=ChannelRule(buffer=1))


class RecordingChannel(InventoryApi):
    """A shop listing every SKU but those ending in 7; it keeps what it is sent, and can fail
    one set request the way Shopify's transport does after its retries."""

    def __init__(self, *, fail_set: int | None = None) -> None:
        self.held: dict[str, int] = {}
        self.looked_up: list[str] = []
        self.sets = 0
        self.fail_set = fail_set

    def lookup_listings(self, skus: Sequence[str], *,
                        location_id: str | None = None) -> dict[str, Listing]:
        self.looked_up.extend(skus)
        return {sku: Listing(sku, f"gid://shopify/InventoryItem/{sku[-3:]}", LOCATION)
                for sku in skus if not sku.endswith("7")}

    def set_quantities(self, changes: Sequence[QuantityChange], *, reason: str = "correction",
                       reference: str | None = None, idempotency_key: str) -> SetResult:
        self.sets += 1
        if self.sets == self.fail_set:
            raise ChannelApiError("Shopify answered OrderHubInventorySet with HTTP 503",
                                  retryable=True)
        self.held.update((c.listing.sku, c.quantity) for c in changes)
        return SetResult(applied=tuple(c.listing.sku for c in changes))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


def push(db: Database, api: InventoryApi, totals: dict[str, int]) -> levels.PushReport:
    return push_changed(db, channel=CHANNEL, api=api, rules=RULES, skus=None,
                        reason="stock sync", run="run-1", now=utcnow(), totals=totals)


def recorded(db: Database) -> tuple[dict[str, int | None], dict[str, list[int | None]]]:
    """Per SKU: last pushed on the channel's listing, and the `after` of its log rows."""
    with db.read_session() as s:
        listings = dict(s.execute(select(ChannelListing.sku, ChannelListing.last_pushed)
                                  .where(ChannelListing.channel == CHANNEL)).tuples().all())
        entries: dict[str, list[int | None]] = {}
        for sku, after in s.execute(select(InventoryLog.sku, InventoryLog.after)).tuples():
            entries.setdefault(sku, []).append(after)
    return listings, entries


def test_every_quantity_pushed_is_recorded_whatever_the_grouping(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(levels, "RECORD_ROWS", 300)   # 3 batches of 250, written 2 at a time
    api = RecordingChannel()
    totals = {sku: n % 40 for n, sku in enumerate(SKUS)}

    report = push(db, api, totals)

    listed = [sku for sku in SKUS if not sku.endswith("7")]
    assert api.sets == 3
    assert api.held == {sku: max(0, totals[sku] - 1) for sku in listed}
    assert (report.pushed, report.not_listed, report.errors) == (len(listed), 60, [])
    last_pushed, log = recorded(db)
    assert last_pushed == api.held
    assert log == {sku: [quantity] for sku, quantity in api.held.items()}
    with db.read_session() as s:
        refs = s.execute(select(ChannelListing.refs).where(
            ChannelListing.sku == "GS-SEED-123")).scalar_one()
    assert refs == {"inventory_item_id": "gid://shopify/InventoryItem/123",
                    "location_id": LOCATION}

    again = push(db, api, totals)
    assert (again.changed, api.sets) == (0, 3)   # nothing new to send, nothing looked up


def test_a_failed_batch_keeps_what_went_before_it_and_the_listings_found(
        db: Database) -> None:
    totals = {sku: 10 for sku in SKUS}
    with pytest.raises(ChannelApiError):   # the 2nd set comes after the last lookup
        push(db, RecordingChannel(fail_set=2), totals)

    last_pushed, log = recorded(db)
    listed = [sku for sku in SKUS if not sku.endswith("7")]
    assert set(last_pushed) == set(listed)   # every listing found was kept
    assert sorted(log) == listed[:250] and all(last_pushed[s] == 9 for s in listed[:250])
    assert all(last_pushed[s] is None for s in listed[250:])

    api = RecordingChannel()
    retry = push(db, api, totals)
    assert retry.pushed == len(listed) - 250
    assert set(api.held) == set(listed[250:])
    assert recorded(db)[0] == dict.fromkeys(listed, 9)


def test_a_failure_before_the_last_lookup_keeps_the_listings_looked_up(db: Database) -> None:
    """SKUs are looked up a batch at a time as the pushing goes: the first set fails once 500
    of the 600 SKUs are looked up; the next run looks up only the other 100 (and those not
    listed)."""
    totals = {sku: 10 for sku in SKUS}
    failing = RecordingChannel(fail_set=1)
    with pytest.raises(ChannelApiError):
        push(db, failing, totals)

    assert failing.looked_up == SKUS[:500]
    last_pushed, log = recorded(db)
    listed = [sku for sku in SKUS if not sku.endswith("7")]
    assert last_pushed == dict.fromkeys(listed[:450]) and log == {}

    api = RecordingChannel()
    retry = push(db, api, totals)
    # (a SKU the channel does not list is looked up again on every run)
    assert api.looked_up == [s for s in SKUS[:500] if s.endswith("7")] + SKUS[500:]
    assert (retry.pushed, retry.not_listed) == (len(listed), 60)
    assert recorded(db)[0] == dict.fromkeys(listed, 9)


def test_a_skus_own_settings_and_manual_quantity_win_over_the_channel_rule(
        db: Database) -> None:
    """Most SKUs share the channel's rule (its result is reused for equal stock); a SKU's own
    buffer or an operator's manual quantity is still its own."""
    skus = ["GS-SEED-001", "GS-SEED-002", "GS-SEED-003", "GS-SEED-004"]
    with db.session() as s:
        s.execute(insert(ChannelListing), [{
            "id": new_id(), "channel": CHANNEL, "sku": sku, "updated_at": utcnow(),
            "refs": {"inventory_item_id": f"gid://shopify/InventoryItem/{sku[-3:]}",
                     "location_id": LOCATION},
            "buffer": 5 if sku == "GS-SEED-002" else None,
            "manual_quantity": 2 if sku == "GS-SEED-003" else None} for sku in skus])
        s.commit()
    api = RecordingChannel()

    report = push(db, api, dict.fromkeys(skus, 20))

    assert api.held == {"GS-SEED-001": 19, "GS-SEED-002": 15, "GS-SEED-003": 2,
                        "GS-SEED-004": 19}
    assert (report.pushed, api.looked_up) == (4, [])


def test_a_listing_added_meanwhile_is_completed_not_added_twice(db: Database) -> None:
    """A sale's job may add a SKU's listing between the sync's read and its write."""

    class SaleMeanwhile(RecordingChannel):
        def lookup_listings(self, skus: Sequence[str], *,
                            location_id: str | None = None) -> dict[str, Listing]:
            if "GS-SEED-001" in skus:
                with db.session() as s:
                    s.execute(insert(ChannelListing), [{
                        "id": new_id(), "channel": CHANNEL, "sku": "GS-SEED-001",
                        "refs": {"inventory_item_id": "gid://shopify/InventoryItem/001",
                                 "location_id": LOCATION}, "updated_at": utcnow()}])
                    s.commit()
            return super().lookup_listings(skus, location_id=location_id)

    api = SaleMeanwhile()
    report = push(db, api, {"GS-SEED-001": 5, "GS-SEED-002": 6})

    assert report.pushed == 2
    assert recorded(db) == ({"GS-SEED-001": 4, "GS-SEED-002": 5},
                            {"GS-SEED-001": [4], "GS-SEED-002": [5]})
