"""Vector index backends agree with exact search (seeded vectors, ground truth from FAISS flat)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coldopen.storage.vectors import FaissIndex, TorchExactIndex


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
    index.remove(ids[1:50])                      # replace some vectors, as a re-ingest does, with vectors
    index.add(ids[1:50], -x[-49:])               # no other id holds (exact ties have no defined order)
    index.remove(np.array([123456789]))          # unknown ids are ignored
    return index


@pytest.mark.parametrize("chunk", [1 << 20, 333])  # one chunk, and many chunks merged
def test_torch_exact_index_matches_faiss_exactly_on_cpu(chunk):
    x, q = _data()
    ref = _fill(FaissIndex(64), x)
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
    ref = _fill(FaissIndex(64), x)
    got = _fill(TorchExactIndex(64, "cuda"), x)
    rs, ri = ref.search(q, 10)
    gs, gi = got.search(q, 10)
    assert (ri == gi).mean() > 0.99 and np.allclose(rs, gs, atol=2e-3)


# --- FaissIndex: tombstones, background rebuilds, approximate types, snapshots --------------------------

import threading  # noqa: E402

import faiss  # noqa: E402

from coldopen.storage.vectors import check_index_type  # noqa: E402


def _reference(live: dict[int, np.ndarray], d: int):
    """Exact search over exactly the live vectors: what the index must answer."""
    ref = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    if live:
        ids = np.array(sorted(live), dtype=np.int64)
        ref.add_with_ids(np.stack([live[i] for i in ids]), ids)
    return ref


def _clustered(n, d=64, seed=0, clusters=50):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _near(x, n, seed=9):
    """Queries like the service's: near stored vectors (another upload of a similar video)."""
    rng = np.random.default_rng(seed)
    q = x[rng.integers(0, len(x), n)] + 0.3 * rng.normal(size=(n, x.shape[1])).astype(np.float32) / np.sqrt(x.shape[1]) * 4
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_tombstones_and_background_rebuilds_match_exact_search_under_concurrent_writes():
    d = 32
    rng = np.random.default_rng(3)
    index = FaissIndex(d)
    live: dict[int, np.ndarray] = {}
    stop = threading.Event()

    def searcher():  # searches never fail or return dead ids while writes and rebuilds go on
        q = rng.normal(size=(4, d)).astype(np.float32)
        while not stop.is_set():
            s, i = index.search(q, 10)
            assert ((i >= 0) | (s == -np.inf)).all()

    t = threading.Thread(target=searcher)
    t.start()
    try:
        for _ in range(60):
            new = rng.integers(0, 3000, 200)
            vectors = rng.normal(size=(200, d)).astype(np.float32)
            index.add(new, vectors)
            for i, v in zip(new.tolist(), vectors):  # a repeated id within a batch: the last one wins
                live[i] = v
            gone = rng.integers(0, 3000, 150)
            index.remove(gone)
            for i in gone.tolist():
                live.pop(i, None)
    finally:
        stop.set()
        t.join()
    index.wait_rebuilt()
    assert index.rebuilds >= 1, "deletes past the dead fraction rebuild the index in the background"
    assert len(index) == len(live)
    q = rng.normal(size=(100, d)).astype(np.float32)
    es, ei = _reference(live, d).search(q, 10)
    gs, gi = index.search(q, 10)
    assert np.array_equal(ei, gi)
    assert np.allclose(es, gs, atol=1e-5)


def test_search_asks_wider_when_tombstones_crowd_out_the_top_k():
    x = _clustered(3000, seed=5)
    index = FaissIndex(64, rebuild_dead_fraction=1.0)  # no rebuild: the tombstones stay
    ids = np.arange(3000)
    index.add(ids, x)
    q = x[:1]
    _, top = index.search(q, 200)
    index.remove(top[0][:150])  # the 150 nearest are dead: a 2k+16 fetch sees only dead ones
    live = {int(i): x[i] for i in ids if i not in set(top[0][:150].tolist())}
    _, got = index.search(q, 10)
    _, want = _reference(live, 64).search(q, 10)
    assert np.array_equal(got, want) and index.dead == 150 and index.rebuilds == 0


