"""The retry schedule and the circuit breaker: pure arithmetic, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.breaker import CircuitBreaker
from app.outbox import RetryPolicy

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_first_retry_comes_within_a_minute() -> None:
    policy = RetryPolicy()
    assert policy.delay(1, rand=lambda: 0.0) == 30.0
    assert policy.delay(1, rand=lambda: 0.999) < 60.0


def test_waits_double_and_are_capped_at_an_hour() -> None:
    policy = RetryPolicy()
    tops = [policy.delay(n, rand=lambda: 1.0) for n in range(1, 10)]
    assert tops[:6] == [60, 120, 240, 480, 960, 1920]
    assert tops[6:] == [3600, 3600, 3600]
    assert RetryPolicy(base_seconds=5, cap_seconds=20).delay(50, rand=lambda: 1.0) == 20


def test_jitter_spreads_jobs_that_failed_together() -> None:
    draws = iter((0.0, 0.25, 0.5, 0.75))
    waits = {RetryPolicy().delay(3, rand=lambda: next(draws)) for _ in range(4)}
    assert len(waits) == 4 and min(waits) >= 120 and max(waits) <= 240


def test_a_day_of_retries_is_about_thirty_attempts() -> None:
    policy, spent, attempts = RetryPolicy(), 0.0, 0
    while spent < policy.give_up_after.total_seconds():
        attempts += 1
        spent += policy.delay(attempts, rand=lambda: 0.5)
    assert 20 <= attempts <= 40


def test_breaker_opens_after_failures_in_a_row_and_backs_off() -> None:
    breaker = CircuitBreaker(failures=3, cooldown=30, cap=100)
    assert breaker.record_failure("agriest", T0) is None
    assert breaker.record_failure("agriest", T0) is None
    assert breaker.record_failure("agriest", T0) == T0 + timedelta(seconds=30)
    assert breaker.open_lanes(T0 + timedelta(seconds=29)) == {"agriest"}
    assert breaker.open_lanes(T0 + timedelta(seconds=30)) == set()
    assert breaker.record_failure("agriest", T0) == T0 + timedelta(seconds=60)
    assert breaker.record_failure("agriest", T0) == T0 + timedelta(seconds=100)  # capped


def test_breaker_is_per_lane_and_closes_on_success() -> None:
    breaker = CircuitBreaker(failures=1, cooldown=30)
    breaker.record_failure("agriest", T0)
    assert breaker.open_lanes(T0) == {"agriest"}
    breaker.record_success("agriest")
    assert breaker.open_lanes(T0) == set()
    assert breaker.record_failure("greensoil", T0) is not None
    assert breaker.open_lanes(T0) == {"greensoil"}
