"""A job queue stand-in recording what the API enqueues (the real one needs a worker to drain it)."""


class RecordingJobs:
    def __init__(self, *, redis_up: bool = True, enqueue_fails: bool = False) -> None:
        self.redis_up = redis_up
        self.enqueue_fails = enqueue_fails
        self.training: list[str] = []
        self.deletions: list[str] = []
        self.compactions: list[str] = []

    def ping(self) -> bool:
        return self.redis_up

    def require(self) -> None:
        from app.core.errors import ServiceUnavailable

        if not self.redis_up:
            raise ServiceUnavailable("the job queue (Redis) is not answering; retry later", retry_after_s=5)

    def enqueue_training(self, model_id: str) -> None:
        if self.enqueue_fails:
            raise ConnectionError("redis went away")
        self.training.append(model_id)

    def enqueue_deletion(self, request_id: str, model_id: str | None = None, job_id: str | None = None) -> None:
        if self.enqueue_fails:
            raise ConnectionError("redis went away")
        self.deletions.append(request_id)

    def enqueue_compaction(self, dataset_id: str) -> None:
        if self.enqueue_fails:
            raise ConnectionError("redis went away")
        self.compactions.append(dataset_id)
