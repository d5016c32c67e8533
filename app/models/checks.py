"""Architecture and checkpoint checks against the engine's model zoo (workers.engine, imported lazily so the
API starts without loading torch until a model is registered)."""

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


def check_architecture(*, architecture: Architecture, dataset: Dataset):
    """The zoo spec for `architecture`, after checking it can be built and fits the data set's rows and
    classes; raises Unprocessable naming the problem."""
    from workers.engine import ArchSpec, ZooError, expected_feature_count, validate_spec
    from workers.engine.zoo import normalized_config

    spec = ArchSpec(name=architecture.name, config=dict(architecture.config))
    try:
        validate_spec(spec)
        want = expected_feature_count(spec)
        num_classes = normalized_config(spec)["num_classes"]
    except ZooError as exc:
        raise Unprocessable(f"architecture: {exc}") from None
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


def check_checkpoint(*, spec, path: Path) -> None:
    """Compare the checkpoint's tensor names, shapes and dtypes with the architecture's state_dict layout
    (read from the safetensors header only; no tensor is loaded, nothing is unpickled)."""
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
