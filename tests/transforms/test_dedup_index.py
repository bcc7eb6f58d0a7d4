import numpy as np

from transforms.dedup import EXACT_RECORD, NEAR_PAIR, NEAR_RECORD, decisions_in, source_numbers
from transforms.dedup_index import (
    Reference,
    ReferenceSignatures,
    SIGNATURES_FILE,
    exact_against,
    lowest_survivors,
    near_against_pairs,
    reference_signature,
)


def test_exact_matches_name_the_lowest_reference_example_and_only_full_digests_match():
    keys = np.zeros(3, dtype=EXACT_RECORD)
    keys["k0"], keys["k1"], keys["file"], keys["row"] = [5, 9, 9], [1, 2, 3], [7, 7, 8], [4, 0, 2]
    records = np.zeros(4, dtype=EXACT_RECORD)
    records["k0"], records["k1"], records["row"], records["split"] = [9, 5, 5, 1], [2, 1, 2, 1], [10, 11, 12, 13], [0, 1, 0, 0]
    block, found = exact_against(records, keys)
    assert found.tolist() == [True, True, False, False]  # (5, 2): same k0, other k1
    assert [(d.row, d.survivor_file, d.survivor_row, d.split) for d in decisions_in(block)] == [
        (10, 7, 0, "train"), (11, 7, 4, "validation")]
    assert exact_against(records, keys[:0])[1].tolist() == [False] * 4


def test_near_candidates_pair_each_record_with_the_lowest_reference_examples_of_its_band():
    from transforms.dedup import GROUP_PAIRS

    reference = np.zeros(GROUP_PAIRS + 4, dtype=NEAR_RECORD)
    reference["band"], reference["file"], reference["row"] = 42, 5, np.arange(len(reference))[::-1]
    reference["slot"] = reference["row"]
    ours = np.zeros(3, dtype=NEAR_RECORD)
    ours["band"], ours["row"], ours["slot"] = [42, 42, 7], [1, 2, 3], [0, 1, 2]
    excluded = source_numbers(np.array([0], dtype=np.uint64), np.array([2], dtype=np.uint64))
    pairs = near_against_pairs(ours, reference, excluded)
    assert pairs["number"].tolist() == [1] * GROUP_PAIRS
    lows = source_numbers(np.full(GROUP_PAIRS, 5, dtype=np.uint64), np.arange(GROUP_PAIRS, dtype=np.uint64))
    assert pairs["lower"].tolist() == lows.tolist() and pairs["lower_slot"].tolist() == list(range(GROUP_PAIRS))


def test_a_record_near_several_reference_examples_is_a_duplicate_of_the_lowest():
    a, b, c = source_numbers(np.array([0, 3, 3], dtype=np.uint64), np.array([1, 9, 4], dtype=np.uint64)).tolist()
    block = lowest_survivors([np.array([(a, b, 0)], dtype=NEAR_PAIR), np.array([(a, c, 0)], dtype=NEAR_PAIR)])
    assert [(d.row, d.survivor_file, d.survivor_row, d.reason) for d in decisions_in(block)] == [(1, 3, 4, "duplicate_near")]


def test_reference_signatures_are_read_by_slot_with_their_files_renumbered(tmp_path):
    held = np.zeros(40, dtype=reference_signature(4))
    held["file"], held["row"] = np.arange(40) % 2, np.arange(40)
    held["signature"] = np.arange(40)[:, None] * 10 + np.arange(4)
    (tmp_path / SIGNATURES_FILE).write_bytes(held.tobytes())
    reference = Reference(str(tmp_path), ("a", "b"), first_file=3, signatures=40, num_perm=4)
    read = ReferenceSignatures([reference], num_perm=4)
    slots = np.array([39, 0, 2, 30], dtype=np.uint32)
    numbers = source_numbers((3 + slots % 2).astype(np.uint64), slots.astype(np.uint64))
    assert read(numbers, slots)[:, 0].tolist() == [390, 0, 20, 300]
