"""Salted commitments: their definition, the independent check an auditor runs, and its command line."""

import hashlib
import hmac
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from app.audit import commitments
from workers.engine import forget_commitment as engine_forget_commitment

SALT = bytes(range(32))


def test_sample_ids_commitment_is_the_documented_hmac():
    ids = ["user-9", "alice@example.com", "é", "user-9"]
    want = hmac.new(
        SALT, b"unlearn-sample-ids/v2\n" + json.dumps(sorted(set(ids))).encode("ascii"), hashlib.sha256
    ).hexdigest()
    assert commitments.commit_sample_ids(ids, SALT) == want == commitments.commit_sample_ids(ids, SALT.hex())
    assert commitments.check_sample_ids(list(reversed(ids)), SALT.hex(), want)
    assert not commitments.check_sample_ids(ids[:2], SALT, want)
    assert not commitments.check_sample_ids(ids, bytes(32), want), "the wrong salt does not open it"
    assert want != hashlib.sha256(json.dumps(sorted(set(ids))).encode()).hexdigest(), "no unsalted guess matches"
    with pytest.raises(ValueError):
        commitments.commit_sample_ids(ids, b"short")


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 2)])
def test_the_independent_forget_check_agrees_with_the_workers(shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(*shape, generator=gen)
    y = torch.randint(0, 9, (shape[0],), generator=gen)
    ids = [f"id-{i}" for i in range(shape[0])]
    value = engine_forget_commitment(ids, x, y, salt=SALT)
    assert commitments.forget_commitment(ids, x.numpy(), y.numpy(), SALT) == value
    order = list(reversed(range(shape[0])))
    assert commitments.check_forget_commitment([ids[i] for i in order], x.numpy()[order], y.numpy()[order], SALT, value)
    changed = x.numpy().copy()
    changed[0].flat[0] += 1e-3
    assert not commitments.check_forget_commitment(ids, changed, y.numpy(), SALT, value)
    assert not commitments.check_forget_commitment(ids, x.numpy(), y.numpy(), bytes(32), value)


def test_command_line(tmp_path, capsys):
    ids = ["alice@example.com", "bob@example.com"]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    x, y = np.ones((2, 3), dtype=np.float32), np.array([1, 2], dtype=np.int64)
    save_file({"features": x, "labels": y}, str(tmp_path / "rows.safetensors"))
    sample = commitments.commit_sample_ids(ids, SALT)
    forget = commitments.forget_commitment(ids, x, y, SALT)
    ids_file, rows_file = str(tmp_path / "ids.txt"), str(tmp_path / "rows.safetensors")
    assert commitments.main(["sample-ids", "--salt", SALT.hex(), "--commitment", sample, ids_file]) == 0
    assert commitments.main(["sample-ids", "--salt", bytes(32).hex(), "--commitment", sample, ids_file]) == 1
    assert commitments.main(["forget", "--salt", SALT.hex(), "--commitment", forget, ids_file, rows_file]) == 0
    assert commitments.main(["forget", "--salt", SALT.hex(), "--commitment", sample, ids_file, rows_file]) == 1
    assert commitments.main(["sample-ids", "--salt", "zz", "--commitment", sample, ids_file]) == 2
    assert "does not open" in capsys.readouterr().out
