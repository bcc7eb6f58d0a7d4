"""Deterministic synthetic instruction/input/output shards for the benchmark.

Lengths follow a realistic instruction-tuning mix (about 1,300 characters per row), with some
non-ASCII text, a few rows that must be rejected (empty answers) and a few exact duplicates.
``near_duplicates`` makes that share of the rows near duplicates of earlier ones (an earlier
row with one to three words of its answer changed), the shape of scraped or synthetic data.
The same (rows, shards, seed, near_duplicates) always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = (
    "the of and to in is that for it as with was on be by at this have from or an they which one "
    "you were all we when there can more if no out so said what up its about into than them only "
    "data model token pipeline answer question customer account billing password upload storage "
    "invoice refund sync export share folder file device setting security error network server"
).split()
FOREIGN = ["café", "naïve", "résumé", "Straße", "größer", "año", "東京", "データ", "спасибо", "🙂", "✓", "façade"]
ROW_GROUP_ROWS = 10_000


def _text(rng: random.Random, low: int, high: int) -> str:
    target = rng.randint(low, high)
    words, size = [], 0
    while size < target:
        word = rng.choice(FOREIGN) if rng.random() < 0.03 else rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + "."


def _near_copy(rng: random.Random, row: dict) -> dict:
    words = row["output"].split(" ")
    for _ in range(rng.randint(1, 3)):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return {**row, "output": " ".join(words)}


def rows(count: int, seed: int = 0, near_duplicates: float = 0.0) -> list[dict]:
    rng = random.Random(seed)
    near = random.Random(seed + 1)  # its own stream: near_duplicates=0 gives the rows it always gave
    out = []
    for i in range(count):
        if i and near_duplicates and near.random() < near_duplicates:
            out.append(_near_copy(near, out[near.randrange(len(out))]))
            continue
        if i and rng.random() < 0.02:  # an exact duplicate of an earlier row
            out.append(dict(out[rng.randrange(len(out))]))
            continue
        row = {
            "instruction": _text(rng, 40, 300),
            "input": _text(rng, 50, 800) if rng.random() < 0.4 else None,
            "output": _text(rng, 200, 2200),
        }
        if rng.random() < 0.005:  # must be rejected: nothing to learn from
            row["output"] = ""
        out.append(row)
    return out


def generate(directory: Path, count: int, shards: int = 4, seed: int = 0, near_duplicates: float = 0.0) -> list[Path]:
    """Write ``count`` rows as ``shards`` Parquet files; reuse them if they already exist."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"part-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)]
    marker = directory / (f"_rows-{count}-seed-{seed}" + (f"-near-{near_duplicates:g}" if near_duplicates else ""))
    if marker.exists() and all(p.exists() for p in paths):
        return paths
    data = rows(count, seed, near_duplicates)
    schema = pa.schema([("instruction", pa.string()), ("input", pa.string()), ("output", pa.string())])
    per_shard = -(-count // shards)
    for index, path in enumerate(paths):
        chunk = data[index * per_shard : (index + 1) * per_shard]
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema), path, row_group_size=ROW_GROUP_ROWS)
    marker.write_text("")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near-duplicates", type=float, default=0.0, help="share of rows that are near duplicates")
    args = parser.parse_args()
    for path in generate(args.directory, args.rows, args.shards, args.seed, args.near_duplicates):
        print(path)


if __name__ == "__main__":
    main()
