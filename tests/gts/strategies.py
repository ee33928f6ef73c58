"""Hypothesis strategies for GTS models, shared by the gts tests."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from fanout.gts.model import LabelSelector, MetaLine, MultiValue, Reading, Selector

INT64 = st.integers(-(2**63), 2**63 - 1)
# Unicode text biased towards the characters the formats treat as structure.
STRUCTURAL = "{}=,%'~ \t+/:.#\\-_é€😀\x00\r"
texts = st.text(
    alphabet=st.one_of(st.sampled_from(STRUCTURAL), st.characters(codec="utf-8")), max_size=12
)
names = texts.filter(bool)
pairs = st.dictionaries(names, texts, max_size=4).map(lambda d: tuple(sorted(d.items())))
scalar_values = st.one_of(
    INT64,
    st.floats(),  # NaN too: the round trips compare repr()s
    st.booleans(),
    texts,
    st.binary(max_size=16),
)
positions = st.one_of(
    st.tuples(st.none(), st.none()),
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
)


def _multi(children: st.SearchStrategy) -> st.SearchStrategy:
    element = st.builds(
        lambda ts, pos, elev, v: (ts, pos[0], pos[1], elev, v),
        INT64, positions, st.none() | INT64, children)
    return st.builds(MultiValue, st.lists(element, max_size=4).map(tuple), st.booleans())


# Every value type, multi-values nested up to three levels.
values = st.recursive(scalar_values, _multi, max_leaves=8)


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


meta_lines = st.builds(MetaLine, cls=names, labels=pairs, attrs=pairs).filter(
    lambda m: not {k for k, _ in m.labels} & {k for k, _ in m.attrs}
    and not {".producer", ".owner", ".app"} & {k for k, _ in m.attrs})

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
