"""How near dedup's decisions follow the true similarity: pairs of texts of known Jaccard
similarity (5-word shingles, as near dedup shingles), and the share of pairs at each similarity
that near dedup drops — candidates from shared LSH bands, verified by signature agreement, and
decided as a run decides them (``transforms/dedup.py``) — beside datasketch's ``MinHashLSH`` at
the same threshold where it is installed (candidates only, as it has no verification).

    python -m benchmarks.near_curve [--pairs 3000] [--threshold 0.8]

Near dedup's contract (``tests/transforms/test_near_contract.py``): at least 95 % of pairs at
threshold + 0.05 or above are dropped, at most 2 % of pairs at threshold - 0.1 or below.
"""

from __future__ import annotations

import argparse
import importlib.util
import random

import numpy as np

from transforms.dedup import (
    NEAR_RECORD,
    candidate_pairs,
    decisions_in,
    near_decisions,
    signature_record,
    verified_pairs,
)
from transforms.minhash import MinHasher, band_hashes, near_plan, shingles

SHINGLE = 5


def pair(rng: random.Random, words: int, similarity: float) -> tuple[str, str, float]:
    """Two texts of ``words`` distinct words whose 5-word shingle sets have about ``similarity``
    Jaccard similarity: words replaced at least a shingle apart, each taking its 5 shingles out
    of the intersection. Returns the texts and their exact Jaccard similarity."""
    base = [f"w{rng.getrandbits(40):x}" for _ in range(words)]
    total = words - SHINGLE + 1
    replaced = max(0, round(total * (1 - similarity) / (SHINGLE * (1 + similarity))))
    slots = list(range(0, words, SHINGLE))
    changed = list(base)
    for position in rng.sample(slots, min(replaced, len(slots))):
        changed[position] = f"x{rng.getrandbits(40):x}"
    a, b = " ".join(base), " ".join(changed)
    return a, b, jaccard(a, b)


def jaccard(a: str, b: str) -> float:
    first, second = set(shingles(a, SHINGLE)), set(shingles(b, SHINGLE))
    return len(first & second) / len(first | second)


def ftprep_drops(pairs: list[tuple[str, str, float]], threshold: float, num_perm: int = 128) -> list[bool]:
    """Whether near dedup at ``threshold`` drops the second text of each pair as a duplicate of
    the first, all pairs' texts deduplicated together as one file's rows (2i, 2i + 1)."""
    hasher = MinHasher(num_perm=num_perm, shingle=SHINGLE)
    plan = near_plan(threshold, num_perm)
    signatures = hasher.signatures([text for a, b, _ in pairs for text in (a, b)], hasher._permutations())
    records = np.zeros(len(signatures) * plan.bands, dtype=NEAR_RECORD)
    records["band"] = [band for signature in signatures for band in band_hashes(signature, plan.bands, plan.rows)]
    records["row"] = records["slot"] = np.repeat(np.arange(len(signatures)), plan.bands)
    held = np.zeros(len(signatures), dtype=signature_record(num_perm))
    held["row"], held["signature"] = np.arange(len(signatures)), signatures

    def read(numbers: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return held["signature"][slots]

    decided = near_decisions([verified_pairs(candidate_pairs(records, np.zeros(0, dtype=np.uint64)), read, plan.cutoff)])
    dropped = {(d.row, d.survivor_row) for d in decisions_in(decided)}
    return [(2 * i + 1, 2 * i) in dropped for i in range(len(pairs))]


def datasketch_drops(pairs: list[tuple[str, str, float]], threshold: float, num_perm: int = 128) -> list[bool] | None:
    if importlib.util.find_spec("datasketch") is None:
        return None
    from datasketch import MinHash, MinHashLSH

    def minhash(text: str) -> MinHash:
        m = MinHash(num_perm=num_perm)
        m.update_batch([s.encode() for s in shingles(text, SHINGLE)])
        return m

    found = []
    for index, (a, b, _) in enumerate(pairs):
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        lsh.insert(f"a{index}", minhash(a))
        found.append(bool(lsh.query(minhash(b))))
    return found


def curve(pairs: list[tuple[str, str, float]], drops: list[bool], edges: np.ndarray) -> list[tuple[float, float, int]]:
    """(low, share dropped, pairs) per similarity bucket [low, next edge)."""
    similarity = np.array([j for _, _, j in pairs])
    dropped = np.array(drops)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (similarity >= low) & (similarity < high if high < 1.0 else similarity <= high)
        if inside.any():
            rows.append((float(low), float(dropped[inside].mean()), int(inside.sum())))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    pairs = [pair(rng, args.words, rng.uniform(0.5, 1.0)) for _ in range(args.pairs)]
    edges = np.round(np.arange(0.5, 1.0001, 0.05), 2)
    ours = curve(pairs, ftprep_drops(pairs, args.threshold), edges)
    theirs = datasketch_drops(pairs, args.threshold)
    theirs_by_low = {low: share for low, share, _ in curve(pairs, theirs, edges)} if theirs is not None else {}
    plan = near_plan(args.threshold, 128)
    print(f"near dedup at threshold {args.threshold:g}: {plan.bands} bands x {plan.rows} rows of 128, verified at "
          f"{plan.cutoff:.3f} agreement; {args.pairs:,} pairs of {args.words}-word texts\n")
    print("| true Jaccard | pairs | dropped by ftprep | dropped by datasketch MinHashLSH |\n| --- | ---: | ---: | ---: |")
    for low, share, count in ours:
        other = f"{theirs_by_low[low]:.1%}" if low in theirs_by_low else "—"
        print(f"| {low:.2f}–{low + 0.05:.2f} | {count} | {share:.1%} | {other} |")


if __name__ == "__main__":
    main()
