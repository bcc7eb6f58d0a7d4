import numpy as np

from transforms.minhash import MinHasher, optimal_bands, shingles


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


def test_band_choice_follows_the_threshold():
    bands, rows = optimal_bands(0.8, 128)
    assert bands * rows <= 128
    # The S-curve's midpoint (1/b)^(1/r) sits near the threshold.
    assert 0.7 < (1 / bands) ** (1 / rows) < 0.85
    loose_bands, loose_rows = optimal_bands(0.5, 128)
    assert (1 / loose_bands) ** (1 / loose_rows) < (1 / bands) ** (1 / rows)
