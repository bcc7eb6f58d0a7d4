import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Item, Source
from tests.batches import batched, each
from transforms.dedup import (
    DropExactDuplicates,
    DropNearDuplicates,
    MinHasher,
    exact_key,
    normalize_text,
    optimal_bands,
    shingles,
)


def item(file, row, answer, question="q"):
    example = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    return Item(Source(file, row), {"q": question, "a": answer}, fields={"q": question, "a": answer}, example=example)


def test_normalisation_makes_trivial_variants_equal():
    assert normalize_text("  Hello\u00a0  WORLD \n") == normalize_text("hello world")
    assert exact_key(item("f", 0, "Hello  World")) == exact_key(item("g", 9, "hello world"))
    assert exact_key(item("f", 0, "a", "q1"), ["a"]) == exact_key(item("f", 1, "A", "q2"), ["a"])
    assert exact_key(item("f", 0, "a", "q1")) != exact_key(item("f", 1, "a", "q2"))


def jaccard(a, b, size):
    sa, sb = set(shingles(a, size)), set(shingles(b, size))
    return len(sa & sb) / len(sa | sb)


def test_minhash_estimates_jaccard_and_is_deterministic():
    base = " ".join(f"word{i}" for i in range(200))
    variant = base.replace("word50 ", "changed ").replace("word150 ", "other ")
    hasher = MinHasher(num_perm=256, shingle=3)
    a, b = hasher.signature(base), hasher.signature(variant)
    assert np.array_equal(a, MinHasher(num_perm=256, shingle=3).signature(base))
    assert abs(float(np.mean(a == b)) - jaccard(base, variant, 3)) < 0.08


def test_band_choice_follows_the_threshold():
    bands, rows = optimal_bands(0.8, 128)
    assert bands * rows <= 128
    # The S-curve's midpoint (1/b)^(1/r) sits near the threshold.
    assert 0.7 < (1 / bands) ** (1 / rows) < 0.85
    loose_bands, loose_rows = optimal_bands(0.5, 128)
    assert (1 / loose_bands) ** (1 / loose_rows) < (1 / bands) ** (1 / rows)


def test_exact_dedup_keeps_the_lowest_source():
    items = [item("b.parquet", 0, "Same answer"), item("a.parquet", 5, "same  ANSWER"), item("a.parquet", 7, "Other")]
    with TestPipeline() as p:
        kept, dropped, _ = batched(p, items) | "Dedup" >> DropExactDuplicates()
        assert_that(each(kept, "EachKept") | beam.Map(lambda i: (i.source.file, i.source.row)), equal_to([("a.parquet", 5), ("a.parquet", 7)]), label="Kept")
        assert_that(each(dropped, "EachDropped") | beam.Map(lambda d: (d.source.file, d.reason, d.duplicate_of.file, d.duplicate_of.row)),
                    equal_to([("b.parquet", "duplicate_exact", "a.parquet", 5)]), label="Dropped")


LONG = ("To reset your password open the account settings page, choose the security tab, press the reset "
        "button, and follow the link we send to your registered e-mail address within one hour of the request.")


def test_near_dedup_drops_close_variants_but_keeps_different_texts():
    items = [
        item("s2", 0, LONG + " Thanks!"),
        item("s1", 3, LONG),
        item("s1", 9, LONG.replace("one hour", "sixty minutes")),
        item("s3", 1, "Our office is open from nine to five on weekdays and closed on public holidays in every country."),
    ]
    with TestPipeline() as p:
        kept, dropped = batched(p, items) | "Near" >> DropNearDuplicates(threshold=0.7, shingle=3)
        assert_that(each(kept, "EachKept") | beam.Map(lambda i: (i.source.file, i.source.row)), equal_to([("s1", 3), ("s3", 1)]), label="Kept")
        assert_that(each(dropped, "EachDropped") | beam.Map(lambda d: (d.source.file, d.source.row, d.duplicate_of.file, d.duplicate_of.row)),
                    equal_to([("s2", 0, "s1", 3), ("s1", 9, "s1", 3)]), label="Dropped")


def test_bad_near_options():
    with pytest.raises(ValueError, match="threshold"):
        DropNearDuplicates(threshold=1.0)
