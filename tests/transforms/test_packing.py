"""The packing estimate against best-fit decreasing run example by example."""

import random
from collections import Counter

import pytest

from transforms.packing import best_fit_decreasing, packing_estimate


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


def test_over_long_and_empty():
    assert packing_estimate({2000: 5}, 1000)["sequences"] == 0
    assert packing_estimate({}, 1000) == {
        "max_length": 1000, "strategy": "best_fit_decreasing", "examples": 0, "tokens": 0, "sequences": 0,
        "examples_per_sequence": 0.0, "padding_share_packed": 0.0, "padding_share_unpacked": 0.0}
