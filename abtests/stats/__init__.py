"""The A/B testing statistics engine: pure numpy/scipy, no Django.

Every public function takes plain numbers or sequences and returns a frozen dataclass (or a number).
Arm 0 is always the control. The methods, formulas, edge cases and references are documented in
``docs/statistics.md``; ``tests/abtests/test_stats.py`` compares every statistic with scipy/statsmodels.

Contract used by the rest of the app (see docs/statistics.md for the full list):
``proportions_test``, ``welch_test``, ``srm_p_value`` + ``SRM_THRESHOLD``, ``chance_to_beat_control``,
``sample_size`` (+ ``sample_size_unrounded``), ``days_needed``, ``sequential_test`` (+ ``sequential_means_test``),
``hash_bucket`` (+ vectorised ``hash_buckets``), ``choose_variant``.
No result holds NaN or infinity: undefined quantities are ``None`` with a ``note`` saying why.

The decision rule (winner / inconclusive / srm) is defined once, in ``abtests.analysis``; the engine only
computes. Every relative-lift interval is the verdict's own test inverted (``abtests.stats.intervals``), so
"significant" and "the interval excludes 0" never disagree.

Modules: ``proportions`` (conversion rates), ``welch`` (revenue per user), ``sequential`` (always-valid
inference), ``intervals`` (test-inverted intervals, Holm levels), ``srm``, ``bayes``, ``planning``,
``hashing`` (assignment); ``_common`` holds the shared checks.
"""

from abtests.stats import intervals
from abtests.stats._common import (
    MAX_CONFIDENCE,
    MIN_CONFIDENCE,
    _as_counts,
    _check_confidence,
    _check_users_conversions,
    _holm,
    _holm_over,
    _z,
)
from abtests.stats.bayes import BayesArm, BayesResult, chance_to_beat_control
from abtests.stats.hashing import choose_variant, fnv1a32, hash_bucket, hash_buckets
from abtests.stats.planning import days_needed, sample_size, sample_size_unrounded
from abtests.stats.proportions import ArmResult, ProportionsResult, proportions_test
from abtests.stats.sequential import SequentialArm, SequentialResult, sequential_means_test, sequential_test
from abtests.stats.srm import SRM_THRESHOLD, srm_p_value
from abtests.stats.welch import WelchArm, WelchResult, welch_test

__all__ = [
    "MAX_CONFIDENCE", "MIN_CONFIDENCE", "SRM_THRESHOLD",
    "ArmResult", "BayesArm", "BayesResult", "ProportionsResult", "SequentialArm", "SequentialResult",
    "WelchArm", "WelchResult",
    "chance_to_beat_control", "choose_variant", "days_needed", "fnv1a32", "hash_bucket", "hash_buckets",
    "intervals", "proportions_test", "sample_size", "sample_size_unrounded", "sequential_means_test", "sequential_test",
    "srm_p_value", "welch_test",
    # Helpers other pure modules reuse (one definition each).
    "_as_counts", "_check_confidence", "_check_users_conversions", "_holm", "_holm_over", "_z",
]