@pytest.mark.parametrize("index_type,params", [("hnsw", ""), ("ivf", "nprobe=32,k_factor_rf=4"), ("HNSW16,SQ8", "efSearch=128")])
def test_approximate_index_recall_on_a_seeded_corpus(index_type, params):
    x = _clustered(20_000, seed=1)
    q = _near(x, 200)
    index = FaissIndex(64, index_type, params)
    index.add(np.arange(len(x)), x)
    index.wait_rebuilt()  # ivf: trained in the background once 10k vectors were in
    assert not index.exact, index.description
    _, truth = _reference(dict(enumerate(x)), 64).search(q, 10)
    _, got = index.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), truth.tolist())])
    assert recall >= 0.95, f"{index.description}: recall@10 {recall:.3f}"


def test_ivf_serves_exact_search_until_it_can_train():
    index = FaissIndex(64, "ivf")
    x = _clustered(500)
    index.add(np.arange(500), x)
    assert index.exact and "staged" in index.description
    _, got = index.search(x[:5], 3)
    assert (got[:, 0] == np.arange(5)).all()


def test_snapshot_state_restores_the_same_answers():
    x = _clustered(4000, seed=7)
    q = _near(x, 50)
    index = FaissIndex(64, "hnsw")
    index.add(np.arange(4000) * 3, x)
    index.remove(np.arange(0, 300) * 3)
    blob, state = index.snapshot_state()
    copy = FaissIndex(64, "hnsw")
    copy.restore(faiss.deserialize_index(blob), state.ids, state.dead, state.staged)
    assert len(copy) == len(index) == 3700
    assert np.array_equal(index.search(q, 10)[1], copy.search(q, 10)[1])
    copy.add(np.array([3]), x[1:2])  # writes go on after a restore
    assert copy.search(x[1:2], 1)[1][0, 0] == 3


def test_index_type_and_search_params_are_checked():
    assert check_index_type("hnsw") is None and check_index_type("IVF256,PQ16") is None
    assert "index_factory" in check_index_type("HNSW-bogus")
    assert "efSearch=64" in check_index_type("hnsw", "nprobe=banana")


def test_the_ivf_list_count_follows_the_corpus():
    """Trained at 10^4 vectors: 400 lists (4 sqrt(n)); at 4x the vectors it is retrained in the background
    with twice the lists, and answers stay those of exact search for the probed lists' neighbours."""
    index = FaissIndex(16, "ivf")
    x = _clustered(40_000, d=16)
    index.add(np.arange(10_000), x[:10_000])
    index.wait_rebuilt(120)
    assert "IVF400," in index.description, index.description
    index.add(np.arange(10_000, 39_999), x[10_000:39_999])
    index.wait_rebuilt(120)
    assert "IVF400," in index.description  # 39,999 < 4 x 10^4
    index.add(np.array([39_999]), x[39_999:])
    index.wait_rebuilt(120)
    assert "IVF800," in index.description, index.description
    _, got = index.search(x[:20], 1)
    assert (got[:, 0] == np.arange(20)).mean() >= 0.95
    again = FaissIndex(16, "ivf")
    blob, state = index.snapshot_state()
    again.restore(faiss.deserialize_index(blob), state.ids, state.dead, state.staged)
    assert "IVF800," in again.description and not again._rebuild_due()


def test_writes_made_while_the_index_trains_are_followed_up_without_another_write():
    """A start-up load: 10^4 vectors start the training, the rest arrive before it ends, then no write comes.
    The index must still end with the list count and the calibration of what it holds, not of its first 10^4."""
    x = _clustered(60_000, d=16)
    index = FaissIndex(16, "ivf", recall_target=0.95)
    index.add(np.arange(10_000), x[:10_000])  # starts training in the background
    index.add(np.arange(10_000, 60_000), x[10_000:])  # lands before the training ends
    index.wait_rebuilt(300)
    assert "IVF979," in index.description, index.description  # 4 sqrt(60,000), not IVF400
    assert index.calibration is not None and index.calibration.vectors == 60_000, index.description
    _, got = index.search(x[:20], 1)
    assert (got[:, 0] == np.arange(20)).mean() >= 0.95
