"""The IAU compute engine: model zoo, training, unlearning updates and removal evidence (plain torch)."""

from workers.engine.cache import GradCache, build_cache
from workers.engine.checkpoint import (
    checkpoint_bytes,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
    sha256_state_dict,
)
from workers.engine.device import DeviceError, resolve_device
from workers.engine.evidence import (
    evaluate,
    forget_commitment,
    membership_auc,
    param_distance,
)
from workers.engine.gradients import gradient_sum
from workers.engine.iau import UnlearnConfig, UnlearnResult, unlearn
from workers.engine.retrain import retrain
from workers.engine.train import TrainConfig, train
from workers.engine.zoo import (
    ARCHITECTURES,
    ArchSpec,
    CheckpointMismatch,
    ZooError,
    build_model,
    expected_feature_count,
    expected_layout,
    parameter_count,
    prepare_inputs,
    validate_checkpoint,
    validate_spec,
)

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "CheckpointMismatch",
    "DeviceError",
    "GradCache",
    "TrainConfig",
    "UnlearnConfig",
    "UnlearnResult",
    "ZooError",
    "build_cache",
    "build_model",
    "checkpoint_bytes",
    "evaluate",
    "expected_feature_count",
    "expected_layout",
    "forget_commitment",
    "gradient_sum",
    "load_checkpoint",
    "membership_auc",
    "param_distance",
    "parameter_count",
    "prepare_inputs",
    "resolve_device",
    "retrain",
    "save_checkpoint",
    "sha256_file",
    "sha256_state_dict",
    "train",
    "unlearn",
    "validate_checkpoint",
    "validate_spec",
]
