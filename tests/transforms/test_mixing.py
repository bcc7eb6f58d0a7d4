import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.recipe import InputSpec
from transforms.mixing import mixture_sizes


@given(st.lists(st.tuples(st.integers(0, 5000), st.floats(0.01, 10)), min_size=1, max_size=6))
def test_the_mixture_is_the_largest_the_counts_allow_in_the_weights_shares(sources):
    kept, weights = [k for k, _ in sources], [w for _, w in sources]
    sizes = mixture_sizes(kept, weights)
    assert all(0 <= size <= count for size, count in zip(sizes, kept))
    present = [i for i, k in enumerate(kept) if k]
    if not present:
        assert sizes == [0] * len(kept)
        return
    # Some source keeps everything (else the mixture could be larger) ...
    assert any(sizes[i] == kept[i] for i in present)
    # ... and each share is its weight's, up to half an example of rounding.
    total_weight, total = sum(weights[i] for i in present), sum(sizes)
    for i in present:
        assert abs(sizes[i] - weights[i] / total_weight * total) <= 0.5 + weights[i] / total_weight * len(present) * 0.5 + 1e-9


def test_paths_or_sources():
    assert InputSpec(sources=[{"name": "a", "paths": "x"}, {"name": "b", "paths": ["y", "z"], "weight": 3}]).all_paths() == ["x", "y", "z"]
    with pytest.raises(ValueError, match="not both"):
        InputSpec(paths=["x"], sources=[{"name": "a", "paths": "x"}])
    with pytest.raises(ValueError, match="given twice"):
        InputSpec(sources=[{"name": "a", "paths": "x"}, {"name": "a", "paths": "y"}])
    with pytest.raises(ValueError):
        InputSpec(sources=[{"name": "a", "paths": "x", "weight": 0}])
    with pytest.raises(ValueError, match="at least one path"):
        InputSpec()
