"""Fixtures for end-to-end tests: the same real-worker fixtures and report hook as the worker tests."""

from tests.workers.conftest import *  # noqa: F403 - fixtures and the pytest_runtest_makereport hook
