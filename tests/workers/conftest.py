"""Fixtures for worker tests: a unique queue per test and real `python -m workers` subprocesses (procs.py); the
forced verdict of the engine's update (outcomes.py)."""

import pytest

from tests.workers.outcomes import verdict  # noqa: F401 - fixture
from tests.workers.procs import (  # noqa: F401 - fixtures
    backend_url,
    module_pg_url,
    module_sqlite_url,
    redis_client,
    test_queue,
    workers,
)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
