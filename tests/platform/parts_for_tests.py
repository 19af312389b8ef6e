"""A fan-out part worker for test_fanout.py, imported by the test and by its Celery worker (``-I``)."""

from __future__ import annotations

import time

from marketing_ai import fanout


def slow_part(spec: dict) -> int:
    """A part that takes a while, so a helper started with the run surely gets some."""
    time.sleep(float(spec.get("seconds", 0.3)))
    return int(spec["rows"])


fanout.register_part_worker("platform_slow_part", slow_part)
