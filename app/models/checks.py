"""Architecture and checkpoint checks against the engine's model zoo (workers.engine, imported lazily so the
API starts without loading torch until a model is registered): the architecture must fit the data set and stay
under the parameter cap (counted from its config, nothing allocated); a checkpoint must match the state_dict
layout and hold finite numbers only (read in bounded chunks, never unpickled)."""

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
    """The zoo spec for `architecture`, after checking it can be built, has at most `max_parameters` numbers in
    its state_dict, and fits the data set's rows and classes; raises Unprocessable naming the problem."""
    from workers.engine import ArchSpec, ZooError, expected_feature_count, parameter_count, validate_spec
    from workers.engine.zoo import normalized_config

    spec = ArchSpec(name=architecture.name, config=dict(architecture.config))
    try:
        validate_spec(spec)
        count = parameter_count(spec)
        want = expected_feature_count(spec)
        num_classes = normalized_config(spec)["num_classes"]
    except ZooError as exc:
        raise Unprocessable(f"architecture: {exc}") from None
    if count > max_parameters:
        raise Unprocessable(
            f"architecture {spec.name} has {count:,} parameters, more than this service's limit of "
            f"{max_parameters:,} (UNLEARN_MAX_MODEL_PARAMETERS)",
            parameters=count,
            limit=max_parameters,
        )
    have = prod(dataset.feature_shape)
    if want != have:
        raise Unprocessable(
            f"architecture {spec.name} expects {want} numbers per row but the data set's rows have shape "
            f"{dataset.feature_shape} ({have})"
        )
    if num_classes < dataset.num_classes:
        raise Unprocessable(
            f"architecture has num_classes={num_classes} but the data set's labels need {dataset.num_classes}"
        )
    return spec


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

    from workers.engine import CheckpointMismatch, validate_checkpoint

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
