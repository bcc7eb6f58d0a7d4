import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from schemas.records import Item, Source
from transforms.clean import CleanFields, clean_fields, clean_text, collapse_spaces, nfc, strip_control, trim


def test_nfc_composes():
    assert nfc("e\u0301") == "\u00e9"


def test_strip_control_keeps_newlines_and_tabs_and_joiners():
    text = "a\u0000b\u0007c\td\r\ne\u200bf\ufeffg\u200dh\x85i"
    assert strip_control(text) == "abc\td\nef" + "g\u200dh" + "i"


def test_collapse_spaces_keeps_indentation():
    assert collapse_spaces("def f():\n    return  1   +  2") == "def f():\n    return 1 + 2"


def test_trim():
    assert trim("  \n hi \t\n") == "hi"


def test_clean_text_default_pipeline():
    assert clean_text("  Press\u0007  Ctrl+S   to save. ") == "Press Ctrl+S to save."


@given(st.text())
def test_cleaning_is_idempotent(text):
    once = clean_text(text)
    assert clean_text(once) == once


def test_clean_fields_only_touches_named_string_fields():
    row = {"a": "  x  ", "b": "  y  ", "n": 3}
    assert clean_fields(row, ["trim"], ["a", "n", "missing"]) == {"a": "x", "b": "  y  ", "n": 3}
    assert clean_fields(row, ["trim"]) == {"a": "x", "b": "y", "n": 3}
    assert row["a"] == "  x  "  # the original row is kept for rejected output


def test_clean_fields_transform():
    item = Item(Source("f", 0), {"q": " a  b "})
    with TestPipeline() as p:
        items, rejected = p | beam.Create([item]) | "Clean" >> CleanFields()
        assert_that(items | beam.Map(lambda i: (i.fields, i.row)), equal_to([({"q": "a b"}, {"q": " a  b "})]), label="Items")
        assert_that(rejected, equal_to([]), label="Rejected")


def test_unknown_step_fails_at_construction():
    with pytest.raises(ValueError, match="unknown cleaning step"):
        CleanFields(steps=["nfc", "lowercase"])
