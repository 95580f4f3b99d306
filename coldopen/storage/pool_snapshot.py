"""A snapshot of the performs-well pool (one server), so a start loads every engaged video's score inputs
and the members' routing metadata from one file and re-reads only what changed after it, instead of
every engaged video's counters and every member's profile (~14 s at 10^6 engaged videos on the 2-core
VM; ranking/pool/).

`<data_dir>/snapshots/pool.npz` holds:
  meta       JSON: format, catalog id, the counter weights the engagement sums were made with, the
             engagement fold generation and change-feed cursor it covers, the published pool version,
             when it was written
  book_*     the score book's inputs per engaged video: row, weighted engagement, impressions, last
             event (unix s), content prior rate and weight (ranking/scorebook.py `state()`)
  pool       the members' rows, as published under `version`
  member_*   the members' row, video id, creator, language, sound (their vectors come from the
             in-process indexes, which have their own snapshot)

It is written to a temporary file, fsynced, then renamed over the previous one: a crash leaves the
previous snapshot in force. A snapshot is used only when its catalog id and counter weights match and it
is younger than the change feed's retention; otherwise the start reads the catalog, as before, and says why.
Scores (keys, order, membership) are recomputed from the inputs, so a change of percentile, half-life or
prior settings needs no new snapshot.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coldopen.storage.files import fsync_dir
from coldopen.storage.retention import MAX_AGE_S

log = logging.getLogger(__name__)

FORMAT = 1
FILE = "pool.npz"
BOOK = ("row", "w", "imp", "t", "pr", "pw")


@dataclass(frozen=True)
class Members:
    rows: np.ndarray
    video_ids: list[str]
    creators: list[str]
    languages: list[str]
    sounds: np.ndarray   # -1: none


@dataclass(frozen=True)
class PoolSnapshot:
    catalog_id: str
    weights: dict[str, float]
    generation: int          # engagement folds up to this one are in `book`
    cursor: int              # change-feed changes up to this one are in `book` and `members`
    version: str | None      # the published pool version: the rows `pool`
    book: dict[str, np.ndarray]
    pool: np.ndarray         # the members' rows
    members: Members         # the routing metadata of those of them whose video existed
    written_at: float = 0.0


def write(directory: Path, snap: PoolSnapshot) -> float:
    """Write the snapshot atomically; returns the seconds it took."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "catalog_id": snap.catalog_id, "weights": snap.weights, "generation": snap.generation,
            "cursor": snap.cursor, "version": snap.version, "written_at": time.time()}
    m = snap.members
    tmp = directory / (FILE + ".tmp")
    with open(tmp, "wb") as f:
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps(meta)), **{"book_" + k: snap.book[k] for k in BOOK}, "pool": snap.pool,
            "member_rows": m.rows, "member_sounds": m.sounds, "member_video_ids": np.array(m.video_ids, dtype=str),
            "member_creators": np.array(m.creators, dtype=str), "member_languages": np.array(m.languages, dtype=str),
        }
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its `allow_pickle` flag
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / FILE)
    fsync_dir(directory)
    took = time.perf_counter() - started
    log.info("pool snapshot written in %.2f s: %d engaged videos, %d members (fold generation %d, cursor %d)",
             took, len(snap.book["row"]), len(m.rows), snap.generation, snap.cursor)
    return took


def load(directory: Path, catalog_id: str, weights: dict[str, float]) -> PoolSnapshot | None:
    """The snapshot, or None (the reason logged) when there is none or it cannot be used."""
    path = directory / FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            why = _unusable(meta, catalog_id, weights)
            if why:
                log.warning("not loading the pool snapshot %s: %s; reading the pool from the catalog", path, why)
                return None
            book = {k: z["book_" + k] for k in BOOK}
            pool = z["pool"]
            members = Members(z["member_rows"], z["member_video_ids"].tolist(), z["member_creators"].tolist(),
                              z["member_languages"].tolist(), z["member_sounds"])
    except Exception as e:  # a damaged snapshot costs a full read, never a failed start
        log.warning("the pool snapshot %s could not be read (%s: %s); reading the pool from the catalog",
                    path, type(e).__name__, e)
        return None
    return PoolSnapshot(meta["catalog_id"], meta["weights"], int(meta["generation"]), int(meta["cursor"]),
                        meta["version"], book, pool, members, float(meta["written_at"]))


def _unusable(meta: dict, catalog_id: str, weights: dict[str, float]) -> str | None:
    if meta.get("format") != FORMAT:
        return f"it has format {meta.get('format')}, this version reads {FORMAT}"
    if meta.get("catalog_id") != catalog_id:
        return f"it was taken of catalog {meta.get('catalog_id')!r}, the server opened {catalog_id!r}"
    if meta.get("weights") != weights:
        return f"it was taken with counter weights {meta.get('weights')}, the server runs with {weights}"
    age = time.time() - float(meta.get("written_at", 0))
    if age > MAX_AGE_S:
        return f"it is {age / 3600:.1f} h old, older than the change feed's retention"
    return None
