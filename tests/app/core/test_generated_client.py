"""A client generated from /openapi.json by a standard generator (openapi-python-client, from PyPI) works: it
lists data sets page by page with the cursor, reads one, and parses a problem answer, against the running API."""

import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn

from tests.app.fakes import RecordingJobs
from tests.helpers import upload_digits

GENERATE_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(app):
    """The test's app on a real port (uvicorn in a thread), stopped at the end."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def generated(client, tmp_path):
    """The package openapi-python-client generates from the service's document, importable as `unlearn_api`."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get("/openapi.json").json()))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"project_name_override": "unlearn-api", "package_name_override": "unlearn_api",
                                  "post_hooks": []}))  # fmt: skip
    out = tmp_path / "unlearn_api"
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec), "--meta", "none"]
    command += ["--output-path", str(out), "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout  # every operation and schema understood
    sys.path.insert(0, str(tmp_path))
    try:
        yield out
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "unlearn_api" or m.startswith("unlearn_api.")]:
            del sys.modules[name]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_generated_client_lists_reads_and_parses_problems(app, client, tenant, served, generated):
    app.state.jobs = RecordingJobs()
    uploaded = [upload_digits(client, rows=20)["id"] for _ in range(3)]

    from unlearn_api import AuthenticatedClient
    from unlearn_api.api.datasets import get_dataset, list_datasets
    from unlearn_api.models import Problem

    with AuthenticatedClient(base_url=served, token=tenant["admin_key"]) as api:
        seen, cursor = [], None
        while True:
            page = list_datasets.sync(client=api, limit=2, cursor=cursor)
            seen += [d.id for d in page.items]
            cursor = page.next_cursor
            if not cursor:
                break
        assert seen == uploaded[::-1]
        one = get_dataset.sync(client=api, dataset_id=uploaded[0])
        assert (one.id, one.num_rows) == (uploaded[0], 20)
        missing = get_dataset.sync_detailed(client=api, dataset_id="no-such-data-set")
        assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
        assert "no-such-data-set" in missing.parsed.detail
    with AuthenticatedClient(base_url=served, token="unl_wrong") as api:
        refused = list_datasets.sync_detailed(client=api)
        assert refused.status_code == 401 and isinstance(refused.parsed, Problem)
