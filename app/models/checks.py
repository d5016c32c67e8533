"""Architecture and checkpoint checks against the installed architectures (unlearn_contract: the built-in zoo
and the `unlearn.architectures` plugins; imported lazily so the API starts without loading torch until a model is
registered). The config must pass the plugin's validation, the state_dict must stay under the parameter cap
(counted from the config or on the meta device, nothing allocated), the data set's rows must fit the input
contract, and a forward pass on the meta device must give logits (N, K) with K covering the data set's labels. A
checkpoint must match the state_dict layout and hold finite numbers only (read in bounded chunks, never
unpickled). Whatever a plugin raises becomes a 422 naming it; nothing is written before every check passed."""

from math import prod
from pathlib import Path

from safetensors import safe_open

from app.core.errors import Unprocessable
from app.datasets.orm import Dataset
from app.models.schemas import Architecture

_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
CHUNK_BYTES = 8 * 1024 * 1024  # bytes of one tensor read at a time when checking that it is finite


def check_architecture(*, architecture: Architecture, dataset: Dataset, max_parameters: int):
    """The resolved architecture (unlearn_contract.modules.Resolved), after checking its config, its size
    against `max_parameters`, the data set's rows against its input contract and its output on them; raises
    Unprocessable naming the problem."""
    from unlearn_contract import PluginError, RowsInfo, modules

    try:
        arch = modules.resolve(architecture.name, architecture.config)
        count = modules.parameter_count(arch)
    except PluginError as exc:
        raise Unprocessable(f"architecture: {exc}") from None
    if count > max_parameters:
        raise Unprocessable(
            f"architecture {arch.name} has {count:,} parameters, more than this service's limit of "
            f"{max_parameters:,} (UNLEARN_MAX_MODEL_PARAMETERS)",
            parameters=count,
            limit=max_parameters,
        )
    value_range = tuple(dataset.feature_range) if dataset.feature_range else None
    rows = RowsInfo(tuple(dataset.feature_shape), dataset.feature_dtype or "float32", value_range)
    got = {"shape": list(rows.shape), "dtype": rows.dtype, "range": dataset.feature_range}
    try:
        contract = modules.check_rows(arch, rows)
    except PluginError as exc:
        raise Unprocessable(str(exc), rows=got, **_expected(arch)) from None
    try:
        num_classes = modules.probe_classes(arch, rows)
    except PluginError as exc:
        raise Unprocessable(str(exc), rows=got, expected=contract.to_json()) from None
    if num_classes < dataset.num_classes:
        raise Unprocessable(
            f"architecture {arch.name} predicts {num_classes} classes but the data set's labels need "
            f"{dataset.num_classes}"
        )
    return arch


def _expected(arch) -> dict:
    from unlearn_contract import PluginError, modules

    try:
        return {"expected": modules.contract(arch).to_json()}
    except PluginError:
        return {}


def _is_finite(handle, key: str, torch) -> bool:
    """Whether a float tensor holds no NaN and no infinity, read along its first dimension in bounded chunks."""
    sliced = handle.get_slice(key)
    shape = sliced.get_shape()
    if not shape:
        return bool(torch.isfinite(handle.get_tensor(key)).all())
    row_bytes = prod(shape[1:]) * torch.finfo(getattr(torch, _DTYPES[sliced.get_dtype()])).bits // 8
    step = max(1, CHUNK_BYTES // max(1, row_bytes))
    return all(bool(torch.isfinite(sliced[start : start + step]).all()) for start in range(0, shape[0], step))


def check_checkpoint(*, spec, path: Path) -> None:
    """Compare the checkpoint's tensor names, shapes and dtypes with the architecture's state_dict layout (read
    from the safetensors header, no tensor loaded), then check that every float tensor is finite (nothing is
    unpickled)."""
    import torch

    from unlearn_contract.modules import CheckpointMismatch, validate_checkpoint

    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as exc:  # noqa: BLE001 - any malformed file
        raise Unprocessable(f"checkpoint is not a valid safetensors file: {exc}") from None
    with handle:
        tensors = {}
        for key in handle.keys():
            sliced = handle.get_slice(key)
            dtype = getattr(torch, _DTYPES.get(sliced.get_dtype(), "uint8"))
            tensors[key] = torch.empty(sliced.get_shape(), dtype=dtype, device="meta")
    try:
        validate_checkpoint(spec, tensors)
    except CheckpointMismatch as exc:
        raise Unprocessable(
            str(exc),
            missing=exc.missing,
            unexpected=exc.unexpected,
            misshaped=[{"tensor": k, "expected": want, "got": got} for k, want, got in exc.misshaped],
        ) from None
    with safe_open(str(path), framework="pt") as handle:
        bad = [
            key
            for key in sorted(handle.keys())
            if handle.get_slice(key).get_dtype() in FLOAT_DTYPES and not _is_finite(handle, key, torch)
        ]
    if bad:
        raise Unprocessable(f"checkpoint weights must be finite: NaN or infinity in {', '.join(bad)}", non_finite=bad)
