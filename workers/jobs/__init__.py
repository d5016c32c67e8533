"""RQ jobs: train a model's version 1, apply deletion requests, refresh a version's gradient cache.

Each job re-reads the database and does nothing when its work is already done, so duplicates and retries are
safe. Jobs are referenced by dotted path (`workers.jobs.deletions.apply_deletions`) when enqueued.
"""
