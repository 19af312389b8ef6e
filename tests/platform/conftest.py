import pytest

from marketing_ai import jobs


@pytest.fixture
def registry(monkeypatch) -> dict[str, jobs.Job]:
    """An empty job registry for the test: jobs it declares with ``@jobs.job`` vanish afterwards."""
    fresh: dict[str, jobs.Job] = {}
    monkeypatch.setattr(jobs, "REGISTRY", fresh)
    return fresh
