"""A replicated record's readings arrive as columns (fanout.gts.canonical); every store
must apply them exactly as it applies the same readings as a list."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout.gts import format_update, parse_update
from fanout.gts.canonical import CanonicalReadings, parse_canonical
from fanout.store import Entry, Update

from ..gts.test_canonical import fast_readings
from .util import KINDS, fetch, make_store, rd

# Few series and timestamps, so readings overwrite each other (the last one wins).
series_readings = st.builds(
    lambda r, ts, cls, host: r.__class__(ts, None, None, None, cls, (("host", host),),
                                         r.value),
    fast_readings, st.integers(0, 5), st.sampled_from(["a", "b"]), st.sampled_from(["1", "2"]))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(series_readings, min_size=1, max_size=8), min_size=1, max_size=3))
def test_columns_apply_as_the_list(kind: str, bodies: list[list]) -> None:
    with tempfile.TemporaryDirectory() as d:
        fast, slow = make_store(kind, Path(d) / "fast"), make_store(kind, Path(d) / "slow")
        try:
            fast.apply([Entry("o", 1, Update([rd(0, "a", 1.5, (("host", "1"),))]))], 1)
            slow.apply([Entry("o", 1, Update([rd(0, "a", 1.5, (("host", "1"),))]))], 1)
            for oseq, rs in enumerate(bodies, 2):
                text = format_update(rs)
                cols = parse_canonical(text)
                assert isinstance(cols, CanonicalReadings)
                fast.apply([Entry("o", oseq, Update(cols))], oseq)
                slow.apply([Entry("o", oseq, Update(parse_update(text, 0)))], oseq)
                assert fetch(fast) == fetch(slow)
            assert fetch(fast)  # not vacuous: something was written
        finally:
            fast.close()
            slow.close()
