"""Request and response bodies for models and versions."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Architecture(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # An installed architecture (GET /v1/architectures): logreg, mlp, lenet, resnet18 or a plugin's.
    name: str = Field(min_length=1, max_length=64)
    # Validated against the architecture's config schema.
    config: dict[str, Any] = Field(default_factory=dict)


class TrainRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(default=20, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=65536)
    lr: float = Field(default=1e-3, gt=0, le=10)
    # Gradient-restriction weight (0 disables).
    alpha: float = Field(default=0.005, ge=0, le=100)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class UnlearnSettings(BaseModel):
    """This model's overrides of the engine's unlearning defaults (docs/engine.md); omitted fields keep them."""

    model_config = ConfigDict(extra="forbid")
    # targeted: the IAU step, then a bounded repair over minibatches that stops on the purpose's target (the
    # engine's default); reference: one Adam step on grad mean_r - grad mean_f; gradient: plain-gradient steps
    # with the AUC stop; neggrad+ and salun: the alternatives the benchmark compares.
    update: Literal["targeted", "reference", "gradient", "neggrad+", "salun"] | None = None
    # reference, and stage 1 of the targeted family: Adam learning rate of the single step.
    lr: float | None = Field(default=None, gt=0, le=1)
    # gradient: step size, and the weight of the retained (correction) term.
    eta: float | None = Field(default=None, gt=0, le=1e4)
    retain_weight: float | None = Field(default=None, ge=0, le=1e3)
    # gradient: step budget.
    max_steps: int | None = Field(default=None, ge=1, le=1000)
    # The privacy target: membership AUC of forgotten vs unseen rows to reach (when row_targets is off or the
    # features allow no reference model; otherwise each row's own level sets it), the tolerance around it, and
    # how many standard errors of a no-signal AUC the band also admits (tiny forget sets).
    target_auc: float | None = Field(default=None, ge=0, le=1)
    auc_tolerance: float | None = Field(default=None, ge=0, le=1)
    auc_noise_z: float | None = Field(default=None, ge=0, le=10)
    # The poison target: largest share of forgotten rows whose (poisoned) label the model may still reproduce.
    max_forget_accuracy: float | None = Field(default=None, ge=0, le=1)
    # The utility guard: largest accuracy drop (fraction) the update (a step, for gradient) may cost, and
    # (targeted) how many standard errors of the paired change on the guard rows it also allows.
    max_accuracy_drop: float | None = Field(default=None, ge=0, le=1)
    guard_noise_z: float | None = Field(default=None, ge=0, le=10)
    # Targeted, privacy: weight of the anchor on the model's predictions before the deletion (0 turns it off),
    # and the mean |log loss - log target| at which the forgotten rows count as at their own targets.
    anchor_weight: float | None = Field(default=None, ge=0, le=1e4)
    gap_tolerance: float | None = Field(default=None, gt=0, le=100)
    # Budgets of the targeted family: repair checks (privacy), NegGrad+ and fine-tune steps (poison).
    repair_steps: int | None = Field(default=None, ge=1, le=10_000)
    poison_steps: int | None = Field(default=None, ge=1, le=10_000)
    finetune_steps: int | None = Field(default=None, ge=0, le=10_000)
    # Targeted, privacy: take the IAU step even when neither the model nor the rows show a membership signal.
    stage1_without_signal: bool | None = None
    # Targeted, privacy: per-row loss targets from a linear reference model (false: rank matching toward 0.5).
    row_targets: bool | None = None
    # rows per chunk when streaming gradients.
    chunk_size: int | None = Field(default=None, ge=1, le=1_000_000)
    # Removal policy (app/models/policy.py, docs/outcomes.md); the engine does not read these.
    # An unmet target: `retrain` exactly (needs the training recipe) or `report` it. Default: retrain when the
    # service trained the model, report when it was uploaded.
    escalate: Literal["retrain", "report"] | None = None
    # Retrain from scratch once this many requests were removed approximately and not yet made exact (default 100).
    consolidate_after_deletions: int | None = Field(default=None, ge=1, le=1_000_000)
    # ... or once the oldest of them has stood this many hours (default 24).
    consolidate_after_hours: float | None = Field(default=None, gt=0, le=8760)


class ModelSpec(BaseModel):
    """The multipart `spec` part of a checkpoint upload."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    dataset_id: str = Field(min_length=1, max_length=36)
    architecture: Architecture
    unlearn: UnlearnSettings = Field(default_factory=UnlearnSettings)


class ModelTrain(ModelSpec):
    """JSON body of a model the service trains (version 1 is made by a training job)."""

    train: TrainRecipe = Field(default_factory=TrainRecipe)


class ModelOut(BaseModel):
    id: str
    name: str
    dataset_id: str
    architecture: dict[str, Any]
    train: dict[str, Any] | None
    # Overrides of the engine's unlearning defaults and the removal policy fields given for this model.
    unlearn: dict[str, Any]
    # The removal policy in force: escalate, consolidate_after_deletions, consolidate_after_hours (null for an
    # uploaded model, which is never consolidated).
    policy: dict[str, Any]
    # training | ready | failed
    status: Literal["training", "ready", "failed"]
    error: str | None
    latest_version: int | None
    created_at: datetime
    updated_at: datetime


class VersionOut(BaseModel):
    model_id: str
    version: int
    parent_version: int | None
    checkpoint_sha256: str
    checkpoint_size: int
    # Deletion requests applied to make this version.
    applied_requests: list[str]
    evidence_summary: dict[str, Any] | None
    # available | purged (a purged version's checkpoint answers 410 Gone)
    state: Literal["available", "purged"]
    created_at: datetime
    purged_at: datetime | None
    checkpoint_url: str
