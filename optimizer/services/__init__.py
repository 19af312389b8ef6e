"""Optimiser services (writes), one module per job. Importing this package registers the jobs."""

from optimizer.services import affinity, recommendations, send_times, training  # noqa: F401
