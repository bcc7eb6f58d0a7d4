"""MinHash signatures and LSH bands for near-duplicate detection (``transforms/dedup.py``).

A text's word shingles are hashed, the signature is the minimum of ``num_perm`` universal
hashes over them, and the signature is cut into ``bands`` of ``rows``: two texts that share a
band are candidates. ``optimal_bands`` picks the cut for a similarity threshold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

_MAX_32 = np.uint64(0xFFFFFFFF)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz


def shingles(text: str, size: int) -> list[str]:
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


# Per-offset multipliers for hashing a word's bytes (a word longer than this wraps around).
_BYTE_WEIGHTS = np.random.default_rng(0x5EED).integers(1, 1 << 63, size=64, dtype=np.uint64) | np.uint64(1)


def word_hashes(text: str) -> np.ndarray:
    """A 64-bit hash of each word of ``text`` (words separated by single spaces, as
    ``normalize_text`` leaves them), all at once: the sum over the word's UTF-8 bytes of the byte
    times a fixed random weight for its offset in the word (mod 2**64). Equal words hash equal
    wherever they stand; a Python loop over the words was most of the cost."""
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    if not len(data):
        return np.zeros(1, dtype=np.uint64)
    positions = np.arange(len(data))
    space = data == 32
    starts = np.flatnonzero(np.concatenate(([True], space[:-1])))
    first = np.maximum.accumulate(np.where(np.concatenate(([True], space[:-1])), positions, 0))
    weights = _BYTE_WEIGHTS[(positions - first) % len(_BYTE_WEIGHTS)]
    weighted = np.where(space, np.uint64(0), (data.astype(np.uint64) + np.uint64(1)) * weights)
    return np.add.reduceat(weighted, starts)


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """32-bit hashes of the word shingles of ``text`` (normalised: see ``word_hashes``; the same
    set ``shingles`` lists): each word hashed once, shingles combining their words' hashes with a
    vectorised polynomial."""
    hashes = word_hashes(text)
    count = max(1, len(hashes) - size + 1)
    combined = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(min(size, len(hashes))):
            combined = combined * np.uint64(0x100000001B3) + hashes[offset : offset + count]
    return (combined ^ (combined >> np.uint64(32))) & _MAX_32


@dataclass(frozen=True)
class MinHasher:
    """MinHash with ``num_perm`` hash functions of 32-bit shingle hashes: multiply-shift,
    ``((a*h + b) mod 2**64) >> 32`` with random 64-bit ``a`` (odd) and ``b`` — universal, and no
    division (the modulo by a prime was most of a signature's cost).

    The functions come from a fixed seed, so every worker computes the same signatures.
    """

    num_perm: int = 128
    shingle: int = 5
    seed: int = 1

    def _permutations(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(0, np.iinfo(np.uint64).max, size=self.num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
        b = rng.integers(0, np.iinfo(np.uint64).max, size=self.num_perm, dtype=np.uint64, endpoint=True)
        return a, b

    def signature(self, text: str, permutations=None) -> np.ndarray:
        a, b = permutations if permutations is not None else self._permutations()
        hashes = shingle_hashes(text, self.shingle)
        with np.errstate(over="ignore"):  # wrapping at 2**64 is the point
            values = (np.outer(hashes, a) + b) >> np.uint64(32)
        return values.min(axis=0).astype(np.uint32)


def _collision_probability(similarity: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - similarity**rows) ** bands


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands x rows (within num_perm) minimising the chance of false positives below the
    threshold plus false negatives above it, with equal weights."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid[grid < threshold], grid[grid >= threshold]
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = _trapezoid(_collision_probability(below, bands, rows), below)
            false_negative = _trapezoid(1.0 - _collision_probability(above, bands, rows), above)
            if false_positive + false_negative < best_error:
                best, best_error = (bands, rows), false_positive + false_negative
    return best


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit hash per band of the signature, the band's index mixed in (equal only for the
    same band of two signatures)."""
    return [
        int.from_bytes(hashlib.blake2b(signature[band * rows : (band + 1) * rows].tobytes(), digest_size=8,
                                       salt=band.to_bytes(2, "big")).digest(), "little")
        for band in range(bands)
    ]
