"""What a request wrote: every table's row count and every file under the blob store's folder, so a test can show
that a refused request changed nothing."""

from pathlib import Path

from tests.app.dbcount import row_counts


def stored_files(root: Path) -> list[str]:
    """Every file under the blob store's folder (blobs, temporary uploads, caches), relative to it."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def snapshot(app) -> tuple[dict[str, int], list[str]]:
    return row_counts(app), stored_files(app.state.store.root)
