"""`stock sync` runs the garbage collector less often while it works, and puts it back."""

from __future__ import annotations

import gc

import pytest

from stock.sync import YOUNG_OBJECTS, _fewer_collections


def test_collections_are_rarer_during_a_sync_and_restored_after_it() -> None:
    before = gc.get_threshold()
    with _fewer_collections():
        assert gc.get_threshold() == (max(before[0], YOUNG_OBJECTS), *before[1:])
    assert gc.get_threshold() == before


def test_the_setting_is_restored_when_a_sync_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), _fewer_collections():
        raise RuntimeError("feed server down")
    assert gc.get_threshold() == before
