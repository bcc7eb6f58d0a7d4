"""Packing whole examples into ``max_length`` sequences by best-fit decreasing, as TRL does.

TRL's ``pack_dataset(..., strategy="bfd")`` takes the longest example first (ties in input
order), puts each into the open sequence with the least room that still fits it (of those with
equal room, the one that got that room first), and opens a new sequence when none does.
``pack_order`` places a split's examples that way, from their lengths alone, so that the
packed rows equal what TRL builds from the same examples in one batch; ``best_fit_decreasing``
counts the sequences from a histogram of lengths (the statistics', and the estimate without
tokenized output): equal lengths are placed together, a sequence with ``r`` tokens of room
taking ``r // length`` of them in a row (it stays the best fit until then), so its cost grows
with the number of distinct lengths and room sizes, not with the number of examples. Both give
the same number of sequences: which of the sequences with equal room takes an example changes
nothing of the room left.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def pack_order(lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, per_sequence)``: the examples' indices in packed order (sequence by sequence, each
    sequence's in the order placed) and how many examples each sequence holds. Lengths over
    ``max_length`` count as ``max_length`` (the run truncates or rejects them before)."""
    lengths = np.minimum(np.asarray(lengths), max_length).astype(np.uint32)
    placed = np.argsort(max_length - lengths, kind="stable")  # longest first, ties in input order
    sequence_of = np.empty(len(placed), dtype=np.int32)
    rooms: list[int] = []  # the room sizes some open sequence has, sorted
    waiting: dict[int, deque] = {}  # room -> the sequences with that much room, first come first
    sequences = 0
    for step, length in enumerate(_chunked(lengths, placed)):
        at = bisect.bisect_left(rooms, length)
        if at < len(rooms):
            room = rooms[at]
            queue = waiting[room]
            sequence = queue.popleft()
            if not queue:
                del waiting[room]
                rooms.pop(at)
        else:
            room, sequence = max_length, sequences
            sequences += 1
        sequence_of[step] = sequence
        left = room - length
        if left:
            queue = waiting.get(left)
            if queue is None:
                waiting[left] = deque((sequence,))
                bisect.insort(rooms, left)
            else:
                queue.append(sequence)
    order = placed[np.argsort(sequence_of, kind="stable")]
    return order, np.bincount(sequence_of, minlength=sequences)


def _chunked(lengths: np.ndarray, placed: np.ndarray, chunk: int = 1 << 16):
    """``lengths[placed]`` as Python ints, a chunk at a time (millions of them at once cost more
    memory than the rest of the plan)."""
    for at in range(0, len(placed), chunk):
        yield from lengths[placed[at:at + chunk]].tolist()


def best_fit_decreasing(lengths: Mapping[int, int], max_length: int) -> int:
    """The number of sequences of ``max_length`` tokens the examples (length -> count) pack into;
    an example longer than ``max_length`` (kept only when the run truncates it) fills one."""
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

    clamped: Counter = Counter()
    for length, n in lengths.items():
        if length > 0:
            clamped[min(length, max_length)] += n
    for length in sorted(clamped, reverse=True):
        left = clamped[length]
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


def packing_estimate(lengths: Mapping[int, int], max_length: int, *, written: bool = False) -> dict:
    """stats.json ``packing``: the sequences the train split packs into, how full they are, and
    the padding with and without packing (without: every example padded to ``max_length``, as
    with ``padding="max_length"``). ``written``: the output holds the packed rows (tokenized
    output); else this is what TRL's packing will make of it."""
    examples = sum(n for length, n in lengths.items() if length > 0)
    tokens = sum(min(length, max_length) * n for length, n in lengths.items() if length > 0)
    sequences = best_fit_decreasing(lengths, max_length)
    return {
        "max_length": max_length,
        "strategy": "best_fit_decreasing",
        "written": written,
        "examples": examples,
        "tokens": tokens,
        "sequences": sequences,
        "examples_per_sequence": round(examples / sequences, 3) if sequences else 0.0,
        "fill": round(tokens / (sequences * max_length), 4) if sequences else 0.0,
        "padding_share_packed": round(1 - tokens / (sequences * max_length), 4) if sequences else 0.0,
        "padding_share_unpacked": round(1 - tokens / (examples * max_length), 4) if examples else 0.0,
        # Padding tokens a batch of max_length rows no longer carries: one row per sequence, not per example.
        "padding_tokens_saved": (examples - sequences) * max_length,
    }


# --- Packed rows --------------------------------------------------------------------------

SEQ_LENGTHS = "seq_lengths"  # each example's length in the packed row: TRL's collator makes position ids of it
POSITION_IDS = "position_ids"  # restarting at 0 at each example: how Axolotl keeps packed examples apart


def packed_type(kind: Any) -> Any:
    """The row type (``transforms/row_types.py``) of packed rows of tokenized rows of ``kind``: its
    token columns, concatenated, with ``seq_lengths``; rows with ``labels`` also get
    ``position_ids``."""
    columns = dict(kind["struct"])
    if "labels" in columns:
        columns[POSITION_IDS] = {"list": "int64"}
    columns[SEQ_LENGTHS] = {"list": "int64"}
    return {"struct": columns}


def packed_table(examples: pa.Table, per_row: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Tokenized examples (one per row, in packed order) as packed rows of ``schema``: row ``i``
    concatenates the next ``per_row[i]`` examples' columns. Every column is a token column; the
    lists are cut anew over the same values, nothing is copied one token at a time."""
    lengths = pc.list_value_length(examples.column("input_ids")).to_numpy(zero_copy_only=False).astype(np.int64)
    bounds = np.concatenate(([0], np.cumsum(per_row, dtype=np.int64)))
    starts = np.concatenate(([0], np.cumsum(lengths)))
    offsets = pa.array(starts[bounds], pa.int32())
    columns = {}
    for name in examples.column_names:
        values = examples.column(name).combine_chunks().flatten()
        columns[name] = pa.ListArray.from_arrays(offsets, values)
    if POSITION_IDS in schema.names:
        positions = np.arange(starts[-1], dtype=np.int64) - np.repeat(starts[:-1], lengths)
        columns[POSITION_IDS] = pa.ListArray.from_arrays(offsets, pa.array(positions))
    columns[SEQ_LENGTHS] = pa.ListArray.from_arrays(pa.array(bounds, pa.int32()), pa.array(lengths))
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
