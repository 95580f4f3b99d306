"""Snapshots of the in-process FAISS indexes, so a start loads them and replays only the catalog's newer
changes instead of re-reading every vector.

Layout under `<data_dir>/snapshots/`:
  manifest.json                  what the files hold: format, generation, change-feed cursor, catalog id,
                                 embedding model and width, index type, when written, vectors per modality
  <generation>-<modality>.faiss  the index in FAISS's own serialisation (`faiss.read_index` reads it)
  <generation>-<modality>.npz    position -> row id, and tombstones
Each file's checksum is in the manifest and is checked before the file is read.

The files are written and fsynced first, then the manifest is replaced atomically, then older files are
removed: a crash while writing leaves the previous snapshot in force. A snapshot is used only when its
catalog id, model, width and index type match the running server and it is younger than the change
feed's retention (`feed.KEEP_CHANGES_S`, less an hour for clock skew), so every change after its cursor is
still in the feed; otherwise the start rebuilds from the catalog, as it did before snapshots, and says why.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from coldopen.storage.files import checksums, damaged, replace_durably
from coldopen.storage.retention import KEEP_CHANGES_S, MAX_AGE_S
from coldopen.storage.vectors.faiss_index import FaissIndex

log = logging.getLogger(__name__)

FORMAT = 2  # 2: the manifest records each file's checksum (files.checksum), checked before loading


@dataclass(frozen=True)
class SnapshotKey:
    """What a snapshot must match to be loaded."""
    catalog_id: str
    model: str
    dim: int
    index_type: str


def write(directory: Path, key: SnapshotKey, cursor: int, indexes: Mapping[str, FaissIndex]) -> dict[str, Any]:
    """Write a snapshot of `indexes`, each holding at least every change up to `cursor`. Returns the manifest."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    generation = f"{time.time_ns():x}"
    counts = {}
    for modality, index in indexes.items():
        blob, state = index.snapshot_state()
        _write_file(directory / f"{generation}-{modality}.faiss", blob)
        counts[modality] = {"vectors": int(len(state.ids)), "dead": int(state.dead.sum()), "staged": state.staged}
        with open(directory / f"{generation}-{modality}.npz", "wb") as f:
            np.savez(f, ids=state.ids, dead=state.dead)
            f.flush()
            os.fsync(f.fileno())
        del blob
    written = [directory / f"{generation}-{m}{suffix}" for m in indexes for suffix in (".faiss", ".npz")]
    manifest = {"format": FORMAT, "generation": generation, "cursor": int(cursor), **asdict(key),
                "written_at": time.time(), "indexes": counts, "checksums": checksums(written)}
    replace_durably(directory / "manifest.json", json.dumps(manifest, indent=1))
    for path in directory.iterdir():
        # <generation>-<modality> files only (pool.npz, the pool's snapshot, is not this module's)
        if path.suffix in (".faiss", ".npz") and "-" in path.name and not path.name.startswith(generation + "-"):
            path.unlink(missing_ok=True)
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    log.info("index snapshot written in %.1f s: %s (cursor %d)", manifest["seconds"],
             ", ".join(f"{m} {c['vectors']}" for m, c in counts.items()), cursor)
    return manifest


def load(directory: Path, key: SnapshotKey, indexes: Mapping[str, FaissIndex]) -> int | None:
    """Load the snapshot into `indexes` and return its change-feed cursor; None (indexes untouched, the
    reason logged) when there is none or it cannot be used."""
    path = directory / "manifest.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        why = _unusable(manifest, key, set(indexes))
        if why:
            log.warning("not loading the index snapshot in %s: %s; rebuilding from the catalog", directory, why)
            return None
        started = time.perf_counter()
        bad = damaged(directory, manifest["checksums"])
        if bad:
            log.warning("not loading the index snapshot in %s: %s; rebuilding from the catalog", directory, bad)
            return None
        loaded = {}
        for modality in indexes:
            stem = directory / f"{manifest['generation']}-{modality}"
            index = faiss.read_index(str(stem.with_suffix(".faiss")))
            with np.load(stem.with_suffix(".npz")) as maps:
                loaded[modality] = (index, maps["ids"], maps["dead"], bool(manifest["indexes"][modality]["staged"]))
        for modality, (index, ids, dead, staged) in loaded.items():
            indexes[modality].restore(index, ids, dead, staged)
    except Exception as e:  # a damaged snapshot costs a rebuild, never a failed start
        log.warning("the index snapshot in %s could not be read (%s: %s); rebuilding from the catalog",
                    directory, type(e).__name__, e)
        return None
    log.info("index snapshot loaded in %.1f s: %s, taken %.0f s ago", time.perf_counter() - started,
             ", ".join(f"{m} {len(i)}" for m, i in indexes.items()), time.time() - manifest["written_at"])
    return int(manifest["cursor"])


def _unusable(manifest: dict, key: SnapshotKey, modalities: set[str]) -> str | None:
    if manifest.get("format") != FORMAT:
        return f"it has format {manifest.get('format')}, this version reads {FORMAT}"
    for field, want in asdict(key).items():
        if manifest.get(field) != want:
            return f"it was taken with {field}={manifest.get(field)!r}, the server runs with {want!r}"
    if set(manifest.get("indexes", {})) != modalities:
        return f"it holds {sorted(manifest.get('indexes', {}))}, the server needs {sorted(modalities)}"
    age = time.time() - float(manifest.get("written_at", 0))
    if age > MAX_AGE_S:
        return f"it is {age / 3600:.1f} h old and the change feed keeps only {KEEP_CHANGES_S // 3600} h of changes"
    return None


def _write_file(path: Path, blob: np.ndarray) -> None:
    with open(path, "wb") as f:
        blob.tofile(f)
        f.flush()
        os.fsync(f.fileno())
