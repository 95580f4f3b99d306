"""FAISS in process: exact (flat) or approximate (HNSW, IVF, any index_factory string) inner-product
search, with deletes as tombstones, background rebuilds, and snapshots.

Ids inside FAISS are positions (0, 1, 2, ... in insertion order); this class maps them to the catalog's
row ids. Positions only ever grow, so:
  - a delete or a re-ingest marks the old position dead (a tombstone, O(1)) instead of compacting the
    whole index under the write lock as `IndexIDMap2.remove_ids` did; searches ask FAISS for a few more
    neighbours than wanted and drop dead ones (asking again, wider, in the rare case too few were left);
  - once dead positions pass `rebuild_dead_fraction` of the index (and for trained types such as IVF,
    once enough vectors are in to train on), a background thread builds a fresh index from the live
    vectors while searches and writes go on against the old one, then swaps it in; vectors written
    during the build are copied over at the swap. Nothing on the request path waits for a rebuild.
  - HNSW and IVF search effort follows the corpus to a recall target (calibration.py), in the background;
  - on a GPU host, searches use a GPU copy (gpu_copies.py: FAISS's own GPU index, or CAGRA through cuVS
    for `cagra`) that writes update in place (`add` appends the same positions) and that a rebuild
    replaces from its own thread.
Hand-written because FAISS leaves id mapping, removal for graph indexes (HNSW cannot remove) and
rebuilds to the caller; `snapshot_state`/`restore` use FAISS's own serialisation.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

import faiss
import numpy as np

from coldopen.storage.vectors import calibration, faiss_types
from coldopen.storage.vectors.calibration import CALIBRATE_MIN, RECALIBRATE_GROWTH, Calibration
from coldopen.storage.vectors.faiss_types import (
    DEFAULT_BUILD_PARAMS,
    DEFAULT_SEARCH_PARAMS,
    INDEX_TYPES,
    TRAIN_MIN,
    graph_build_effort,
    reconstruct_range,
)
from coldopen.storage.vectors.gpu_copies import TAIL_REBUILD_MIN, Copier, faiss_gpu_copier

log = logging.getLogger(__name__)

# An IVF's list count is 4 sqrt(n) for the n vectors it was trained on; once the live vectors are this many
# times n, it is retrained in the background (the list count doubles), so each probe keeps scanning about
# as many vectors as benchmarks/search.py measured, instead of 10x as many at 10^6 on lists trained at 10^4.
RETRAIN_GROWTH = 4.0
REBUILD_MIN_DEAD = 1_000


class SnapshotState(NamedTuple):
    """An index's position maps as a snapshot keeps them beside the serialised index."""

    ids: np.ndarray     # position -> row id
    dead: np.ndarray    # position -> tombstoned
    staged: bool        # still the exact staging index (trained type not built yet)


def _running(thread: threading.Thread | None) -> bool:  # still at work, other than the one asking (it is finishing)
    return thread is not None and thread.is_alive() and thread is not threading.current_thread()


