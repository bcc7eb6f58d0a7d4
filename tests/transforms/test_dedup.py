import apache_beam as beam
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.recipe import DedupSpec, NearDedupSpec, SplitSpec
from schemas.records import Item, Source
from transforms.dedup import (
    EXACT_RECORD,
    NEAR_RECORD,
    DedupKeys,
    decisions_in,
    exact_decisions,
    exact_key,
    exact_records,
    candidate_pairs,
    near_decisions,
    verified_pairs,
    read_block,
    sharing,
    near_records,
    source_numbers,
)
from transforms.text import normalize_text
from transforms.split import AssignSplit
from transforms.stage import RecordChain


def item(file, row, answer, question="q"):
    example = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    return Item(Source(file, row), {"q": question, "a": answer}, fields={"q": question, "a": answer}, example=example)


def test_normalisation_makes_trivial_variants_equal():
    assert normalize_text("  Hello\u00a0  WORLD \n") == normalize_text("hello world")
    assert exact_key(item("f", 0, "Hello  World")) == exact_key(item("g", 9, "hello world"))
    assert exact_key(item("f", 0, "a", "q1"), ["a"]) == exact_key(item("f", 1, "A", "q2"), ["a"])
    assert exact_key(item("f", 0, "a", "q1")) != exact_key(item("f", 1, "a", "q2"))


def keyed(items, **spec):
    """The items through the dedup keys and the split, as pass 1 runs them."""
    chain = RecordChain([DedupKeys(spec=DedupSpec(**spec)).dofn, AssignSplit(spec=SplitSpec(validation_fraction=0.0)).dofn])
    chain.setup()
    kept, left = chain.run(items)
    assert left == {}
    return kept


def records_of(items, make, dtype):
    """Key records of items from files named by their source, as pass 1 writes them: one array."""
    files = sorted({i.source.file for i in items})
    parts = [data for name in files for data in make([i for i in items if i.source.file == name], files.index(name)).values()]
    return files, np.frombuffer(b"".join(parts), dtype=dtype)


def near_of(items):
    """Band records of items from files named by their source, and the signatures they point
    at, as ``verified_pairs`` reads them."""
    files = sorted({i.source.file for i in items})
    parts, found = [], {}
    for index, name in enumerate(files):
        mine = [i for i in items if i.source.file == name]
        by_partition, _ = near_records(mine, index)
        parts.extend(by_partition.values())
        for i in mine:
            if i.signature is not None:
                found[int(source_numbers(np.array([index]), np.array([i.source.row]))[0])] = i.signature
    return files, np.frombuffer(b"".join(parts), dtype=NEAR_RECORD), lambda numbers, slots: np.stack([found[int(n)] for n in numbers])


def near_dropped(items, threshold, excluded=np.zeros(0, dtype=np.uint64)):
    from transforms.minhash import near_plan

    files, records, signatures = near_of(items)
    pairs = verified_pairs(candidate_pairs(records, excluded), signatures, near_plan(threshold, 128).cutoff)
    return files, pairs


def named(files, block):
    return sorted((files[d.file], d.row, d.reason, files[d.survivor_file], d.survivor_row) for d in decisions_in(block))


def test_exact_dedup_keeps_the_lowest_source():
    items = keyed([item("b.parquet", 0, "Same answer"), item("a.parquet", 5, "same  ANSWER"), item("a.parquet", 7, "Other"),
                   item("a.parquet", 9, "SAME answer")], exact=True)
    files, records = records_of(items, exact_records, EXACT_RECORD)
    assert named(files, exact_decisions(records)) == [("a.parquet", 9, "duplicate_exact", "a.parquet", 5),
                                                      ("b.parquet", 0, "duplicate_exact", "a.parquet", 5)]


def test_exact_dedup_on_fields():
    items = keyed([item("f", 0, "first answer", "Same question"), item("f", 1, "second answer", "same question")],
                  exact=True, fields=["q"])
    files, records = records_of(items, exact_records, EXACT_RECORD)
    assert named(files, exact_decisions(records)) == [("f", 1, "duplicate_exact", "f", 0)]


LONG = ("To reset your password open the account settings page, choose the security tab, press the reset "
        "button, and follow the link we send to your registered e-mail address within one hour of the request.")


def test_near_dedup_drops_close_variants_but_keeps_different_texts():
    items = keyed([
        item("s2", 0, LONG + " Thanks!"),
        item("s1", 3, LONG),
        item("s1", 9, LONG.replace("one hour", "sixty minutes")),
        item("s3", 1, "Our office is open from nine to five on weekdays and closed on public holidays in every country."),
    ], near={"threshold": 0.7, "shingle": 3})
    files, pairs = near_dropped(items, 0.7)
    assert named(files, near_decisions([pairs[:1], pairs[1:]])) == [("s1", 9, "duplicate_near", "s1", 3), ("s2", 0, "duplicate_near", "s1", 3)]


