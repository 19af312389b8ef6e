"""Fan-out part workers for the fan-out tests, imported by the tests and by their Celery workers (``-I``).

``FANOUT_TEST_FAIL_AFTER_WRITE`` (a worker's environment only; comma-separated part worker names): in that
process, those parts write their rows and then fail, as a helper that dies after its transaction committed
and before it could mark the part done. The run must do the part again and still write each row once.
"""

from __future__ import annotations

import logging
import os
import time

from marketing_ai import fanout

log = logging.getLogger(__name__)


def slow_part(spec: dict) -> int:
    """A part that takes a while, so a helper started with the run surely gets some.

    ``FANOUT_TEST_HELPER_SECONDS`` (a worker's environment only): in that process every part takes that
    long instead, as a helper far slower than the run (a fresh process loading its libraries).
    """
    helper_seconds = os.environ.get("FANOUT_TEST_HELPER_SECONDS")
    if helper_seconds:
        log.warning("test: part %s taken by a slow helper", spec["rows"])
    time.sleep(float(helper_seconds or spec.get("seconds", 0.3)))
    return int(spec["rows"])


fanout.register_part_worker("platform_slow_part", slow_part)


def _failing_after_write(name: str, work: fanout.PartWorker) -> fanout.PartWorker:
    def part(spec: dict) -> int:
        rows = work(spec)
        log.warning("test: %s part %s staged %d rows and now fails", name, spec.get("part"), rows)
        raise RuntimeError(f"injected failure after part {spec.get('part')} of {name} was written")

    return part


for _name in filter(None, os.environ.get("FANOUT_TEST_FAIL_AFTER_WRITE", "").split(",")):
    # Replaced in this process's table only (register_part_worker refuses a second function for a name).
    fanout.PART_WORKERS[_name] = _failing_after_write(_name, fanout.PART_WORKERS[_name])
