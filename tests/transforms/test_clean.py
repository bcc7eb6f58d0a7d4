import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.recipe import CleanSpec
from schemas.records import Item, Source
from tests.batches import batched, each
from transforms.clean import (
    STEP_ORDER,
    CleanFields,
    clean_fields,
    clean_text,
    collapse_all_whitespace,
    collapse_whitespace,
    fix_mojibake,
    nfc,
    nfkc,
    ordered_steps,
    strip_control,
    strip_html,
    strip_urls,
    trim,
)


@pytest.mark.parametrize(
    "step, text, expected",
    [
        (nfc, "e\u0301", "\u00e9"),
        (nfkc, "ｆｉｌｅ１ ﬁ", "file1 fi"),
        (fix_mojibake, "cafÃ©", "café"),
        (fix_mojibake, "â€œquotedâ€\x9d", "\u201cquoted\u201d"),
        (fix_mojibake, "“curly” stay curly", "“curly” stay curly"),
        (strip_html, "<p>Hello&nbsp;<b>world</b> &amp; co</p>", "Hello\u00a0world & co\n"),
        (strip_html, "line<br/>next", "line\nnext"),
        (strip_html, "&amp;lt;b&amp;gt;bold", "bold"),
        (strip_html, "if a < b and c > d", "if a < b and c > d"),
        (strip_html, "<!-- hidden -->shown", "shown"),
        (strip_control, "a\u0000b\u0007c\td\r\ne\u200bf\ufeffg\u200dh\x85i", "abc\td\nef" + "g\u200dh" + "\ni"),
        (strip_urls, "see https://example.com/a?b=1 or www.acme.io.", "see  or "),
        (collapse_whitespace, "def f():\n    return  1   +  2   \n\n\n\nx", "def f():\n    return 1 + 2\n\nx"),
        (collapse_whitespace, "a\tb", "a b"),
        (collapse_all_whitespace, "a \n\n b\tc", "a b c"),
        (trim, "  \n hi \t\n", "hi"),
    ],
)
def test_each_step(step, text, expected):
    assert step(text) == expected


def test_default_steps():
    assert clean_text("  Press\u0007  Ctrl+S   to save. ") == "Press Ctrl+S to save."


def test_steps_run_in_the_fixed_order_whatever_the_recipe_says():
    assert ordered_steps(["trim", "nfc", "strip_control"]) == ("strip_control", "nfc", "trim")
    # strip_control before nfc: removing the bell lets the accent compose in the same pass.
    assert clean_text("e\u0007\u0301", ["nfc", "strip_control"]) == "\u00e9"


def test_interacting_steps_reach_a_fixed_point():
    # NFKC turns fullwidth brackets into a tag only after the HTML pass ran once.
    assert clean_text("x&#xFF1C;b&#xFF1E;y", ["html", "nfkc"]) == "xy"


# Arbitrary text, and text built from the pieces the steps react to (entities, tags, URLs, mojibake).
PIECES = list("ab <>/&;#x\u0301\u0007\u200b\t\n\r ＜＞ﬁ") + ["&lt;", "&amp;", "<b>", "</p>", "http://x.y ", "Ã©", "&#xFF1C;"]
texts = st.text(st.characters(codec="utf-8"), max_size=60) | st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@settings(max_examples=300)
@given(texts, st.sets(st.sampled_from(STEP_ORDER)).filter(lambda s: not {"collapse_whitespace", "collapse_all_whitespace"} <= s))
def test_cleaning_is_idempotent_and_never_raises(text, steps):
    once = clean_text(text, steps)
    assert clean_text(once, steps) == once


@given(texts)
def test_default_cleaning_is_idempotent(text):
    once = clean_text(text)
    assert clean_text(once) == once


def test_clean_fields_only_touches_named_string_fields():
    row = {"a": "  x  ", "b": "  y  ", "n": 3}
    assert clean_fields(row, ["trim"], ["a", "n", "missing"]) == {"a": "x", "b": "  y  ", "n": 3}
    assert clean_fields(row, ["trim"]) == {"a": "x", "b": "y", "n": 3}
    assert row["a"] == "  x  "  # the original row is kept for rejected output


def test_per_field_steps():
    row = {"q": " <b>x</b>  y ", "a": " <b>x</b>  y "}
    assert clean_fields(row, ["trim"], ["q"], {"a": ["html", "collapse_all_whitespace", "trim"]}) == {
        "q": "<b>x</b>  y", "a": "x y"}


def test_clean_fields_transform():
    item = Item(Source("f", 0), {"q": " a  b "})
    with TestPipeline() as p:
        items, rejected = batched(p, [item]) | "Clean" >> CleanFields()
        assert_that(each(items, "EachItem") | beam.Map(lambda i: (i.fields, i.row)), equal_to([({"q": "a b"}, {"q": " a  b "})]), label="Items")
        assert_that(rejected, equal_to([]), label="Rejected")


def test_unknown_step_fails_at_construction():
    with pytest.raises(ValueError, match="unknown cleaning step"):
        ordered_steps(["nfc", "lowercase"])
    with pytest.raises(ValueError, match="lowercase"):
        CleanFields(spec=CleanSpec(steps=["nfc", "lowercase"]))


def test_the_two_whitespace_modes_exclude_each_other():
    with pytest.raises(ValueError, match="choose one of collapse_whitespace"):
        ordered_steps(["collapse_whitespace", "collapse_all_whitespace"])


def test_nested_values_are_cleaned_at_any_depth():
    from transforms.clean import clean_fields

    row = {
        "meta": {"answer": "  spaced   out\u200b  ", "n": 1},
        "tags": [" a ", ("  b", None)],
        "conversation": [{"role": "user", "content": "Hi\r\nthere  "}],
        "raw": b"  bytes stay  ",
    }
    assert clean_fields(row, ("strip_control", "collapse_whitespace", "trim")) == {
        "meta": {"answer": "spaced out", "n": 1},
        "tags": ["a", ("b", None)],
        "conversation": [{"role": "user", "content": "Hi\nthere"}],
        "raw": b"  bytes stay  ",
    }


@given(st.recursive(st.text(max_size=20) | st.none() | st.integers(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10))
def test_cleaning_nested_values_is_idempotent(value):
    from transforms.clean import clean_value

    steps = ("html", "strip_control", "nfkc", "collapse_whitespace", "trim")
    once = clean_value(value, steps)
    assert clean_value(once, steps) == once
