"""Process start-up stays light: every process sets Django up (gunicorn workers, Celery, every
manage.py command), and each app's ``register_jobs`` imports its services at start-up. scikit-learn,
skops and scipy.stats load on first use only."""

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


def test_the_apps_register_the_jobs_and_importing_a_service_module_registers_nothing():
    code = (
        "import django, importlib; django.setup()\n"
        "from marketing_ai import jobs\n"
        "registered = dict(jobs.REGISTRY); jobs.REGISTRY.clear()\n"
        "import abtests.services, analytics.alerts, analytics.services\n"
        "import optimizer.services.affinity, optimizer.services.recommendations\n"
        "import optimizer.services.send_times, optimizer.services.training\n"
        "for module in (abtests.services, analytics.alerts, analytics.services, optimizer.services.affinity,\n"
        "               optimizer.services.recommendations, optimizer.services.send_times, optimizer.services.training):\n"
        "    importlib.reload(module)\n"
        "print(','.join(sorted(jobs.REGISTRY)))\n"
        "jobs.register_app_jobs()\n"
        "print(','.join(sorted(jobs.REGISTRY)), ','.join(sorted(registered)))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marketing_ai.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    after_imports, after_registration = out.stdout.split("\n")[:2]
    assert after_imports == "", f"importing a module registered {after_imports}"
    again, at_setup = after_registration.split(" ")
    assert again == at_setup  # the apps' register_jobs() is what django.setup() registered
    assert set(at_setup.split(",")) == {
        "abtest_results", "alerts", "campaign_optimizations", "daily_analytics", "event_partitions", "merchant_affinity",
        "model_retraining", "send_times",
    }


def test_the_packages_every_process_imports_start_from_compiled_bytecode():
    # Where PYTHONDONTWRITEBYTECODE is set (our CI machine), Python never writes .pyc files, and uv does not
    # either unless asked (the Makefile's --compile-bytecode): every process then compiled these from source,
    # 2.5 s of a 4 s start. Where it is unset, the first import wrote them.
    import importlib.util

    import django
    import numpy
    import pandas

    missing = [m.__name__ for m in (django, numpy, pandas)
               if not Path(importlib.util.cache_from_source(m.__file__)).is_file()]
    assert missing == [], (f"no compiled bytecode for {missing}: each process compiles them on start "
                           "(a venv installed before the Makefile compiled it? `make clean install`)")
