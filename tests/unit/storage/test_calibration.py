"""Search effort that follows the corpus to a recall target (storage/vectors/calibration.py): measured on
held-out queries against exact search, not on the calibration's own sample."""

from __future__ import annotations

import contextlib
import threading

import faiss
import numpy as np
import pytest

from coldopen.config.settings import Settings
from coldopen.storage.vectors import FaissIndex, calibration, open_indexes
from coldopen.storage.vectors.calibration import QUERY_COSINE, _moved


def _clustered(n, d=64, clusters=3000, seed=2):
    """Many small clusters: at the types' default effort their neighbourhoods are found only in part."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recall(index, x, seed=5, n=300):
    """recall@10 of queries near stored vectors (other rows and noise than the calibration's)."""
    q = _moved(x[np.random.default_rng(seed).choice(len(x), n, replace=False)], np.random.default_rng(seed + 100))
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(q, 10)
    _, got = index.search(q, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), truth.tolist())]))


def test_held_out_queries_are_at_the_calibration_cosine():
    x = _clustered(100)
    q = _moved(x, np.random.default_rng(0))
    assert np.allclose((q * x).sum(1), QUERY_COSINE, atol=1e-4) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("index_type,knob", [("HNSW8", "efSearch"), ("ivf", "nprobe")])
def test_search_effort_rises_until_held_out_recall_reaches_the_target(index_type, knob):
    x = _clustered(30_000)
    fixed = FaissIndex(64, index_type)
    tuned = FaissIndex(64, index_type, recall_target=0.95)
    for index in (fixed, tuned):
        index.add(np.arange(len(x)), x)
        index.wait_rebuilt(120)
    before, after = _recall(fixed, x), _recall(tuned, x)
    assert before < 0.93, f"the corpus is too easy to show anything: {fixed.description} {before:.3f}"
    assert after >= 0.95, f"{tuned.description}: held-out recall@10 {after:.3f}"
    cal = tuned.calibration
    assert cal is not None and cal.reached and cal.vectors == len(x)
    values = [v for v, _ in cal.tried]
    assert values == sorted(values) and len(values) >= 2 and f"{knob}={values[-1]}" in tuned.description
    assert "recall@10" in tuned.description and "recall@10" not in fixed.description


def test_explicit_search_params_are_never_calibrated():
    x = _clustered(12_000)
    index = FaissIndex(64, "hnsw", "efSearch=16", recall_target=0.95)
    index.add(np.arange(len(x)), x)
    index.wait_rebuilt(60)
    assert index.calibration is None and "efSearch=16" in index.description
    later = FaissIndex(64, "hnsw", recall_target=0.95)
    later.set_search_params("efSearch=24")  # a choice made at run time also stands
    later.add(np.arange(len(x)), x)
    later.wait_rebuilt(60)
    assert later.calibration is None and "efSearch=24" in later.description


def test_recalibrated_as_the_index_grows_while_it_serves_and_after_a_restore():
    x = _clustered(24_000)
    index = FaissIndex(64, "HNSW8", recall_target=0.95)
    index.add(np.arange(10_000), x[:10_000])
    index.wait_rebuilt(60)
    assert index.calibration is not None and index.calibration.vectors == 10_000
    stop, errors = threading.Event(), []

    def serve():  # searches go on while the calibration measures (the index's lock per chunk)
        while not stop.is_set():
            try:
                _, got = index.search(x[:4], 10)
                assert (got[:, 0] >= 0).all()
            except Exception as e:  # noqa: BLE001 — reported below
                errors.append(e)
                return

    reader = threading.Thread(target=serve)
    reader.start()
    index.add(np.arange(10_000, 12_499), x[10_000:12_499])
    index.wait_rebuilt(60)
    assert index.calibration.vectors == 10_000  # not yet grown by a quarter
    index.add(np.arange(12_499, 24_000), x[12_499:])
    index.wait_rebuilt(60)
    stop.set()
    reader.join()
    assert not errors and index.calibration.vectors == 24_000
    blob, state = index.snapshot_state()
    again = FaissIndex(64, "HNSW8", recall_target=0.95)
    again.restore(faiss.deserialize_index(blob), state.ids, state.dead, state.staged)
    again.wait_rebuilt(60)
    assert again.calibration is not None and again.calibration.vectors == 24_000
    assert _recall(again, x) >= 0.95


def test_the_service_settings_calibrate_by_default():
    settings = Settings(index_type="HNSW8")
    index = open_indexes(settings, {"visual": 64})["visual"]
    x = _clustered(12_000)
    index.add(np.arange(len(x)), x)
    index.wait_rebuilt(60)
    assert settings.index_recall_target == 0.95 and "recall@10" in index.description
    off = open_indexes(Settings(index_type="HNSW8", index_recall_target=0.0), {"visual": 64})["visual"]
    off.add(np.arange(len(x)), x)
    off.wait_rebuilt(60)
    assert "recall@10" not in off.description


def test_vectors_added_during_a_calibration_do_not_skew_it():
    """Uploads go on while a serving index calibrates: each touch of the index here adds 500 more
    vectors, far from the old ones' answers neither; recall is measured on the vectors held at the start."""
    x = _clustered(12_000)
    index = faiss.index_factory(64, "HNSW32", faiss.METRIC_INNER_PRODUCT)
    index.add(x)
    rng = np.random.default_rng(4)

    @contextlib.contextmanager
    def uploads_meanwhile():
        yield
        more = x[rng.integers(0, len(x), 500)] + 0.05 * rng.normal(size=(500, 64)).astype(np.float32)
        index.add(more / np.linalg.norm(more, axis=1, keepdims=True))  # close to stored vectors: they compete

    knob = calibration.knob(index, "efSearch=128")
    tuned = calibration.calibrate(index, knob, 0.95, hold=uploads_meanwhile)
    assert index.ntotal > 30_000 and tuned.vectors == 12_000
    assert tuned.reached and tuned.tried[0] == (128, tuned.recall) and tuned.recall >= 0.95, tuned
