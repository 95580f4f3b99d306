"""The performs-well pool: the videos that already perform well, which Route sends new ones towards.

  base.py    the interface and what both kinds share (the routing view, performing-only search)
  local.py   one server on its own catalog: an incremental score book, snapshotted
  shared.py  replicas on a shared catalog: recomputed and published by whoever records engagement
  index.py   one modality of the pool as a read-only vector index
"""

from __future__ import annotations

from pathlib import Path

from coldopen.config.settings import Settings
from coldopen.ranking.pool.base import PerformancePool, Publish, Vectors
from coldopen.ranking.pool.local import LocalPool
from coldopen.ranking.pool.shared import SharedPool
from coldopen.storage.catalog import Catalog

__all__ = ["LocalPool", "PerformancePool", "SharedPool", "open_pool"]


def open_pool(settings: Settings, store: Catalog, visual_dim: int, text_dim: int, on_publish: Publish | None = None,
              vectors: Vectors | None = None, background: bool = False, snapshot_dir: Path | None = None
              ) -> PerformancePool:
    """The pool this catalog needs: incremental on one server's own catalog, recomputed on a shared one."""
    if store.shared:
        return SharedPool(settings, store, visual_dim, text_dim, on_publish, vectors)
    return LocalPool(settings, store, visual_dim, text_dim, on_publish, vectors, background, snapshot_dir)