def test_exact_duplicates_take_no_part_in_near_dedup():
    items = keyed([item("f", 0, LONG), item("f", 1, LONG), item("f", 2, LONG + " Thanks!")],
                  exact=True, near={"threshold": 0.7, "shingle": 3})
    excluded = source_numbers(np.array([0], dtype=np.uint64), np.array([1], dtype=np.uint64))
    files, pairs = near_dropped(items, 0.7, excluded)
    assert named(files, near_decisions([pairs])) == [("f", 2, "duplicate_near", "f", 0)]


def test_decide_duplicates_reads_every_units_keys(tmp_path):
    """The Beam step: key sections in units' files, decisions out, whatever unit holds which key."""
    from transforms.dedup import DecideDuplicates, exact_section
    from transforms.stats import StatsAccumulator
    from transforms.units import Section, UnitResult

    items = keyed([item("a", i, f"answer {i % 3}") for i in range(6)], exact=True)
    units = []
    for first in (0, 3):  # two units of file 0
        chunks = exact_records(items[first : first + 3], 0)
        path, sections, position = tmp_path / f"{first}.unit", {}, 0
        with open(path, "wb") as f:
            for partition, data in sorted(chunks.items()):
                f.write(data)
                sections[exact_section(partition)] = Section(position, position + len(data), len(data) // EXACT_RECORD.itemsize)
                position += len(data)
        units.append(UnitResult(0, first, first + 3, str(path), sections, StatsAccumulator()))
    with TestPipeline() as p:
        decisions = p | beam.Create(units) | DecideDuplicates(spec=DedupSpec(exact=True), temp_dir=str(tmp_path / "temp"))
        pairs = decisions | beam.FlatMap(lambda path: [(d.row, d.survivor_row) for d in decisions_in(read_block(path))])
        assert_that(pairs, equal_to([(3, 0), (4, 1), (5, 2)]))


def test_bad_near_options():
    with pytest.raises(ValueError, match="threshold"):
        DedupKeys(spec=DedupSpec(near={"threshold": 0.8}).model_copy(update={"near": NearDedupSpec.model_construct(
            threshold=1.0, shingle=5, num_perm=128)}))


@given(st.lists(st.text(max_size=30), max_size=4))
def test_the_near_dedup_text_of_a_normalised_example_is_the_normalised_text(texts):
    """DedupKeys normalises an example once for the digest and the shingles: joining normalised
    texts gives what normalising the joined texts gives."""
    from transforms.dedup import dedup_text, normalized_text_of
    from transforms.text import normalized

    example = {"messages": [{"role": "user", "content": text} for text in texts]}
    assert normalized_text_of(normalized(example)) == dedup_text(Item(Source("f", 0), {}, example=example))


def test_deciding_on_the_records_that_share_a_key_decides_as_on_all_of_them():
    rng = np.random.default_rng(7)
    records = np.zeros(5000, dtype=EXACT_RECORD)
    records["k0"] = rng.integers(0, 3000, len(records))  # many keys repeated, some thrice or more
    records["k1"] = records["k0"] % 7  # and equal k0 with a different k1 is not a duplicate
    records["k1"][::11] += 1
    records["file"], records["row"] = rng.integers(0, 3, len(records)), np.arange(len(records))
    parts = np.array_split(records, 4)
    assert np.array_equal(exact_decisions(sharing(lambda: parts, "k0", EXACT_RECORD)), exact_decisions(records))
    assert len(sharing(lambda: parts, "k0", EXACT_RECORD)) < len(records)

    bands = np.zeros(4000, dtype=NEAR_RECORD)
    bands["band"], bands["row"] = rng.integers(0, 5000, len(bands)), np.arange(len(bands))
    nothing = np.zeros(0, dtype=np.uint64)
    assert np.array_equal(candidate_pairs(sharing(lambda: np.array_split(bands, 3), "band", NEAR_RECORD), nothing),
                          candidate_pairs(bands, nothing))
    assert len(sharing(lambda: [], "band", NEAR_RECORD)) == 0
    assert len(sharing(lambda: [bands[:1]], "band", NEAR_RECORD)) == 0


def test_a_block_of_decisions_round_trips_through_its_file_and_is_never_empty(tmp_path):
    from transforms.dedup import NEAR_PAIR, Decision, decision_block, write_block

    empty = write_block(str(tmp_path / "empty.npy"), decision_block([]))
    assert (tmp_path / "empty.npy").stat().st_size > 0  # object stores refuse some zero-byte uploads
    assert len(read_block(empty)) == 0
    block = decision_block([Decision(1, 7, "duplicate_near", 0, 2, "validation"), Decision(0, 3, "duplicate_exact", 0, 1, "train")])
    assert decisions_in(read_block(write_block(str(tmp_path / "two.npy"), block))) == decisions_in(block)
    with pytest.raises(ValueError, match="records"):
        read_block(str(tmp_path / "two.npy"), NEAR_PAIR)


def test_a_record_whose_signature_fails_is_kept_unchecked_and_the_rest_of_its_batch_is_not(monkeypatch):
    from transforms.minhash import MinHasher

    real = MinHasher.signatures

    def fails_on_boom(self, texts, permutations=None):
        if any("boom" in text for text in texts):
            raise ValueError("boom")
        return real(self, texts, permutations)

    monkeypatch.setattr(MinHasher, "signatures", fails_on_boom)
    kept = keyed([item("f", 0, LONG), item("f", 1, "BOOM " + LONG), item("f", 2, LONG + " Thanks!")],
                 exact=True, near={"threshold": 0.7, "shingle": 3})
    assert [i.source.row for i in kept] == [0, 1, 2]  # nobody rejected, nobody lost
    assert [i.bands is None for i in kept] == [False, True, False]
    assert all(i.dedup_key is not None for i in kept)


def test_a_record_is_dropped_only_for_a_kept_near_duplicate_and_names_it():
    """A ~ B and B ~ C but not A ~ C: B goes as A's duplicate, C stays (its only near duplicate
    is gone); D ~ A and D ~ C goes as the lowest kept one's, A's."""
    from transforms.dedup import NEAR_PAIR

    a, b, c, d = (int(n) for n in source_numbers(np.zeros(4, dtype=np.uint64), np.array([1, 2, 3, 4], dtype=np.uint64)))
    verified = np.array([(b, a, 0), (c, b, 0), (d, c, 1), (d, a, 1)], dtype=NEAR_PAIR)
    decided = [(x.row, x.survivor_row, x.split) for x in decisions_in(near_decisions([verified[::-1]]))]
    assert decided == [(2, 1, "train"), (4, 1, "validation")]


def test_candidates_pair_with_the_lowest_of_their_band_group_once_each():
    from transforms.dedup import GROUP_PAIRS

    records = np.zeros(2 * 40, dtype=NEAR_RECORD)
    records["band"] = np.repeat([7, 9], 40)  # the same 40 records share two bands
    records["row"] = records["slot"] = np.tile(np.arange(40)[::-1], 2)
    pairs = candidate_pairs(records, np.zeros(0, dtype=np.uint64))
    expected = sorted((n, low) for n in range(1, 40) for low in range(min(n, GROUP_PAIRS)))
    assert sorted(zip(pairs["number"].tolist(), pairs["lower"].tolist())) == expected
    assert np.array_equal(pairs["slot"], pairs["number"].astype(np.uint32))


def test_a_candidate_below_the_cutoff_is_not_a_near_duplicate():
    from transforms.dedup import CANDIDATE_PAIR

    signatures = np.array([[1, 2, 3, 4], [1, 2, 3, 9], [1, 8, 8, 9]], dtype=np.uint32)
    pairs = np.array([(1, 0, 1, 0, 0), (2, 0, 2, 0, 0)], dtype=CANDIDATE_PAIR)
    found = verified_pairs(pairs, lambda numbers, slots: signatures[slots], 0.75)
    assert found[["number", "lower"]].tolist() == [(1, 0)]


def test_signatures_are_read_from_the_units_files_by_slot(tmp_path):
    from transforms.dedup import SIGNATURE_SECTION, UnitSignatures, signature_record
    from transforms.stats import StatsAccumulator
    from transforms.units import Section, UnitResult

    units = []
    for file, first in ((0, 0), (0, 100), (1, 0)):
        held = np.zeros(50, dtype=signature_record(4))
        held["row"] = first + np.arange(0, 100, 2)  # kept rows: every other one
        held["signature"] = (file * 1000 + held["row"])[:, None] + np.arange(4)
        path = tmp_path / f"{file}-{first}.unit"
        path.write_bytes(b"x" * 10 + held.tobytes())  # the section after another one
        units.append(UnitResult(file, first, first + 100, str(path),
                                {SIGNATURE_SECTION: Section(10, 10 + held.nbytes, len(held))}, StatsAccumulator()))
    read = UnitSignatures(units[::-1], num_perm=4)
    files, slots = np.array([1, 0, 0, 0, 0]), np.array([3, 0, 1, 49, 2])
    rows = np.array([0, 100, 0, 0, 0]) + slots * 2
    found = read(source_numbers(files.astype(np.uint64), rows.astype(np.uint64)), slots.astype(np.uint32))
    assert found[:, 0].tolist() == (files * 1000 + rows).tolist()
    with pytest.raises(ValueError, match="signature section"):
        read(source_numbers(np.array([0], dtype=np.uint64), np.array([5], dtype=np.uint64)), np.array([2], dtype=np.uint32))


def test_slots_are_read_in_runs_from_an_open_file_as_from_a_mapped_one(tmp_path):
    """Object stores read a unit's signatures in runs (read_slots), local files map them
    (slots_of): the same records either way, in the order asked."""
    import io

    from transforms.dedup import read_slots, signature_record, slots_of

    held = np.zeros(200, dtype=signature_record(2))
    held["row"], held["signature"] = np.arange(200), np.arange(400).reshape(200, 2)
    (tmp_path / "unit").write_bytes(b"head" + held.tobytes())
    slots = np.array([199, 3, 4, 5, 150, 0, 4], dtype=np.uint32)
    mapped = slots_of(str(tmp_path / "unit"), 4, held.dtype, slots)
    for gap in (0, 16, 1000):
        assert np.array_equal(read_slots(io.BytesIO(b"head" + held.tobytes()), 4, held.dtype, slots, gap), mapped)
    assert mapped["row"].tolist() == slots.tolist()
