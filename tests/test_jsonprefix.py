"""The incremental JSON checker behind constrained decoding (fbrec.llm.jsonprefix)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fbrec.llm.jsonprefix import JsonPrefix

_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6)
                     | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=8)


def _kind(value) -> str | None:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value)) or (
        "number" if isinstance(value, int | float) else None)


@settings(max_examples=200, deadline=None)
@given(_json, st.booleans())
def test_every_json_value_is_accepted_whole_and_every_prefix_closes_to_json_of_its_kind(value, indent):
    text = json.dumps(value, indent=2 if indent else None)
    kind = _kind(value)
    checker = JsonPrefix(kind)
    for n, ch in enumerate(text):
        assert checker.feed(ch), f"refused {ch!r} at {n} of {text!r}"
        closed = text[: n + 1] + checker.closing()
        parsed = json.loads(closed)
        assert _kind(parsed) == kind or kind is None, (closed, kind)
    assert checker.can_end()


@pytest.mark.parametrize(("kind", "text", "refused_at"), [
    ("object", '"a"', 0),              # a string where an object is expected
    ("array", "{", 0),
    ("string", "[", 0),
    ("boolean", "null", 0),
    ("object", '{"a" 1', 5),           # no colon
    ("object", '{"a": 1,}', 8),        # a trailing comma
    ("array", "[1 2]", 3),
    ("object", '{"a": tru3', 9),
    ("string", '"a\\x"', 3),           # not an escape
    ("string", '"a\nb"', 2),           # a raw control character inside a string
    ("object", '{"a": 1}}', 8),        # text after the value is complete
    ("number", "01", 1),
])
def test_text_that_cannot_continue_the_value_is_refused_where_it_breaks(kind, text, refused_at):
    checker = JsonPrefix(kind)
    for n, ch in enumerate(text):
        if not checker.feed(ch):
            assert n == refused_at, f"refused at {n}, expected {refused_at}"
            return
    pytest.fail(f"{text!r} was accepted whole")


def test_a_refused_token_leaves_the_state_as_it_was():
    checker = JsonPrefix("object")
    assert checker.feed_text('{"genre": ')
    assert not checker.feed_text('"Comedy"}}')
    assert checker.text == '{"genre": ' and checker.feed_text('"Comedy"}') and checker.done


def test_nesting_is_bounded():
    checker = JsonPrefix("array")
    assert checker.feed_text("[" * JsonPrefix.max_depth)
    assert not checker.feed("[")


@pytest.mark.parametrize(("kind", "good", "bad", "refused_at"), [
    ("object<array<string>>", '{"genres": ["Comedy", "Drama"], "x": []}', '{"genres": "Comedy"}', 11),
    ("object<object<number>>", '{"genres": {"Comedy": 1.0, "Horror": -1}}', '{"genres": {"Comedy": "1"}}', 22),
    ("array<boolean>", "[true, false]", "[true, 1]", 7),
])
def test_container_kinds_constrain_their_values(kind, good, bad, refused_at):
    assert JsonPrefix(kind).feed_text(good)
    checker = JsonPrefix(kind)
    for n, ch in enumerate(bad):
        if not checker.feed(ch):
            assert n == refused_at
            break
    else:
        pytest.fail(f"{bad!r} accepted as {kind}")
    for cut in range(1, len(good)):   # every prefix closes to a value of the kind
        prefix = JsonPrefix(kind)
        assert prefix.feed_text(good[:cut])
        closed = json.loads(good[:cut] + prefix.closing())
        assert JsonPrefix(kind).feed_text(json.dumps(closed)), (good[:cut], closed)


def test_a_kind_that_is_not_a_json_type_is_refused():
    for kind in ("dict", "string<number>", "array<", "object<float>"):
        with pytest.raises(ValueError, match="not a JSON type"):
            JsonPrefix(kind)
