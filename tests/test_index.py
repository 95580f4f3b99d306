"""Vector index backends agree with exact search (seeded vectors, ground truth from FAISS flat)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from server.storage.vectors import FaissFlatIndex, TorchExactIndex


def _data(n=5000, d=64, q=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = rng.normal(size=(q, d)).astype(np.float32)
    return x, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def _fill(index, x):
    ids = np.arange(10, 10 + len(x), dtype=np.int64) * 7  # sparse, non-contiguous ids
    index.add(ids[: len(x) // 2], x[: len(x) // 2])
    index.add(ids[len(x) // 2 :], x[len(x) // 2 :])
    index.remove(ids[::5])                       # delete a fifth
    index.remove(ids[1:50])                      # replace some vectors, as a re-ingest does
    index.add(ids[1:50], x[-49:])
    index.remove(np.array([123456789]))          # unknown ids are ignored
    return index


@pytest.mark.parametrize("chunk", [1 << 20, 333])  # one chunk, and many chunks merged
def test_torch_exact_index_matches_faiss_exactly_on_cpu(chunk):
    x, q = _data()
    ref = _fill(FaissFlatIndex(64), x)
    got = _fill(TorchExactIndex(64, "cpu", chunk=chunk), x)
    assert len(got) == len(ref) == 4009
    rs, ri = ref.search(q, 10)
    gs, gi = got.search(q, 10)
    assert np.array_equal(ri, gi)
    assert np.allclose(rs, gs, atol=1e-5)


def test_torch_exact_index_pads_when_k_exceeds_size():
    x, q = _data(n=3)
    index = TorchExactIndex(64, "cpu")
    index.add(np.array([1, 2, 3]), x)
    s, i = index.search(q[:2], 5)
    assert i.shape == (2, 5) and (i[:, 3:] == -1).all() and set(i[0, :3]) == {1, 2, 3}
    empty_s, empty_i = TorchExactIndex(64, "cpu").search(q[:1], 3)
    assert (empty_i == -1).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_exact_index_on_cuda_matches_faiss_top_k():
    x, q = _data(n=20000)
    ref = _fill(FaissFlatIndex(64), x)
    got = _fill(TorchExactIndex(64, "cuda"), x)
    rs, ri = ref.search(q, 10)
    gs, gi = got.search(q, 10)
    assert (ri == gi).mean() > 0.99 and np.allclose(rs, gs, atol=2e-3)
