"""Shared Hypothesis settings and strategies for the fuzz tier.

Every test is derandomized (the same examples on every run, so CI is reproducible) with a
fixed `max_examples`, and no per-example deadline (the machine is shared and slow at times).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz(max_examples: int) -> Any:
    """Settings for one fuzz test: reproducible, bounded, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


#: Scalars of every kind a DAG file or a JSON document might hold, edge values included.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", " ", "512m", "1g", "-1", "0", "@daily", "0 6 * * 1-5", "host", "{{"]),
)

#: JSON-like values, nested a little.
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
