"""How many ``max_length`` sequences a split packs into, from its histogram of example lengths.

TRL's ``pack_dataset(..., strategy="bfd")`` packs whole examples by best-fit decreasing: the
longest first, each into the open sequence with the least room that still fits it, a new
sequence when none does. Run on the histogram rather than on examples, equal lengths are
placed together: a sequence with ``r`` tokens of room takes ``r // length`` examples of that
length in a row (it stays the best fit until then), so the cost grows with the number of
distinct lengths and room sizes, not with the number of examples.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Mapping


def best_fit_decreasing(lengths: Mapping[int, int], max_length: int) -> int:
    """The number of sequences of ``max_length`` tokens the examples (length -> count) pack into;
    examples longer than ``max_length`` (the run rejects them) are not counted."""
    room: Counter = Counter()  # tokens of room -> sequences with that much room
    sizes: list[int] = []  # the room sizes present, sorted
    sequences = 0

    def add(size: int, n: int) -> None:
        if n <= 0:
            return
        if room[size] == 0:
            bisect.insort(sizes, size)
        room[size] += n

    def take(size: int, n: int) -> None:
        room[size] -= n
        if room[size] == 0:
            del room[size]
            sizes.pop(bisect.bisect_left(sizes, size))

    for length in sorted((n for n in lengths if 0 < n <= max_length), reverse=True):
        left = lengths[length]
        while left:
            at = bisect.bisect_left(sizes, length)
            if at == len(sizes):  # nothing fits: open sequences, each filled with this length
                per_sequence = max_length // length
                full, rest = divmod(left, per_sequence)
                sequences += full + (rest > 0)
                add(max_length - per_sequence * length, full)
                add(max_length - rest * length, int(rest > 0))
                break
            size = sizes[at]
            per_sequence = size // length
            count = room[size]
            full = min(count, left // per_sequence)
            if full:
                take(size, full)
                add(size - per_sequence * length, full)
                left -= full * per_sequence
            else:  # fewer left than one sequence takes: they all go into one
                take(size, 1)
                add(size - left * length, 1)
                left = 0
    return sequences


def packing_estimate(lengths: Mapping[int, int], max_length: int) -> dict:
    """stats.json ``packing``: sequences packed, and the share of padding with and without packing
    (without: every example padded to ``max_length``, as with ``padding="max_length"``)."""
    examples = sum(n for length, n in lengths.items() if 0 < length <= max_length)
    tokens = sum(length * n for length, n in lengths.items() if 0 < length <= max_length)
    sequences = best_fit_decreasing(lengths, max_length)
    return {
        "max_length": max_length,
        "strategy": "best_fit_decreasing",
        "examples": examples,
        "tokens": tokens,
        "sequences": sequences,
        "examples_per_sequence": round(examples / sequences, 3) if sequences else 0.0,
        "padding_share_packed": round(1 - tokens / (sequences * max_length), 4) if sequences else 0.0,
        "padding_share_unpacked": round(1 - tokens / (examples * max_length), 4) if examples else 0.0,
    }
