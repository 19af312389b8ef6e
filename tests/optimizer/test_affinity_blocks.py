"""optimizer.ml.affinity computes its dense parts a block of rows at a time (memory bounded at 5,000 merchants):
the same neighbours and score scale as in one block."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from optimizer.ml import affinity


def test_neighbours_and_scale_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(3)
    weights = sparse.random(400, 30, density=0.08, format="csr", random_state=rng) * 5
    whole, _ = affinity.fit(weights)
    monkeypatch.setattr(affinity, "BLOCK_CELLS", 31)  # one row of merchants per block
    blocked, _ = affinity.fit(weights)
    assert np.array_equal(whole["neighbour_index"], blocked["neighbour_index"])
    assert np.array_equal(whole["neighbour_similarity"], blocked["neighbour_similarity"])
    assert blocked["scale"] == whole["scale"] and whole["scale"] > 0
