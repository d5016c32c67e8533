"""The registry of installed architectures: the built-in zoo, entry points that load, and entry points that are
listed as unavailable with the reason (never a crash, never silently used)."""

import sys
from importlib.metadata import EntryPoint

import pytest

from unlearn_contract import ENTRY_POINT_GROUP, PluginError, get_registry
from unlearn_contract.registry import discover

SAMPLES = "tests.unlearn_contract.sample_plugins"


def ep(name: str, obj: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{SAMPLES}:{obj}", group=ENTRY_POINT_GROUP)


def test_the_zoo_is_built_in_and_importing_the_contract_loads_no_torch():
    import subprocess

    code = "import sys, unlearn_contract; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    found = discover(eps=[])
    assert list(found.installed) == ["lenet", "logreg", "mlp", "resnet18"]
    assert {e.source for e in found.installed.values()} == {"built-in"}


def test_an_entry_point_is_loaded_with_its_version():
    found = discover(eps=[ep("tiny", "Tiny")])
    assert found.get("tiny").version == "9.9" and found.get("tiny").plugin.name == "tiny"
    assert found.unavailable == {}


@pytest.mark.parametrize(
    ("name", "obj", "reason"),
    [
        ("not-an-architecture", "NotAnArchitecture", "is not an unlearn_contract.Architecture"),
        ("misnamed", "Misnamed", "calls itself 'something-else'"),
        ("no-pydantic", "NoPydantic", "Config must be a pydantic BaseModel"),
        ("no-build", "NoBuild", "build() is not implemented"),
        ("gone", "DoesNotExist", "AttributeError"),
    ],
)
def test_broken_entry_points_are_unavailable_with_the_reason(name, obj, reason):
    found = discover(eps=[ep(name, obj), ep("tiny", "Tiny")])
    assert list(found.unavailable) == [name] and reason in found.unavailable[name].error
    assert "tiny" in found.installed and name not in found.installed
    with pytest.raises(PluginError, match="installed but unavailable"):
        found.get(name)


def test_a_missing_module_is_unavailable():
    missing = EntryPoint(name="ghost", value="no_such_package.plugin:Arch", group=ENTRY_POINT_GROUP)
    found = discover(eps=[missing])
    assert "ModuleNotFoundError" in found.unavailable["ghost"].error


def test_a_name_two_distributions_claim_is_refused_and_a_built_in_name_cannot_be_taken():
    found = discover(eps=[ep("tiny", "Tiny"), ep("tiny", "Tiny"), ep("mlp", "Tiny")])
    assert "tiny" not in found.installed and "two distributions" in found.unavailable["tiny"].error
    assert found.get("mlp").source == "built-in"
    assert any("built-in zoo" in u.error for u in found.unavailable.values())


def test_unknown_names_list_what_is_installed():
    with pytest.raises(PluginError, match=r"unknown architecture 'transformer'; installed: lenet, logreg, mlp"):
        discover(eps=[]).get("transformer")


def test_the_example_plugins_are_installed():
    """`make install` installs examples/plugins/*; the tests of the examples need them."""
    installed = get_registry().installed
    missing = {"text-transformer", "frozen-cnn"} - set(installed)
    assert not missing, f"run `make install` (pip install -e examples/plugins/...): {sorted(missing)} missing"
    assert installed["text-transformer"].source.startswith("unlearn-text-transformer ")
    assert installed["frozen-cnn"].version == "0.1.0"
