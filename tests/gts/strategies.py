"""Hypothesis strategies for GTS models, shared by the gts tests."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from fanout.gts.model import LabelSelector, MetaLine, Reading, Selector

INT64 = st.integers(-(2**63), 2**63 - 1)
# Unicode text biased towards the characters the formats treat as structure.
STRUCTURAL = "{}=,%'~ \t+/:.#\\-_é€😀\x00\r"
texts = st.text(
    alphabet=st.one_of(st.sampled_from(STRUCTURAL), st.characters(codec="utf-8")), max_size=12
)
names = texts.filter(bool)
pairs = st.dictionaries(names, texts, max_size=4).map(lambda d: tuple(sorted(d.items())))
values = st.one_of(
    INT64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    texts,
)
positions = st.one_of(
    st.tuples(st.none(), st.none()),
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    lat, lon = draw(positions)
    return Reading(
        ts=draw(INT64),
        lat=lat,
        lon=lon,
        elev=draw(st.none() | INT64),
        cls=draw(names),
        labels=draw(pairs),
        value=draw(values),
    )


meta_lines = st.builds(MetaLine, cls=names, labels=pairs, attrs=pairs)

regexes = st.one_of(
    st.sampled_from([".*", "web.*", "a|b", "[{}]x", "%", r"\d{2,3}", "(?i)Paris", ".+"]),
    names.map(re.escape),
)
label_selectors = st.one_of(
    st.builds(LabelSelector, name=names, op=st.just("="), pattern=texts),
    st.builds(LabelSelector, name=names, op=st.just("~"), pattern=regexes),
)


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    op = draw(st.sampled_from(["=", "~"]))
    pattern = draw(names if op == "=" else regexes)
    labels = draw(st.lists(label_selectors, max_size=4))
    labels.sort(key=lambda ls: (ls.name, ls.op, ls.pattern))
    return Selector(op, pattern, tuple(labels))
