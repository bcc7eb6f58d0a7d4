"""Best-fit decreasing: the order against TRL's own packing, the estimate against the order."""

import random
from collections import Counter

import numpy as np
import pytest

from transforms.packing import best_fit_decreasing, pack_order, packing_estimate


def one_by_one(lengths: list[int], max_length: int) -> int:
    """Best-fit decreasing as TRL's bfd strategy describes it, one example at a time."""
    rooms: list[int] = []
    for length in sorted((n for n in lengths if n <= max_length), reverse=True):
        fits = [i for i, room in enumerate(rooms) if room >= length]
        if fits:
            best = min(fits, key=lambda i: rooms[i])
            rooms[best] -= length
        else:
            rooms.append(max_length - length)
    return len(rooms)


@pytest.mark.parametrize("seed", range(30))
def test_equals_best_fit_decreasing_one_example_at_a_time(seed):
    rng = random.Random(seed)
    max_length = rng.choice([16, 100, 512])
    lengths = [rng.choice([rng.randint(1, max_length), rng.randint(1, max_length // 4 or 1)])
               for _ in range(rng.randint(0, 300))]
    assert best_fit_decreasing(Counter(lengths), max_length) == one_by_one(lengths, max_length)


def test_the_estimate_states_sequences_and_padding():
    estimate = packing_estimate({100: 3, 50: 2, 900: 1}, 1000)
    # 900 + 100; 100 + 100 + 50 + 50 -> two sequences of 1,000 for 1,300 tokens.
    assert estimate["sequences"] == 2
    assert estimate["padding_share_packed"] == 0.35
    assert estimate["padding_share_unpacked"] == round(1 - 1300 / 6000, 4)


def test_over_long_examples_are_truncated_ones_and_fill_a_sequence_each():
    # The run keeps an example over max_length only when it truncates it to max_length.
    estimate = packing_estimate({2000: 5, 10: 1}, 1000)
    assert (estimate["sequences"], estimate["examples"], estimate["tokens"]) == (6, 6, 5010)
    assert packing_estimate({}, 1000) == {
        "max_length": 1000, "strategy": "best_fit_decreasing", "written": False, "examples": 0, "tokens": 0,
        "sequences": 0, "examples_per_sequence": 0.0, "fill": 0.0, "padding_share_packed": 0.0,
        "padding_share_unpacked": 0.0, "padding_tokens_saved": 0}


def test_the_estimate_states_fill_and_padding_saved():
    estimate = packing_estimate({100: 3, 50: 2, 900: 1}, 1000, written=True)
    assert (estimate["fill"], estimate["padding_tokens_saved"], estimate["written"]) == (0.65, 4000, True)


def trl_bfd(lengths: list[int], max_length: int) -> list[list[int]]:
    """TRL's own packing of examples of these lengths, in one batch: each sequence's example ids."""
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    ids = [[i] * n for i, n in enumerate(lengths)]
    packed = pack_dataset(Dataset.from_dict({"input_ids": ids}), max_length, "bfd",
                          {"batch_size": max(1, len(ids))})
    return [sorted(set(row), key=row.index) for row in packed["input_ids"]]


@pytest.mark.parametrize("seed", range(12))
def test_the_order_is_trls_best_fit_decreasing(seed):
    pytest.importorskip("trl.data_utils")
    rng = random.Random(seed)
    max_length = rng.choice([16, 100, 512])
    # Many equal lengths and equal rooms: where the tie-breaking shows.
    lengths = [rng.choice([rng.randint(1, max_length), rng.randint(1, 8), max_length // 2])
               for _ in range(rng.randint(1, 400))]
    order, per_sequence = pack_order(np.array(lengths), max_length)
    ours = np.split(order, np.cumsum(per_sequence)[:-1])
    assert [row.tolist() for row in ours] == trl_bfd(lengths, max_length)
    assert len(per_sequence) == best_fit_decreasing(Counter(lengths), max_length)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= max_length for row in ours)
