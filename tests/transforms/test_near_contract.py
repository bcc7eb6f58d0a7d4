"""Near dedup's contract, measured on pairs of known similarity (``benchmarks/near_curve.py``
prints the whole curve): at threshold t, at least 95 % of pairs at t + 0.05 or above are dropped
and at most 2 % of pairs at t - 0.1 or below."""

import random

import numpy as np
import pytest

from benchmarks.near_curve import ftprep_drops, pair
from transforms.minhash import ABOVE, BELOW


@pytest.fixture(scope="module")
def pairs():
    rng = random.Random(28)
    return [pair(rng, 150, rng.uniform(0.5, 1.0)) for _ in range(2000)]


@pytest.mark.parametrize("threshold", [0.8, 0.7])
def test_near_dedup_drops_pairs_above_the_threshold_and_keeps_those_below(pairs, threshold):
    similarity = np.array([j for _, _, j in pairs])
    dropped = np.array(ftprep_drops(pairs, threshold))
    above, below = similarity >= threshold + ABOVE, similarity <= threshold - BELOW
    assert above.sum() > 300 and below.sum() > 300  # enough pairs on each side to measure
    assert dropped[above].mean() >= 0.95
    assert dropped[below].mean() <= 0.02
    # And bucket by bucket, not only on average: the 0.05 just above, the 0.05 just below.
    near_above = above & (similarity < threshold + ABOVE + 0.05)
    near_below = below & (similarity > threshold - BELOW - 0.05)
    assert dropped[near_above].mean() >= 0.95 and dropped[near_below].mean() <= 0.02
