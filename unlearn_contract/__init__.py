"""The contract between the service and architecture plugins: the `Architecture` interface, the input contract
of a data set's rows, and the registry of installed architectures (entry-point group `unlearn.architectures`).

Importing this package loads no torch; `unlearn_contract.modules` (building and checking modules) does.
"""

from unlearn_contract.architecture import Architecture, InputContract, PluginError, RowsInfo
from unlearn_contract.registry import ENTRY_POINT_GROUP, Installed, Registry, Unavailable, get_registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "Architecture",
    "InputContract",
    "Installed",
    "PluginError",
    "Registry",
    "RowsInfo",
    "Unavailable",
    "get_registry",
]
