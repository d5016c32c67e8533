"""Rewriting a safetensors data set file without some rows: bytes copied, dtypes kept, a valid file."""

import hashlib
import io

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import load

from workers.rowfile import rewrite_without_rows


def _source(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "features": rng.normal(size=(10, 2, 3)).astype(np.float16),
        "labels": np.arange(10, dtype=np.int64),
        "holdout_features": rng.normal(size=(4, 2, 3)).astype(np.float16),
        "holdout_labels": np.arange(4, dtype=np.int64),
    }
    path = tmp_path / "data.safetensors"
    save_file(tensors, str(path), metadata={"owner": "someone"})
    return path, tensors


@pytest.mark.parametrize("drop", [[0, 3, 4, 9], [], [5]])
def test_rows_are_dropped_and_everything_else_kept(tmp_path, drop):
    path, tensors = _source(tmp_path)
    out = io.BytesIO()
    sha, size = rewrite_without_rows(path, out, drop)
    data = out.getvalue()
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    got = load(data)
    keep = np.setdiff1d(np.arange(10), drop)
    assert got["features"].dtype == torch.float16
    np.testing.assert_array_equal(got["features"].numpy(), tensors["features"][keep])
    np.testing.assert_array_equal(got["labels"].numpy(), tensors["labels"][keep])
    np.testing.assert_array_equal(got["holdout_features"].numpy(), tensors["holdout_features"])
    assert b"someone" not in data, "the old file's metadata is not carried over"
    for i in drop:
        assert tensors["features"][i].tobytes() not in data


def test_out_of_range_rows_are_refused(tmp_path):
    path, _ = _source(tmp_path)
    with pytest.raises(ValueError):
        rewrite_without_rows(path, io.BytesIO(), [10])
