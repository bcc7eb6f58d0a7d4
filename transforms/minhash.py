"""MinHash signatures and LSH bands for near-duplicate detection (``transforms/dedup.py``).

A text's word shingles are hashed, the signature is the minimum of ``num_perm`` universal
hashes over them, and the signature is cut into ``bands`` of ``rows``: two texts that share a
band are candidates. A candidate pair is a near duplicate when its signatures agree on enough
functions (``agreement``: an unbiased estimate of the shingles' Jaccard similarity).
``near_plan`` picks the cut-off of that estimate for a threshold and the bands that find the
pairs above it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

_MAX_32 = np.uint64(0xFFFFFFFF)


def shingles(text: str, size: int) -> list[str]:
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


# Per-offset multipliers for hashing a word's bytes (a word longer than this wraps around).
_BYTE_WEIGHTS = np.random.default_rng(0x5EED).integers(1, 1 << 63, size=64, dtype=np.uint64) | np.uint64(1)
# (byte + 1) * weight for every (offset, byte), flat by offset * 256 + byte; spaces weigh nothing.
with np.errstate(over="ignore"):
    _WEIGHTED_BYTES = (np.outer(_BYTE_WEIGHTS, np.arange(1, 257, dtype=np.uint64))).ravel()
_WEIGHTED_BYTES[np.arange(len(_BYTE_WEIGHTS)) * 256 + 32] = 0


def word_hashes(text: str) -> np.ndarray:
    """A 64-bit hash of each word of ``text`` (words separated by single spaces, as
    ``normalize_text`` leaves them), all at once: the sum over the word's UTF-8 bytes of the byte
    times a fixed random weight for its offset in the word (mod 2**64). Equal words hash equal
    wherever they stand; a Python loop over the words was most of the cost."""
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    if not len(data):
        return np.zeros(1, dtype=np.uint64)
    return _word_hashes(data)[0]


def _word_hashes(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``word_hashes`` of UTF-8 bytes (not empty), and where each word starts in them."""
    is_start = np.empty(len(data), dtype=bool)
    is_start[0] = True
    np.equal(data[:-1], 32, out=is_start[1:])
    starts = np.flatnonzero(is_start)
    # Each byte's offset in its word: its position less its word's start.
    offsets = np.arange(len(data), dtype=np.intp)
    offsets -= np.repeat(starts, np.diff(starts, append=len(data)))
    # One lookup per byte in the table of (byte + 1) * weight[offset % 64] (0 for a space);
    # intp indices: take() converts any other type first, at several times the lookup's cost.
    offsets &= len(_BYTE_WEIGHTS) - 1
    offsets <<= 8
    offsets |= data
    return np.add.reduceat(_WEIGHTED_BYTES.take(offsets), starts), starts


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """32-bit hashes of the word shingles of ``text`` (normalised: see ``word_hashes``; the same
    set ``shingles`` lists): each word hashed once, shingles combining their words' hashes with a
    vectorised polynomial."""
    return _shingles_of_words(word_hashes(text), size)


def _shingles_of_words(words: np.ndarray, size: int) -> np.ndarray:
    """32-bit hashes of the shingles of ``size`` words, from the words' hashes (fewer words than
    a shingle: one shingle of them all)."""
    combined = window_hashes(words, min(size, len(words)))
    return (combined ^ (combined >> np.uint64(32))) & _MAX_32


# The polynomial's base: a run's hash is ((w0 * B + w1) * B + w2) ... mod 2**64.
WINDOW_BASE = np.uint64(0x100000001B3)


def window_hashes(words: np.ndarray, size: int) -> np.ndarray:
    """A 64-bit hash of every run of ``size`` consecutive words, from the words' hashes
    (``word_hashes``): a polynomial over them, vectorised. None for fewer words than ``size``."""
    count = max(0, len(words) - size + 1)
    combined = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(size):
            combined = combined * WINDOW_BASE + words[offset : offset + count]
    return combined


def longer_windows(windows: np.ndarray, words: np.ndarray, size: int) -> np.ndarray:
    """``window_hashes(words, size)`` from ``windows``, those of ``size - 1``: one step more of
    the polynomial, not ``size`` steps."""
    count = max(0, len(words) - size + 1)
    with np.errstate(over="ignore"):
        return windows[:count] * WINDOW_BASE + words[size - 1 : size - 1 + count]


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

    def signatures(self, texts: list[str], permutations=None) -> np.ndarray:
        """``signature`` of each text, one row each, computed for the whole batch at once: the
        same values, at a fraction of the numpy calls per text."""
        a, b = permutations if permutations is not None else self._permutations()
        hashes, counts = batch_shingle_hashes(texts, self.shingle)
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        ends = np.cumsum(counts)
        begin = 0  # first text of the chunk
        while begin < len(texts):
            # Texts whose shingles fit in one buffer of _CHUNK_SHINGLES rows (a longer text alone).
            first = int(ends[begin - 1]) if begin else 0
            end = max(begin + 1, int(np.searchsorted(ends, first + _CHUNK_SHINGLES, side="right")))
            chunk = hashes[first:int(ends[end - 1])]
            # Functions by rows, shingles along them: numpy reduces along the last axis many
            # times faster than down the first.
            values = np.multiply.outer(a, chunk)
            values += b[:, None]
            # The minimum of the top 32 bits is the top 32 bits of the minimum: one shift per
            # text and function, not per shingle.
            starts = np.concatenate(([0], ends[begin:end - 1] - first)).astype(np.intp)
            out[begin:end] = (np.minimum.reduceat(values, starts, axis=1) >> np.uint64(32)).T
            begin = end
        return out


