"""clients/python is a package of its own: it installs into a fresh virtual environment with pip, without torch
or any server dependency, and imports nothing of the server."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
SERVER_PACKAGES = {"app", "workers", "bench", "tests", "migrations"}
INSTALL_TIMEOUT_S = 300


def test_client_sources_import_nothing_of_the_server():
    for path in (CLIENT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in SERVER_PACKAGES, f"{path.relative_to(ROOT)} imports {name}"


def test_dependencies_are_httpx_and_cryptography_only():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert sorted(d.split(">")[0].split("=")[0] for d in project["dependencies"]) == ["cryptography", "httpx"]
    assert project["scripts"] == {"unlearn": "unlearn_client.cli:main"}


def test_installs_into_a_fresh_venv_without_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(CLIENT)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    for heavy in ("torch", "fastapi", "sqlalchemy", "numpy", "unlearn-service"):
        assert f"{heavy}==" not in installed, f"{heavy} was installed with the client:\n{installed}"
    probe = (
        "import sys, unlearn_client, unlearn_client.verify, unlearn_client.cli;"
        "from unlearn_client import UnlearnClient, AsyncUnlearnClient;"
        "assert 'torch' not in sys.modules and 'app' not in sys.modules;"
        "print(unlearn_client.__file__)"
    )
    # Run outside the checkout, so the import can only come from the installed package.
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert str(venv) in done.stdout
    helped = subprocess.run([str(venv / "bin" / "unlearn"), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "audit" in helped.stdout and "deletions" in helped.stdout
