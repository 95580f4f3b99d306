"""How hard an HNSW graph is built (`index_build_params`, default efConstruction=128 for hnsw): the graph
decides how much recall any efSearch can reach (benchmarks/RESULTS.md "graph build effort")."""

from __future__ import annotations

import faiss
import numpy as np

from coldopen.app import startup
from coldopen.config.settings import Settings
from coldopen.domain.errors import StartupError
from coldopen.storage.vectors import FaissIndex, build_index, check_index_type
from coldopen.storage.vectors.faiss_types import graph_build_effort
from tests.unit.storage.test_calibration import _clustered, _recall


def test_hnsw_is_built_with_efconstruction_128_unless_told_otherwise():
    assert graph_build_effort(FaissIndex(64, "hnsw")._index) == 128
    assert graph_build_effort(FaissIndex(64, "hnsw", build_params="efConstruction=64")._index) == 64
    assert graph_build_effort(FaissIndex(64, "HNSW16")._index) == 40  # a factory string: FAISS's own default
    assert graph_build_effort(FaissIndex(64, "ivf")._index) is None
    twin = build_index(64, "cpu", "cagra")  # without cuVS the CAGRA twin serves: built like hnsw
    assert graph_build_effort(twin._index) == 128 and "efConstruction=128" in twin.description


def test_a_graph_built_harder_finds_more_at_the_same_search_effort():
    """Held-out recall@10 at a fixed efSearch, the same vectors, only efConstruction differing."""
    x = _clustered(30_000)
    found = {}
    for effort in (40, 128):
        index = FaissIndex(64, "HNSW8", "efSearch=16", build_params=f"efConstruction={effort}")
        index.add(np.arange(len(x)), x)
        found[effort] = _recall(index, x)
    assert found[40] < 0.92 and found[128] >= found[40] + 0.04, found


def test_a_snapshot_graph_built_weaker_serves_while_a_stronger_one_is_built():
    x = _clustered(3000, seed=11)
    old = FaissIndex(64, "hnsw", build_params="efConstruction=40")  # as every hnsw was built before
    old.add(np.arange(3000) * 2, x)
    blob, state = old.snapshot_state()
    new = FaissIndex(64, "hnsw")
    new.restore(faiss.deserialize_index(blob), state.ids, state.dead, state.staged)
    _, got = new.search(x[:20], 1)  # answers at once, from the snapshot's graph or the new one
    assert (got[:, 0] == np.arange(20) * 2).all()
    new.wait_rebuilt(120)
    assert new.rebuilds == 1 and graph_build_effort(new._index) == 128 and len(new) == 3000
    same = FaissIndex(64, "hnsw")
    blob, state = new.snapshot_state()
    same.restore(faiss.deserialize_index(blob), state.ids, state.dead, state.staged)
    same.wait_rebuilt(120)
    assert same.rebuilds == 0  # built as the setting asks: nothing to redo


def test_build_params_the_index_type_does_not_know_stop_the_start():
    assert check_index_type("hnsw", build_params="efConstruction=200") is None
    assert "efConstruction=64" in check_index_type("hnsw", build_params="nprobe=banana")
    for settings in (Settings(index_type="hnsw", index_build_params="efConstrucion=64"),
                     Settings(index_type="flat", index_build_params="efConstruction=64")):
        try:
            startup.index_type(settings)
        except StartupError as e:
            assert "index_build_params" in str(e) and "\n" not in str(e)
        else:
            raise AssertionError(f"{settings.index_type} with {settings.index_build_params!r} was accepted")


def test_a_small_index_rebuilt_keeps_its_default_search_effort():
    """Found restarting a 2-video server on a weaker snapshot: the rebuild calibrated 2 vectors to efSearch 4096."""
    x = _clustered(3000, seed=12)
    index = FaissIndex(64, "hnsw", recall_target=0.95)
    index.add(np.arange(3000), x)
    index.rebuild()
    assert index.calibration is None and "efSearch=128" in index.description, index.description
