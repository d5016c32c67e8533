"""Service configuration: one typed Settings object read from the environment (design.md section 8)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # SQLAlchemy URL. Default: a SQLite file under ./var (the embedded default).
    database_url: str = Field(default="sqlite:///./var/unlearn.db", alias="DATABASE_URL")
    # Redis holding the RQ queues.
    redis_url: str = Field(default="redis://localhost:6379/0", alias="REDIS_URL")
    # Folder of the content-addressed blob store (checkpoints, data sets, gradient caches).
    storage_dir: Path = Field(default=Path("./var/blobs"), alias="UNLEARN_STORAGE_DIR")
    # Torch device for workers: auto (CUDA when present), cpu, cuda, cuda:N.
    device: str = Field(default="auto", alias="UNLEARN_DEVICE")
    # If set at start, an admin API key with this value exists.
    bootstrap_admin_key: str | None = Field(default=None, alias="UNLEARN_BOOTSTRAP_ADMIN_KEY")
    # Name of the RQ queue the workers listen on.
    queue_name: str = Field(default="unlearn", alias="UNLEARN_QUEUE")
    # Largest data set upload, bytes (413 past it).
    max_dataset_bytes: int = Field(default=512 * 1024 * 1024, alias="UNLEARN_MAX_DATASET_BYTES")
    # Largest checkpoint upload, bytes (413 past it).
    max_checkpoint_bytes: int = Field(default=512 * 1024 * 1024, alias="UNLEARN_MAX_CHECKPOINT_BYTES")
    # Largest `ids` form field of a data set upload (one id per line), bytes.
    max_ids_bytes: int = Field(default=64 * 1024 * 1024, alias="UNLEARN_MAX_IDS_BYTES")
    # Largest model a registration may describe: numbers in its state_dict (parameters and buffers), counted from
    # the architecture's config without building it (422 past it). 100 million is about 400 MB of float32 weights,
    # as much as a 512 MiB checkpoint upload can hold; ResNet-18 has 11.2 million.
    max_model_parameters: int = Field(default=100_000_000, ge=1, alias="UNLEARN_MAX_MODEL_PARAMETERS")
    # Largest JSON request body, bytes (413 past it).
    max_json_bytes: int = Field(default=4 * 1024 * 1024, alias="UNLEARN_MAX_JSON_BYTES")
    # Most sample ids in one deletion request.
    max_ids_per_request: int = Field(default=10_000, alias="UNLEARN_MAX_IDS_PER_REQUEST")
    # RQ job timeout for one training / unlearning job, seconds.
    job_timeout_s: int = Field(default=3600, alias="UNLEARN_JOB_TIMEOUT_S")
    # Attempts before a deletion request is marked failed for good.
    max_attempts: int = Field(default=3, alias="UNLEARN_MAX_ATTEMPTS")
    # Most deletion requests coalesced into one update (0 = no limit; 1 = one update per request).
    max_coalesce: int = Field(default=0, ge=0, alias="UNLEARN_MAX_COALESCE")
    # How often a worker's reconciler re-enqueues queued requests with no live job, seconds.
    reconcile_interval_s: float = Field(default=30.0, alias="UNLEARN_RECONCILE_INTERVAL_S")
    # Ed25519 private key (PEM file) signing audit tree heads; generated on first start when absent.
    audit_signing_key_path: Path = Field(default=Path("./var/audit-signing-key.pem"), alias="UNLEARN_AUDIT_KEY_PATH")
    # How long an Idempotency-Key is remembered after its first use, seconds (24 h).
    idempotency_ttl_s: int = Field(default=24 * 3600, alias="UNLEARN_IDEMPOTENCY_TTL_S")
    # A key claimed by a request that never finished (crashed process) is taken over after this many seconds.
    idempotency_inflight_s: int = Field(default=120, alias="UNLEARN_IDEMPOTENCY_INFLIGHT_S")
    # Per-API-key request rate: tokens refilled per second, and bucket size (burst). 0 per second disables.
    rate_limit_per_s: float = Field(default=50.0, alias="UNLEARN_RATE_LIMIT_PER_S")
    rate_limit_burst: int = Field(default=500, alias="UNLEARN_RATE_LIMIT_BURST")
    # Log level.
    log_level: str = Field(default="INFO", alias="UNLEARN_LOG_LEVEL")
    # Threads of an API process running blocking work (database, files). Few threads contend less for the GIL:
    # requests queue in order instead of many half-run requests stretching each other's latency.
    api_threads: int = Field(default=8, ge=1, alias="UNLEARN_API_THREADS")
    # Of those, how many may run POST /v1/models/{id}/deletions at once (the hot path: short, database-bound).
    # Two per process gave the best throughput and tail latency in the service benchmark; slow requests such as
    # uploads use the other threads, so they never hold up deletion requests.
    deletion_threads: int = Field(default=2, ge=1, alias="UNLEARN_DELETION_THREADS")


@lru_cache
def get_settings() -> Settings:
    return Settings()
