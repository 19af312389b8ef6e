"""Holm and Benjamini-Hochberg adjusted p-values against statsmodels on random inputs."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from abtests import multiple_testing


@pytest.mark.parametrize("method, reference", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_equal_statsmodels_on_random_families(method, reference, monkeypatch):
    # multipletests runs gc.collect() on every call (0.2 s in this process); the result does not depend on it.
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(20261202)
    for _ in range(2000):
        m = int(rng.integers(1, 25))
        kind = rng.integers(0, 3)
        if kind == 0:
            p = rng.uniform(0, 1, m)
        elif kind == 1:  # small p-values and exact ties, where step-down/up order matters
            p = rng.choice([0.0, 1e-6, 0.001, 0.01, 0.02, 0.05, 0.5, 1.0], m)
        else:
            p = rng.beta(0.3, 3, m)
        ours = multiple_testing.adjust(p, method)
        ref = multipletests(p, method=reference)[1]
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_missing_comparisons_stay_missing_and_leave_the_family():
    p = np.array([0.01, np.nan, 0.04])
    ours = multiple_testing.holm(p)
    assert np.isnan(ours[1])
    np.testing.assert_allclose(ours[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        multiple_testing.adjust([0.1], "bonferroni-ish")
    with pytest.raises(ValueError):
        multiple_testing.holm([1.2])
