"""The dispatcher leaves SQLite's write lock to the webhooks while deliveries pile up (`GiveWay`),
less so the longer deliveries wait, and never on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.db import Database, upgrade
from app.models import EventStatus, WebhookEvent
from app.pacing import GiveWay
from app.types import new_id, utcnow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:  # records the pause; time passes only when told
        self.slept.append(seconds)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


def received(db: Database, *ages_s: float, status: str = EventStatus.PENDING) -> None:
    """Store deliveries received `ages_s` seconds ago."""
    with db.session() as session:
        for age in ages_s:
            session.add(WebhookEvent(
                id=new_id(), channel="shopify", delivery_id=f"d-{new_id()}",
                topic="orders/create", account="shop.myshopify.com", raw_body=b"{}",
                status=status, received_at=utcnow() - timedelta(seconds=age), replays=0))
        session.commit()


def give_way(db: Database, clock: Clock, **kwargs: float) -> GiveWay:
    """Busy from one delivery waiting from the last 5 s on, unless told otherwise: the tests
    store a few, and a slow machine may take a while to look."""
    return GiveWay(db, sleep=clock.sleep, clock=clock,
                   **{"busy_per_s": 0.2, "window_s": 5.0, **kwargs})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_while_deliveries_arrive_the_dispatcher_holds_the_lock_its_share(db: Database) -> None:
    clock = Clock()
    received(db, 0.2, 0.1)
    pace = give_way(db, clock, share=0.25)
    # Held 2 ms at a quarter of the lock: 6 ms for the webhooks before the next write.
    assert pace.after_write(0.002) == pytest.approx(0.006)
    assert clock.slept == [pytest.approx(0.006)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pauses_of_several_threads_add_up(db: Database) -> None:
    clock = Clock()
    received(db, 0.1)
    pace = give_way(db, clock, share=0.5)
    # Two lanes finish a 1 ms write at the same moment: the second waits for the first's pause
    # too, so the dispatcher as a whole still holds the lock half of the time.
    assert pace.after_write(0.001) == pytest.approx(0.001)
    assert pace.after_write(0.001) == pytest.approx(0.002)
    clock.now += 1.0   # long after: nothing carried over
    assert pace.after_write(0.001) == pytest.approx(0.001)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_full_speed_when_nothing_arrives(db: Database) -> None:
    clock = Clock()
    pace = give_way(db, clock, share=0.1)
    assert pace.after_write(0.002) == 0.0          # nothing pending at all
    received(db, 15.0, 10.0)                         # a backlog, but the last came 10 s ago
    clock.now += 1.0
    assert pace.after_write(0.002) == 0.0
    received(db, 0.0, status=EventStatus.PROCESSED)  # applied already: not waiting
    clock.now += 1.0
    assert pace.after_write(0.002) == 0.0
    assert clock.slept == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_share_grows_as_deliveries_wait(db: Database) -> None:
    clock = Clock()
    received(db, 30.0, 0.1)   # the oldest has waited half of max_delay_s
    pace = give_way(db, clock, share=0.1, max_delay_s=60.0)
    assert pace.current_share() == pytest.approx(0.5, abs=0.01)
    assert pace.after_write(0.002) == pytest.approx(0.002, rel=0.05)

    received(db, 61.0)        # one waited longer than max_delay_s: all of the lock
    clock.now += 1.0
    assert pace.current_share() == 1.0
    assert pace.after_write(0.002) == 0.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_database_is_asked_at_most_every_check_interval(db: Database) -> None:
    clock = Clock()
    pace = give_way(db, clock, share=0.5, check_every_s=0.2)
    assert pace.after_write(0.001) == 0.0
    received(db, 0.0)
    clock.now += 0.1
    assert pace.after_write(0.001) == 0.0   # not looked again yet
    clock.now += 0.1
    assert pace.after_write(0.001) == pytest.approx(0.001)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_share_one_never_pauses(db: Database) -> None:
    clock = Clock()
    received(db, 0.0)
    assert give_way(db, clock, share=1.0).after_write(0.01) == 0.0
    with pytest.raises(ValueError, match="share"):
        GiveWay(db, share=0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_writers_never_wait_for_each_other(db: Database) -> None:
    clock = Clock()
    received(db, 0.0)
    assert give_way(db, clock, share=0.1).after_write(0.01) == 0.0
    assert clock.slept == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stream_slower_than_busy_per_s_gets_no_pause(db: Database) -> None:
    # 20 wait, from the last second: a dispatcher at full speed keeps up with that, and
    # webhooks hardly ever find the lock taken. From 50 a second on, it gives way.
    clock = Clock()
    received(db, *[0.02 * n for n in range(20)])
    pace = give_way(db, clock, share=0.5, busy_per_s=50.0, window_s=1.0)
    assert pace.after_write(0.001) == 0.0
    received(db, *[0.01 * n for n in range(60)])   # 80 in the last second
    clock.now += 1.0
    assert pace.after_write(0.001) == pytest.approx(0.001)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_deliveries_applied_as_they_arrive_do_not_make_the_web_busy(db: Database) -> None:
    # The dispatcher keeps up: what arrived is applied already, nothing waits.
    clock = Clock()
    received(db, *[0.01 * n for n in range(80)], status=EventStatus.PROCESSED)
    pace = give_way(db, clock, share=0.5, busy_per_s=50.0, window_s=1.0)
    assert pace.after_write(0.001) == 0.0
    assert clock.slept == []
