from hypothesis import given
from hypothesis import strategies as st
import numpy as np

from transforms.minhash import BAND_RECALL, MinHasher, collision_probability, near_plan, shingles


def jaccard(a, b, size):
    sa, sb = set(shingles(a, size)), set(shingles(b, size))
    return len(sa & sb) / len(sa | sb)


def test_minhash_estimates_jaccard_and_is_deterministic():
    base = " ".join(f"word{i}" for i in range(200))
    variant = base.replace("word50 ", "changed ").replace("word150 ", "other ")
    hasher = MinHasher(num_perm=256, shingle=3)
    a, b = hasher.signature(base), hasher.signature(variant)
    assert np.array_equal(a, MinHasher(num_perm=256, shingle=3).signature(base))
    assert abs(float(np.mean(a == b)) - jaccard(base, variant, 3)) < 0.08


def test_the_plan_verifies_below_the_threshold_and_bands_for_recall_at_the_cutoff():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        plan = near_plan(threshold, 128)
        assert threshold - 0.1 < plan.cutoff < threshold
        assert plan.bands * plan.rows <= 128
        assert collision_probability(plan.cutoff, plan.bands, plan.rows) >= BAND_RECALL
        # The fewest bands that do: one row more per band would miss pairs at the cut-off.
        assert collision_probability(plan.cutoff, 128 // (plan.rows + 1), plan.rows + 1) < BAND_RECALL
    assert near_plan(0.8, 128).cutoff == near_plan(0.8, 256).cutoff
    assert near_plan(0.97, 128).cutoff == 0.97  # nothing above 1: the threshold itself


def _word_hash(word: str) -> int:
    """The definition, one word at a time: the sum of (byte + 1) x the weight of its offset."""
    from transforms.minhash import _BYTE_WEIGHTS

    weights = [int(w) for w in _BYTE_WEIGHTS]
    return sum((byte + 1) * weights[i % len(weights)] for i, byte in enumerate(word.encode())) % 2**64


@given(st.lists(st.lists(st.sampled_from(list("abé東") + ["x" * 70]), min_size=1, max_size=8).map("".join), max_size=12))
def test_word_hashes_follow_their_definition(words):
    from transforms.minhash import word_hashes

    text = " ".join(words)
    assert word_hashes(text).tolist() == ([_word_hash(word) for word in text.split(" ")] if text else [0])


TEXTS = st.lists(st.sampled_from(["a", "b", "é", "東京", "", " ", "word" * 20]), max_size=30).map("".join)


@given(st.lists(st.one_of(TEXTS, st.lists(st.sampled_from(["a", "b", "é", "東京", "the"]), max_size=40).map(" ".join)),
                max_size=40), st.integers(1, 6))
def test_a_batch_of_signatures_is_each_texts_signature(texts, shingle):
    """Batched: the same values as one text at a time, whatever the texts (empty ones, ones
    ending in a space, shorter than a shingle, a chunk boundary inside a batch)."""
    from transforms import minhash

    hasher = MinHasher(num_perm=16, shingle=shingle)
    permutations = hasher._permutations()
    expected = np.array([hasher.signature(text, permutations) for text in texts], dtype=np.uint32).reshape(-1, 16)
    old_chunk, minhash._CHUNK_SHINGLES = minhash._CHUNK_SHINGLES, 7
    try:
        assert np.array_equal(hasher.signatures(texts, permutations), expected)
    finally:
        minhash._CHUNK_SHINGLES = old_chunk


@given(st.lists(st.integers(0, 2**64 - 1), max_size=40), st.integers(1, 12))
def test_longer_windows_are_the_windows_of_one_word_more(values, size):
    from transforms.minhash import longer_windows, window_hashes

    words = np.array(values, dtype=np.uint64)
    assert np.array_equal(longer_windows(window_hashes(words, size), words, size + 1), window_hashes(words, size + 1))
