"""The JSON the audit writer stores in jsonb columns (pure: no database)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from walletgate.storage.audit_rows import dumps_jsonb, jsonb_safe


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(alphabet=st.sampled_from(["\x00", "\\", "u", "0", "a", '"', "é"])),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(alphabet="\x00\\u0a", max_size=4), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_json_for_jsonb_is_what_the_careful_walk_would_write(value: Any) -> None:
    # dumps_jsonb lets the C encoder do the work and fixes NUL escapes in the text; it must
    # write exactly what walking the value with jsonb_safe first writes.
    reference = json.dumps(jsonb_safe(value), separators=(",", ":"), default=str, allow_nan=False)
    assert dumps_jsonb(value) == reference
    assert "\\u0000" not in reference.replace("\\\\", "")