_CHUNK_SHINGLES = 8192


def batch_shingle_hashes(texts: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``shingle_hashes`` of every text, concatenated, and how many each has. The words of the
    texts are hashed in one pass over their bytes joined by spaces; a text that would not split
    the same way there (empty, ending in a space) is hashed alone."""
    parts: list[np.ndarray | None] = [None] * len(texts)
    joinable = [i for i, text in enumerate(texts) if text and not text.endswith(" ")]
    for i in set(range(len(texts))) - set(joinable):
        parts[i] = shingle_hashes(texts[i], size)
    if joinable:
        encoded = [texts[i].encode() for i in joinable]
        words, starts = _word_hashes(np.frombuffer(b" ".join(encoded), dtype=np.uint8))
        # Each text's words: the word starts within its bytes.
        data_ends = np.cumsum([len(e) + 1 for e in encoded])
        word_ends = np.searchsorted(starts, data_ends - 1, side="left")
        word_starts = np.concatenate(([0], word_ends[:-1]))
        # Every window of the joined words, those across two texts unused.
        windows = _shingles_of_words(words, size) if len(words) >= size else np.zeros(0, dtype=np.uint64)
        for i, start, end in zip(joinable, word_starts.tolist(), word_ends.tolist()):
            if end - start >= size:
                parts[i] = windows[start : end - size + 1]
            else:
                parts[i] = _shingles_of_words(words[start:end], size)
    counts = np.array([len(part) for part in parts], dtype=np.int64)
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)), counts


def collision_probability(similarity, bands: int, rows: int):
    """The chance that two signatures of ``similarity`` share at least one of ``bands`` bands
    of ``rows`` functions."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


# The contract near dedup is held to (tests/transforms/test_near_contract.py, README): pairs at
# least this far above the threshold are dropped (>= 95 %), pairs this far below it are kept
# (false drops <= 2 %).
ABOVE, BELOW = 0.05, 0.10
# Candidates: bands that make pairs at the cut-off collide at least this often.
BAND_RECALL = 0.95


@dataclass(frozen=True)
class NearPlan:
    """How near dedup at a threshold decides: ``bands`` x ``rows`` of the signature make
    candidates; a candidate pair whose signatures agree on at least ``cutoff`` of their
    functions is a near duplicate."""

    threshold: float
    bands: int
    rows: int
    cutoff: float


def near_plan(threshold: float, num_perm: int) -> NearPlan:
    """The verification cut-off and the banding for ``threshold`` with ``num_perm`` functions.

    The agreement of two signatures estimates the pair's similarity J with standard error
    sqrt(J (1 - J) / num_perm). The cut-off sits between ``threshold + ABOVE`` and
    ``threshold - BELOW`` where both are the same number of standard errors away, so that misses
    just above the threshold and false drops below it are equally unlikely (0.785 at 0.8 with 128
    functions; the threshold itself when ``threshold + ABOVE`` reaches 1 or ``threshold - BELOW``
0). The bands are the fewest (longest) that still make pairs at the cut-off
    candidates ``BAND_RECALL`` of the time: fewer bands, fewer candidates to verify."""
    high, low = threshold + ABOVE, threshold - BELOW
    if high < 1.0 and low > 0.0:
        # Standard errors, less their common factor 1 / sqrt(num_perm): the cut-off is the same
        # for any number of functions (more functions, fewer pairs on the wrong side of it).
        error_high, error_low = (np.sqrt(j * (1 - j)) for j in (high, low))
        cutoff = float((high * error_low + low * error_high) / (error_low + error_high))
    else:  # no pairs above (or below) the contract's band: the threshold itself
        cutoff = threshold
    bands, rows = num_perm, 1
    for rows_per_band in range(1, num_perm + 1):
        count = num_perm // rows_per_band
        if collision_probability(cutoff, count, rows_per_band) < BAND_RECALL:
            break
        bands, rows = count, rows_per_band
    return NearPlan(threshold, bands, rows, cutoff)


def agreement(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The share of functions on which signatures agree, row by row (the pairs' estimated
    Jaccard similarity)."""
    return (first == second).mean(axis=-1)


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit hash per band of the signature, the band's index mixed in (equal only for the
    same band of two signatures)."""
    data, width = signature.tobytes(), rows * signature.itemsize
    hashers = _band_hashers(bands)
    hashes = []
    for band in range(bands):
        hasher = hashers[band].copy()  # a salted hasher copied: cheaper than keyed anew
        hasher.update(data[band * width : (band + 1) * width])
        hashes.append(int.from_bytes(hasher.digest(), "little"))
    return hashes


@functools.lru_cache(maxsize=8)
def _band_hashers(bands: int) -> tuple:
    return tuple(hashlib.blake2b(digest_size=8, salt=band.to_bytes(2, "big")) for band in range(bands))
