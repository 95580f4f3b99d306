"""`--index-type cagra`: the CPU twin on this host, and the CAGRA adapter through a FAKE cuVS.

The real cuVS needs CUDA; testkit/fake_cuvs.py (named as a fake) answers its calls by exact search, so
what is tested here is ColdOpen's side: positions, tombstones, scores recovered from squared-L2
distances, the brute-forced tail and its background rebuild, snapshots. The GPU suite runs the real one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coldopen.config.settings import Settings
from coldopen.storage.vectors import FaissIndex, build_index, check_index_type, cuvs_missing
from coldopen.storage.vectors import faiss_index as faiss_index_module
from coldopen.storage.vectors.gpu_copies import CagraCopy, cagra_copier
from testkit import fake_cuvs
from tests.unit.storage.test_index import _data, _fill


def _fake_cagra(monkeypatch, dim=64) -> FaissIndex:
    fake_cuvs.install(monkeypatch)
    return FaissIndex(dim, "cagra", copier=cagra_copier(device="cpu"), where="gpu (CAGRA through FAKE cuVS)")


def _same_neighbours(got: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray]) -> None:
    """The same neighbours at the same scores; two whose scores tie to float rounding may come in either order
    (the fake's squared-L2 and FAISS's inner product round differently: 0.3857045 vs 0.38570452 on an AVX2 CPU)."""
    (gs, gi), (rs, ri) = got, ref
    assert np.allclose(gs, rs, atol=1e-5)
    for row, (g, r) in enumerate(zip(gi, ri)):
        mismatch = np.nonzero(g != r)[0]
        assert set(g) == set(r), (row, g, r)
        assert all(abs(rs[row, i] - rs[row, j]) < 1e-5 for i in mismatch for j in mismatch), (row, g, r, rs[row])


def test_cagra_through_the_adapter_answers_as_exact_search_after_adds_removes_and_replacements(monkeypatch):
    x, q = _data()
    got = _fill(_fake_cagra(monkeypatch), x)
    ref = _fill(FaissIndex(64), x)
    assert isinstance(got._gpu, CagraCopy) and "FAKE cuVS" in got.description
    assert len(got) == len(ref) == 4009
    gs, gi = got.search(q, 10)
    rs, ri = ref.search(q, 10)
    assert np.array_equal(gi, ri)
    assert np.allclose(gs, rs, atol=1e-4)  # inner products recovered from squared-L2 distances
    long_q = 3.0 * q  # a query that is not unit length keeps the order and its own inner products
    assert np.array_equal(got.search(long_q, 10)[1], ri)
    assert np.allclose(got.search(long_q, 10)[0], 3.0 * rs, atol=1e-3)


def test_cagra_pads_when_k_exceeds_the_rows_and_serves_an_empty_index(monkeypatch):
    index = _fake_cagra(monkeypatch, dim=8)
    assert index.search(np.ones((1, 8), np.float32), 5)[1].tolist() == [[-1] * 5]
    index.add(np.array([4, 9]), np.eye(8, dtype=np.float32)[:2])
    scores, ids = index.search(np.eye(8, dtype=np.float32)[:1], 5)
    assert ids.tolist() == [[4, 9, -1, -1, -1]]
    assert np.allclose(scores[0, :2], [1.0, 0.0], atol=1e-6)


def test_the_brute_forced_tail_is_folded_into_a_fresh_graph_in_the_background(monkeypatch):
    monkeypatch.setattr(faiss_index_module, "TAIL_REBUILD_MIN", 1_000)
    x, q = _data(n=9000)
    index = _fake_cagra(monkeypatch)
    index.add(np.arange(1000), x[:1000])  # too few rows for a graph: nothing to fold in yet
    assert index._gpu.tail == 0 and index.rebuilds == 0
    index.add(np.arange(1000, 5000), x[1000:5000])  # 5000 rows, all brute-forced: 5000 >= max(1000, 2500)
    index.wait_rebuilt(30)
    assert index.rebuilds == 1 and index._gpu.tail == 0 and index._gpu.rows == 5000
    index.add(np.arange(5000, 7000), x[5000:7000])  # tail 2000 < 3500: stays brute-forced
    assert index._gpu.tail == 2000 and index.rebuilds == 1
    index.add(np.arange(7000, 9000), x[7000:])  # tail 4000 < 4500
    index.remove(np.arange(10))
    assert index.rebuilds == 1
    ref = FaissIndex(64)
    ref.add(np.arange(9000), x)
    ref.remove(np.arange(10))
    _same_neighbours(index.search(q, 10), ref.search(q, 10))


def test_a_snapshot_restores_the_graph_from_its_twin(monkeypatch):
    x, q = _data(n=2000)
    index = _fill(_fake_cagra(monkeypatch), x)
    blob, state = index.snapshot_state()
    import faiss

    again = _fake_cagra(monkeypatch)
    again.restore(faiss.deserialize_index(blob), state.ids, state.dead, state.staged)
    assert isinstance(again._gpu, CagraCopy) and again._gpu.rows == len(state.ids)
    assert np.array_equal(again.search(q, 10)[1], index.search(q, 10)[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback: a host without CUDA")
def test_without_cuda_cagra_is_its_hnsw_twin_and_says_why():
    assert "CUDA" in (cuvs_missing() or "")
    x, q = _data()
    index = build_index(64, "auto", "cagra")
    assert isinstance(index, FaissIndex) and index._gpu is None
    assert "HNSW32" in index.description and "CAGRA twin: torch sees no CUDA device" in index.description
    assert "device is cpu" in build_index(64, "cpu", "cagra").description
    index.add(np.arange(len(x)), x)
    exact = FaissIndex(64)
    exact.add(np.arange(len(x)), x)
    found, truth = index.search(q, 10)[1], exact.search(q, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert recall >= 0.95


def test_cagra_is_an_index_type_the_settings_accept():
    assert check_index_type("cagra") is None
    assert check_index_type("cagra", "efSearch=64") is None
    assert "cagra" in (check_index_type("kagra") or "")
    assert "cagra" in Settings.__dataclass_fields__["index_type"].metadata.get("help", "cagra")
