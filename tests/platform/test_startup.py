"""Process start-up stays light: every process sets Django up (gunicorn workers, Celery, each
``import_events --jobs`` worker, every manage.py command), and the job registry imports each app's
services at start-up. scikit-learn, skops and scipy.stats load on first use only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sklearn", "skops", "scipy.stats")


def test_django_setup_registers_every_job_without_loading_the_ml_libraries():
    code = (
        "import django, sys; django.setup()\n"
        "from marketing_ai import jobs\n"
        "print(','.join(sorted(set(jobs.SEED_SCHEDULES) - set(jobs.REGISTRY))))\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marketing_ai.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    missing, loaded = out.stdout.split("\n")[:2]
    assert missing == "", f"seed jobs not registered at start-up: {missing}"  # their modules were imported
    assert loaded == "", f"imported at start-up: {loaded}"
