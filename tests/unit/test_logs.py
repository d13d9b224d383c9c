"""Log lines carry the ids of the work they belong to, as text or as JSON, and LOG_FORMAT and
the metrics settings are checked when the service starts."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.logs import JsonFormatter, StdoutHandler, TextFormatter, bind, bound

GOOD = {"SECRET_KEY": "a-long-enough-secret-key", "ORDERHUB_API_TOKEN": "a-long-enough-api-token"}


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, StdoutHandler]]:
    """A logger of its own writing through OrderHub's handler into a buffer."""
    stream = io.StringIO()
    handler = StdoutHandler()
    handler.setStream(stream)
    log = logging.getLogger(f"test.logs.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, stream, handler
    log.removeHandler(handler)


def test_text_lines_end_with_the_bound_ids(
        logger: tuple[logging.Logger, io.StringIO, StdoutHandler]) -> None:
    log, stream, handler = logger
    handler.setFormatter(TextFormatter())
    log.info("before")
    with bind(delivery_id="d-1"):
        with bind(order_id="o-2"):
            log.info("order %s stored", "#1042")
        log.info("back in the delivery")
    log.info("after")

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("INFO " + log.name + ": before")
    assert lines[1].endswith(": order #1042 stored [delivery=d-1 order=o-2]")
    assert lines[2].endswith(": back in the delivery [delivery=d-1]")
    assert lines[3].endswith(": after")
    assert bound() == {}


def test_json_lines_carry_the_ids_as_fields(
        logger: tuple[logging.Logger, io.StringIO, StdoutHandler]) -> None:
    log, stream, handler = logger
    handler.setFormatter(JsonFormatter())
    with bind(job_id="j-1", po_id="p-2"):
        log.warning("purchase order %s: %s", "PO-7", 'a "quoted"\nreason')
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    log.info("unbound")

    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == 'purchase order PO-7: a "quoted"\nreason'
    assert (first["level"], first["logger"]) == ("WARNING", log.name)
    assert (first["job_id"], first["po_id"]) == ("j-1", "p-2")
    assert "delivery_id" not in first and "order_id" not in first
    assert first["time"].endswith("+00:00")
    assert second["job_id"] == "j-1" and "ValueError: boom" in second["exception"]
    assert "job_id" not in third


def test_ids_stay_in_their_own_thread() -> None:
    seen: list[object] = []
    with bind(order_id="mine"):
        thread = threading.Thread(target=lambda: seen.append(dict(bound())))
        thread.start()
        thread.join()
        assert bound() == {"order_id": "mine"}
    assert seen == [{}]


def test_none_is_not_bound() -> None:
    with bind(delivery_id="d", order_id=None):
        assert bound() == {"delivery_id": "d"}


def test_log_format_is_checked() -> None:
    assert load_settings(GOOD).log_format == "text"
    assert load_settings({**GOOD, "LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "LOG_FORMAT": "yaml"})
    assert caught.value.name == "LOG_FORMAT" and "'yaml'" in str(caught.value)


def test_metrics_token_is_optional_but_not_short() -> None:
    assert load_settings(GOOD).metrics_token is None
    assert load_settings({**GOOD, "METRICS_TOKEN": "a-long-metrics-token"}).metrics_token == \
        "a-long-metrics-token"
    with pytest.raises(ConfigError, match="METRICS_TOKEN: too short"):
        load_settings({**GOOD, "METRICS_TOKEN": "short"})


def test_a_multiprocess_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR: .* is not a folder"):
        load_settings({**GOOD, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})
    load_settings({**GOOD, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
