"""The propensity fits run with the OpenMP threads limited, from the first fit of a process on.

threadpoolctl limits only the thread pools already loaded; scikit-learn is imported lazily, so without
``propensity.load_scikit_learn`` the first fit ran with unlimited OpenMP threads (38-60 s instead of 1-2 s
on the loaded 2-core machine, bench/optimizer.py). Run in a fresh interpreter: in this one, other tests
have imported scikit-learn already, which would hide the fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import numpy as np, pandas as pd
from threadpoolctl import threadpool_info
from optimizer.ml import propensity
assert "sklearn.ensemble" not in sys.modules, "imported before the first fit: the probe would prove nothing"
seen = []
real = propensity._fit
def spy(*args, **kwargs):
    seen.extend({"api": i["user_api"], "threads": i["num_threads"]} for i in threadpool_info())
    return real(*args, **kwargs)
propensity._fit = spy
rng = np.random.default_rng(0)
frame = pd.DataFrame({"opens": rng.random(300), "recency_days": rng.random(300), "y": rng.integers(0, 2, 300)})
propensity.fit(frame, frame, features=["opens", "recency_days"], label="y", heuristic_frequency="opens", threads=1)
print(json.dumps(seen))
"""


def test_first_fit_in_a_process_runs_with_openmp_limited_to_the_threads_asked():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    pools = json.loads(out.stdout.strip().splitlines()[-1])
    openmp = [p for p in pools if p["api"] == "openmp"]
    assert openmp, f"the OpenMP runtime was not loaded when the fit began: {pools}"
    assert all(p["threads"] == 1 for p in openmp), pools
