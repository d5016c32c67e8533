"""Service configuration: one typed Settings object read from the environment (docs/design.md section 8)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # A rejected value is not repeated in the error (it may be a secret: a key, a token, a URL with a password).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    # SQLAlchemy URL. Default: a SQLite file under ./var (the embedded default).
    database_url: str = Field(default="sqlite:///./var/unlearn.db", alias="DATABASE_URL")
    # Redis holding the RQ queues.
    redis_url: str = Field(default="redis://localhost:6379/0", alias="REDIS_URL")
    # Folder of the content-addressed blob store (checkpoints, data sets, gradient caches), used when
    # UNLEARN_STORAGE_URL is unset.
    storage_dir: Path = Field(default=Path("./var/blobs"), alias="UNLEARN_STORAGE_DIR")
    # Where blobs live: unset = the folder UNLEARN_STORAGE_DIR; file://PATH = that folder; or an S3-compatible
    # bucket, s3://BUCKET/PREFIX?endpoint=URL&region=NAME (credentials from AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY or boto3's other sources, never in the URL). docs/deploy.md, "Object storage".
    storage_url: str | None = Field(default=None, alias="UNLEARN_STORAGE_URL")
    # Local folder of a process using an object store: files on their way up, and a cache of the blobs it read.
    scratch_dir: Path = Field(default=Path("./var/scratch"), alias="UNLEARN_SCRATCH_DIR")
    # Bytes of blobs the scratch cache keeps (least recently used copies go first); 16 GiB.
    scratch_cache_bytes: int = Field(default=16 * 1024**3, ge=0, alias="UNLEARN_SCRATCH_CACHE_BYTES")
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
    # Name of the audit log in its C2SP checkpoints, a schema-less URL such as "audit.example.com/unlearn"
    # (None: "unlearn.invalid/audit/" followed by the first 16 hex digits of the signing key's id).
    audit_log_origin: str | None = Field(default=None, alias="UNLEARN_AUDIT_ORIGIN")
    # File the newest signed checkpoint is written to whenever the log grows (None: not written). Keep it outside
    # the database's host or copy it off (docs/audit.md).
    audit_checkpoint_path: Path | None = Field(default=None, alias="UNLEARN_AUDIT_CHECKPOINT_PATH")
    # Entries at the start of the log written before per-entry signatures (migration 0005 prints the number).
    audit_legacy_entries: int = Field(default=0, ge=0, alias="UNLEARN_AUDIT_LEGACY_ENTRIES")
    # Master key (32 random bytes, hex, in a file) of the keyed hashes that stand in for erased sample ids and of
    # the per-request commitment salts; generated on first use when absent. Never stored in the database.
    id_key_path: Path = Field(default=Path("./var/id-hash-key"), alias="UNLEARN_ID_KEY_PATH")
    # Seconds a data set's compaction waits after a deletion publishes, so that a burst of deletions is erased
    # from the stored data in one rewrite. The reconciler runs a compaction that is due within
    # reconcile_interval_s, so rows deleted from every model leave the blob store within about
    # compaction_delay_s + reconcile_interval_s (plus the rewrite itself).
    compaction_delay_s: float = Field(default=60.0, ge=0, alias="UNLEARN_COMPACTION_DELAY_S")
    # Files in the blob store's tmp folder untouched for this many seconds are left by a crashed writer (an
    # upload, a checkpoint, a compaction) and are deleted by the reconciler.
    tmp_max_age_s: float = Field(default=3600.0, gt=0, alias="UNLEARN_TMP_MAX_AGE_S")
    # How long an Idempotency-Key is remembered after its first use, seconds (24 h).
    idempotency_ttl_s: int = Field(default=24 * 3600, alias="UNLEARN_IDEMPOTENCY_TTL_S")
    # A key claimed by a request that never finished (crashed process) is taken over after this many seconds.
    idempotency_inflight_s: int = Field(default=120, alias="UNLEARN_IDEMPOTENCY_INFLIGHT_S")
    # Per-API-key request rate, shared by every API process through Redis: at most `burst` requests in any
    # window of burst/rate seconds (on average `rate` per second). 0 per second disables.
    rate_limit_per_s: float = Field(default=50.0, alias="UNLEARN_RATE_LIMIT_PER_S")
    rate_limit_burst: int = Field(default=500, alias="UNLEARN_RATE_LIMIT_BURST")
    # Bearer token that GET /metrics requires (at least 16 characters). Unset or empty: /metrics answers 403.
    metrics_token: SecretStr | None = Field(default=None, alias="UNLEARN_METRICS_TOKEN")
    # Log level.
    log_level: str = Field(default="INFO", alias="UNLEARN_LOG_LEVEL")
    # Threads of an API process running blocking work (database, files). Few threads contend less for the GIL:
    # requests queue in order instead of many half-run requests stretching each other's latency.
    api_threads: int = Field(default=8, ge=1, alias="UNLEARN_API_THREADS")
    # Of those, how many may run POST /v1/models/{id}/deletions at once (the hot path: short, database-bound).
    # Two per process gave the best throughput and tail latency in the service benchmark; slow requests such as
    # uploads use the other threads, so they never hold up deletion requests.
    deletion_threads: int = Field(default=2, ge=1, alias="UNLEARN_DELETION_THREADS")

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from app.core.storage import parse_storage_url

        parse_storage_url(value)  # a malformed URL stops the process at start, saying what is wrong
        return value.strip()

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_token(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # unset and empty mean the same: no token, /metrics closed
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if len(text) < 16:
            raise ValueError("UNLEARN_METRICS_TOKEN must be at least 16 characters")
        return text


@lru_cache
def get_settings() -> Settings:
    return Settings()