class FaissIndex:
    """One modality's vectors in process; see the module docstring."""

    shared = False  # an in-process view: each replica builds (or loads) its own from the catalog

    def __init__(
        self, dim: int, index_type: str = "flat", search_params: str = "", use_gpu: bool = False,
        rebuild_dead_fraction: float = 0.1, copier: Copier | None = None, where: str = "",
        recall_target: float = 0.0, build_params: str = "",
    ):
        """use_gpu: FAISS's own GPU copy; copier: any other GPU copy (gpu_copies.py); where: how the
        description names a copy's place, and why there is none when that was asked for; recall_target:
        recall@10 the search effort is calibrated to (calibration.py; 0, explicit search_params or a GPU copy: none);
        build_params: set on each new index before vectors go in (ParameterSpace syntax; "": the type's default)."""
        self.dim = dim
        self.index_type = index_type
        self._factory = INDEX_TYPES.get(index_type, index_type)
        self._built = self._factory  # with the list count filled in, once an IVF is trained
        self._nlist = 0  # that list count (0: not an IVF whose count follows the corpus, or not trained)
        self._search_params = search_params or DEFAULT_SEARCH_PARAMS.get(index_type, "")
        self._default_params = self._search_params
        self._build_params = build_params or DEFAULT_BUILD_PARAMS.get(index_type, "")
        self._dead_fraction = rebuild_dead_fraction
        self._lock = threading.Lock()
        self._copier = copier or (faiss_gpu_copier() if use_gpu else None)
        self._target = 0.0 if search_params or self._copier is not None else recall_target
        self.calibration: Calibration | None = None  # the last one, and the live vectors then
        self._calibrated_at = 0
        self._calibrator: threading.Thread | None = None
        self._where = where or ("gpu" if self._copier else "cpu")
        self._index, self._staged = self._empty()
        self._gpu = self._to_gpu(self._index)
        self._ids = np.zeros(1024, dtype=np.int64)     # position -> row id
        self._dead = np.zeros(1024, dtype=bool)        # position -> tombstone
        self._pos = np.full(1024, -1, dtype=np.int64)  # row id -> live position, -1 if none
        self._n = 0
        self._n_dead = 0
        self._rebuilder: threading.Thread | None = None
        self._train_at = TRAIN_MIN
        self.rebuilds = 0

    # --- description ----------------------------------------------------------
    @property
    def description(self) -> str:
        kind = "Flat, staged until trained" if self._staged else self._built
        where = self._where if self._gpu is not None or self._copier is None else "cpu"
        params = f" built with {self._build_params}," if self._build_params and not self._staged else ""
        params += f" {self._search_params}" if self._search_params and not self._staged else ""
        if (cal := self.calibration) is not None and not self._staged:
            params += f" (recall@10 {cal.recall:.3f} measured at {cal.vectors} vectors)"
        return f"faiss {kind}{params} inner product dim={self.dim} on {where}"

    @property
    def exact(self) -> bool:
        return self._staged or self._factory == "Flat"

    def __len__(self) -> int:
        return self._n - self._n_dead

    @property
    def dead(self) -> int:
        return self._n_dead

    # --- writes ---------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, attrs: list[dict] | None = None) -> None:
        """Insert or replace: an id already present gets a new position and its old one a tombstone."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(np.unique(ids)) != len(ids):  # the last vector of a repeated id wins
            _, first_from_end = np.unique(ids[::-1], return_index=True)
            keep = np.sort(len(ids) - 1 - first_from_end)
            ids, vectors = ids[keep], vectors[keep]
        with self._lock:
            self._kill(ids)
            start = self._n
            self._index.add(vectors)
            if self._gpu is not None:
                self._gpu.add(vectors)
            self._grow(start + len(ids), int(ids.max()) + 1 if len(ids) else 0)
            self._ids[start : start + len(ids)] = ids
            self._dead[start : start + len(ids)] = False
            self._pos[ids] = np.arange(start, start + len(ids))
            self._n += len(ids)
        self._follow_up()

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            self._kill(np.asarray(ids, dtype=np.int64).reshape(-1))
        self._follow_up()

    def _kill(self, ids: np.ndarray) -> None:
        ids = np.unique(ids[(ids >= 0) & (ids < len(self._pos))])
        pos = self._pos[ids]
        pos = pos[pos >= 0]
        self._dead[pos] = True
        self._n_dead += len(pos)
        self._pos[ids] = -1

    def _grow(self, positions: int, rows: int) -> None:
        if positions > len(self._ids):
            size = max(positions, 2 * len(self._ids))
            self._ids = np.concatenate([self._ids, np.zeros(size - len(self._ids), np.int64)])
            self._dead = np.concatenate([self._dead, np.zeros(size - len(self._dead), bool)])
        if rows > len(self._pos):
            size = max(rows, 2 * len(self._pos))
            self._pos = np.concatenate([self._pos, np.full(size - len(self._pos), -1, np.int64)])

    def get(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored vectors of `ids`: (found mask, (found, dim) vectors), as FAISS reconstructs them
        (exact for flat and HNSW-flat storage)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock:
            pos = np.full(len(ids), -1, np.int64)
            inside = (ids >= 0) & (ids < len(self._pos))
            pos[inside] = self._pos[ids[inside]]
            found = pos >= 0
            if not found.any():
                return found, np.zeros((0, self.dim), np.float32)
            return found, self._index.reconstruct_batch(pos[found])

    # --- search ---------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row ids), each (n_queries, k), best first; missing slots have id -1 and score -inf."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        with self._lock:
            n, index = self._n, (self._gpu if self._gpu is not None else self._index)
            if n - self._n_dead == 0 or len(queries) == 0:
                return out_s, out_i
            todo = np.arange(len(queries))
            fetch = min(n, k if self._n_dead == 0 else 2 * k + 16)
            while len(todo):
                scores, pos = index.search(queries[todo], fetch)
                retry = []
                for j, q in enumerate(todo):
                    p = pos[j]
                    ok = p >= 0
                    ok[ok] = ~self._dead[p[ok]]
                    got = int(ok.sum())
                    if got < k and fetch < n and (p >= 0).all():  # dead ones crowded the list out: ask wider
                        retry.append(q)
                        continue
                    take = min(got, k)
                    out_s[q, :take] = scores[j][ok][:take]
                    out_i[q, :take] = self._ids[p[ok][:take]]
                todo = np.array(retry, dtype=np.int64)
                fetch = min(n, fetch * 4)
        return out_s, out_i

    # --- rebuilds -------------------------------------------------------------
    def _rebuild_due(self) -> bool:
        if _running(self._rebuilder):
            return False
        if self._staged and self._factory != "Flat" and len(self) >= self._train_at:
            return True
        if not self._staged and self._nlist and len(self) >= RETRAIN_GROWTH * (self._nlist / 4) ** 2:
            return True
        if getattr(self._gpu, "tail", 0) >= max(TAIL_REBUILD_MIN, self._n // 2):  # a GPU graph's brute-forced rows
            return True
        return self._n_dead >= max(REBUILD_MIN_DEAD, self._dead_fraction * self._n)

    def _calibrate_if_due(self) -> None:
        """Recalibrate in the background once the live vectors have grown RECALIBRATE_GROWTH times since the last."""
        with self._lock:
            busy = _running(self._calibrator) or _running(self._rebuilder)
            grown = len(self) >= max(CALIBRATE_MIN, RECALIBRATE_GROWTH * self._calibrated_at)
            if busy or not self._target or self._staged or not grown:
                return
            self._calibrator = threading.Thread(target=self._calibrate_live, name="coldopen-index-calibrate", daemon=True)
            self._calibrator.start()

    def _calibrate_live(self) -> None:
        with self._lock:
            index, live = self._index, len(self)
        tuned = calibration.tune(index, self._default_params, self._target, self._built, hold=lambda: self._lock)
        with self._lock:
            self._calibrated_at = live
            if tuned is not None and self._index is index and self._target:
                faiss.ParameterSpace().set_index_parameters(index, tuned.params)  # type: ignore[arg-type]
                self._search_params, self.calibration = tuned.params, tuned
        self._follow_up()

    def rebuild(self, background: bool = False) -> None:
        """Build a fresh index from the live vectors (trained, for types that train) and swap it in."""
        if background:
            with self._lock:
                if _running(self._rebuilder):
                    return
                self._rebuilder = threading.Thread(target=self._rebuild_logged, name="coldopen-index-rebuild", daemon=True)
                self._rebuilder.start()
            return
        self._rebuild()

    def wait_rebuilt(self, timeout: float | None = None) -> None:
        """Wait for the background work in flight and the work it leads to, for at most `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while threads := [t for t in (self._rebuilder, self._calibrator) if t is not None and _running(t)]:
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return

    def _follow_up(self) -> None:
        """After a write, and when background work ends (a start-up load may outrun a training and then stop
        writing: RESULTS.md "an index loaded faster than it trains"), start the rebuild or calibration now due."""
        with self._lock:
            due = self._rebuild_due()
        if due:
            self.rebuild(background=True)
        self._calibrate_if_due()

    def _rebuild_logged(self) -> None:
        try:
            self._rebuild()
        except Exception:  # the old index keeps serving; the next write past the threshold tries again
            log.exception("rebuilding the %s index failed; it keeps serving the current one", self._factory)
            return
        self._follow_up()

    def _rebuild(self) -> None:
        started = time.perf_counter()
        with self._lock:
            old, n0 = self._index, self._n
        # Positions below n0 never change content, so they are copied a chunk at a time without holding
        # the lock for the whole copy (the lock is still needed: an add may move the storage).
        keep_parts, vector_parts = [], []
        for s in range(0, n0, 65_536):
            e = min(n0, s + 65_536)
            with self._lock:
                if self._index is not old:
                    return
                live = np.flatnonzero(~self._dead[s:e]) + s
                vector_parts.append(reconstruct_range(old, s, e)[live - s])
            keep_parts.append(live)
        keep = np.concatenate(keep_parts) if keep_parts else np.zeros(0, np.int64)
        vectors = np.concatenate(vector_parts) if vector_parts else np.zeros((0, self.dim), np.float32)
        fresh, staged = self._build(vectors)
        tuned = None if staged else calibration.tune(fresh, self._default_params, self._target, self._built)
        if tuned is not None:
            faiss.ParameterSpace().set_index_parameters(fresh, tuned.params)  # type: ignore[arg-type]
        gpu = self._to_gpu(fresh)
        with self._lock:
            if self._index is not old:
                return
            if self._n > n0:  # written during the build
                late = reconstruct_range(old, n0, self._n)
                fresh.add(late)
                if gpu is not None:
                    gpu.add(late)
                keep = np.concatenate([keep, np.arange(n0, self._n)])
            ids, dead = self._ids[keep], self._dead[keep]  # tombstones set during the build carry over
            self._ids, self._dead = ids.copy(), dead.copy()
            self._grow(max(len(ids), 1024), 0)
            self._pos[:] = -1
            live = np.flatnonzero(~dead)
            self._pos[ids[live]] = live
            self._n, self._n_dead = len(ids), int(dead.sum())
            self._index, self._staged, self._gpu = fresh, staged, gpu
            if tuned is not None:
                self._search_params, self.calibration, self._calibrated_at = tuned.params, tuned, len(vectors)
            self.rebuilds += 1
        log.info("rebuilt the %s index: %d vectors (%d tombstones dropped) in %.1f s", self.description,
                 len(ids), n0 - len(vectors), time.perf_counter() - started)

    def _empty(self) -> tuple[faiss.Index, bool]:  # and whether it is a flat stand-in for a type that trains
        return faiss_types.empty_index(self.dim, self._factory, self._configure)

    def _build(self, vectors: np.ndarray) -> tuple[faiss.Index, bool]:
        """A fresh index holding `vectors` at positions 0..n-1 (trained, for types that train)."""
        built = faiss_types.index_holding(self.dim, self._factory, vectors, self._configure)
        self._built, self._nlist = (built.factory, built.nlist) if built.factory else (self._built, self._nlist)
        self._train_at = built.retry_at or self._train_at
        return built.fresh, built.staged

    def set_search_params(self, params: str) -> None:
        """Change the search parameters (faiss.ParameterSpace syntax) of the live index, e.g. efSearch=32."""
        with self._lock:
            self._search_params, self._target, self.calibration = params, 0.0, None  # a choice: not recalibrated
            if not self._staged:
                faiss.ParameterSpace().set_index_parameters(self._index, params)  # type: ignore[arg-type]

    def _configure(self, index: faiss.Index) -> None:
        """Before vectors go in (and on a restored index, for those added later): build and search parameters."""
        space = faiss.ParameterSpace()
        if self._build_params:
            space.set_index_parameters(index, self._build_params)  # type: ignore[arg-type]
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:  # so the vectors can be read back for the next rebuild
            ivf.make_direct_map()
        if self._search_params:
            space.set_index_parameters(index, self._search_params)  # type: ignore[arg-type]

    def _to_gpu(self, index: faiss.Index):
        return self._copier(index) if self._copier is not None else None

    # --- snapshots (storage/snapshots.py writes and reads the files) -----
    def snapshot_state(self) -> tuple[np.ndarray, SnapshotState]:
        """The serialised FAISS index and the position maps, copied under the lock (about 1 s per 2 GB)."""
        with self._lock:
            blob = faiss.serialize_index(self._index)
            state = SnapshotState(self._ids[: self._n].copy(), self._dead[: self._n].copy(), self._staged)
        return blob, state

    def restore(self, index: faiss.Index, ids: np.ndarray, dead: np.ndarray, staged: bool) -> None:
        """Install an index read from a snapshot (positions 0..n-1) with its position maps."""
        if index.d != self.dim or index.ntotal != len(ids) or len(dead) != len(ids):
            raise ValueError(f"snapshot holds {index.ntotal} vectors of {index.d}-d for {len(ids)} ids; expected {self.dim}-d")
        weaker = False
        if not staged:
            built_with = graph_build_effort(index)
            self._configure(index)
            weaker = built_with is not None and built_with < (graph_build_effort(index) or 0)
            ivf = faiss.try_extract_index_ivf(index)
            self._built = self._factory.replace("{nlist}", str(ivf.nlist)) if ivf is not None else self._factory
            self._nlist = int(ivf.nlist) if ivf is not None and "{nlist}" in self._factory else 0
        with self._lock:
            self._index, self._staged = index, staged
            self._gpu = self._to_gpu(index)
            self._ids, self._dead = ids.astype(np.int64), dead.astype(bool)
            self._pos = np.full(0, -1, np.int64)
            self._n, self._n_dead = len(ids), int(dead.sum())
            self._grow(max(len(ids), 1024), int(ids.max()) + 1 if len(ids) else 1024)
            live = np.flatnonzero(~self._dead[: self._n])
            self._pos[self._ids[live]] = live
            self._calibrated_at, self.calibration = 0, None
        if weaker:  # e.g. a snapshot from before efConstruction 128: it serves while a better graph is built
            log.info("the snapshot's %s graph was built with efConstruction %d; rebuilding it with %s in the background",
                     self._built, built_with, self._build_params)
            self.rebuild(background=True)
        self._calibrate_if_due()

    def close(self) -> None:
        """Nothing to release but a rebuild in flight, which is left to finish or die with the process."""
