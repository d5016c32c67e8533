"""Fixtures for end-to-end tests: the API in process, real `python -m workers` subprocesses (tests/workers/procs.py)."""

import pytest

from tests.workers.procs import redis_client, test_queue, workers  # noqa: F401 - fixtures


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
