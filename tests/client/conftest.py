"""The CLI tests run against the service started by tests.live."""

from tests.live import service, service_db_url  # noqa: F401 - fixtures
