"""The installed architectures: the built-in zoo plus every plugin in the `unlearn.architectures` entry-point
group (importlib.metadata). Read once per process; a plugin that fails to load, breaks the interface, or reuses
a name is listed as unavailable with the reason, and registering a model with it is refused.

Only code installed by the operator (a distribution in the service's environment) is ever loaded here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from pydantic import BaseModel

from unlearn_contract.architecture import Architecture, PluginError

ENTRY_POINT_GROUP = "unlearn.architectures"
BUILTIN_SOURCE = "built-in"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Installed:
    plugin: Architecture
    version: str  # the plugin's version, or its distribution's
    source: str  # "built-in" or the distribution that provides it


@dataclass(frozen=True)
class Unavailable:
    name: str
    source: str
    error: str


class Registry:
    def __init__(self, installed: dict[str, Installed], unavailable: dict[str, Unavailable]):
        self.installed = dict(sorted(installed.items()))
        self.unavailable = dict(sorted(unavailable.items()))

    def get(self, name: str) -> Installed:
        """The installed architecture called `name`; PluginError naming what is installed otherwise."""
        if not isinstance(name, str):
            raise PluginError(f"architecture name must be a string, got {type(name).__name__}")
        if name in self.installed:
            return self.installed[name]
        if name in self.unavailable:
            bad = self.unavailable[name]
            raise PluginError(f"architecture {name!r} ({bad.source}) is installed but unavailable: {bad.error}")
        raise PluginError(f"unknown architecture {name!r}; installed: {', '.join(self.installed) or 'none'}")


def _source(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"entry point {ep.value}", ""
    return f"{dist.metadata['Name']} {dist.version}", dist.version


def check_plugin(obj: object, name: str) -> Architecture:
    """The plugin instance an entry point names (a class is instantiated), after checking the interface."""
    plugin = obj() if isinstance(obj, type) else obj
    if not isinstance(plugin, Architecture):
        raise PluginError(f"{type(plugin).__name__} is not an unlearn_contract.Architecture")
    declared = getattr(plugin, "name", None)
    if not isinstance(declared, str) or not NAME_PATTERN.match(declared):
        raise PluginError(f"name must match {NAME_PATTERN.pattern}, got {declared!r}")
    if declared != name:
        raise PluginError(f"the entry point is called {name!r} but the architecture calls itself {declared!r}")
    config = getattr(plugin, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        raise PluginError("Config must be a pydantic BaseModel subclass")
    config.model_json_schema()  # must be describable
    if plugin.input_dtype not in ("float", "int64"):
        raise PluginError(f"input_dtype must be 'float' or 'int64', got {plugin.input_dtype!r}")
    for method in ("build", "inputs"):
        if getattr(type(plugin), method) is getattr(Architecture, method):
            raise PluginError(f"{method}() is not implemented")
    return plugin


def discover(eps: list[EntryPoint] | None = None) -> Registry:
    """Load the built-in zoo and every entry point of the group (or the ones given)."""
    from unlearn_contract.zoo import BUILTIN, ZOO_VERSION

    installed = {p.name: Installed(p, ZOO_VERSION, BUILTIN_SOURCE) for p in BUILTIN}
    unavailable: dict[str, Unavailable] = {}
    claimed: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP) if eps is None else eps:
        source, dist_version = _source(ep)
        if ep.name in installed and installed[ep.name].source == BUILTIN_SOURCE:
            unavailable.setdefault(
                f"{ep.name} ({source})",
                Unavailable(ep.name, source, f"the name {ep.name!r} belongs to the built-in zoo"),
            )
            continue
        if ep.name in claimed:
            error = f"provided by two distributions: {claimed[ep.name]} and {source}"
            installed.pop(ep.name, None)
            unavailable[ep.name] = Unavailable(ep.name, f"{claimed[ep.name]}, {source}", error)
            continue
        claimed[ep.name] = source
        try:
            plugin = check_plugin(ep.load(), ep.name)
        except Exception as exc:  # noqa: BLE001 - any failure of third-party code makes the plugin unavailable
            unavailable[ep.name] = Unavailable(ep.name, source, f"{type(exc).__name__}: {exc}"[:500])
            continue
        installed[ep.name] = Installed(plugin, str(plugin.version or dist_version or "0"), source)
    return Registry(installed, unavailable)


@functools.cache
def get_registry() -> Registry:
    """The architectures installed in this process (discovered once)."""
    return discover()
