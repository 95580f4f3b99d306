"""Milvus as the vector store shared by every replica (pymilvus' MilvusClient): a Milvus server or
cluster (`http://host:19530`), or embedded Milvus Lite (a local `*.db` path).

One collection per modality, keyed by the catalog's row id, with scalar fields for filtering (creator,
language, sound, and membership of the performs-well pool, which performing-only searches filter on). Writes are upserts and
deletes by row id, so shipping a change twice is harmless:
the catalog's change feed (storage/feed.py) is the outbox that replays writes a crash cut off.
Index type and parameters come from settings; build parameters are passed nested under "params", the
form every Milvus (Lite included) reads.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from coldopen.domain.errors import ModelLoadError, StorageUnavailable

_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
_COUNT_TTL_S = 1.0  # len() is asked on every search; the row count is re-read at most this often


class MilvusIndex:
    shared = True

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        index_type: str = "HNSW",
        build_params: dict | None = None,
        search_params: dict | None = None,
    ):
        from pymilvus import DataType, MilvusClient

        self.dim = dim
        self.collection = collection
        self._uri = uri
        self._search_params = {"metric_type": "IP", "params": dict(search_params or {})}
        # pymilvus pings every 10 s, even between calls; gRPC servers written in Python (Milvus Lite's) answer
        # pings more frequent than every 5 minutes without data with GOAWAY "too_many_pings", which breaks
        # the channel for every client of that address. Ping only during calls, at most every 5 minutes.
        self._client = MilvusClient(uri=uri, grpc_options=_GRPC_OPTIONS)
        self._lock = threading.Lock()
        self._count: tuple[float, int] | None = None
        if not self._client.has_collection(collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("row_id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("creator", DataType.VARCHAR, max_length=256)
            schema.add_field("language", DataType.VARCHAR, max_length=16)
            schema.add_field("sound", DataType.INT64)
            schema.add_field("in_pool", DataType.BOOL)
            index = self._client.prepare_index_params()
            index.add_index(
                field_name="vector", index_type=index_type, metric_type="IP", params={"params": dict(build_params or {})}
            )
            self._client.create_collection(collection, schema=schema, index_params=index, consistency_level="Strong")
        else:
            have = next(f for f in self._client.describe_collection(collection)["fields"] if f["name"] == "vector")
            if int(have["params"]["dim"]) != dim:
                raise ModelLoadError(
                    f"Milvus collection {collection!r} holds {have['params']['dim']}-d vectors but this server makes "
                    f"{dim}-d ones; use the same models, or another --milvus-collection-prefix"
                )
        self._client.load_collection(collection)  # again after every reopen: Milvus serves loaded collections only
        self.description = f"milvus {index_type} {json.dumps(build_params or {})} dim={dim} collection={collection} at {uri}"

    def add(self, ids: np.ndarray, vectors: np.ndarray, attrs: list[dict] | None = None) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.asarray(ids, dtype=np.int64)
        attrs = attrs or [{}] * len(ids)
        rows = [
            {
                "row_id": int(i),
                "vector": v.tolist(),
                "creator": a.get("creator", "")[:256],
                "language": a.get("language", "")[:16],
                "sound": int(a.get("sound") or 0),
                "in_pool": bool(a.get("in_pool", False)),
            }
            for i, v, a in zip(ids.tolist(), vectors, attrs)
        ]
        if rows:
            self._call("writing to", lambda: self._client.upsert(self.collection, rows))
            self._count = None

    def remove(self, ids: np.ndarray) -> None:
        rows = [int(i) for i in np.asarray(ids, dtype=np.int64).tolist()]
        if rows:
            self._call("deleting from", lambda: self._client.delete(self.collection, ids=rows))
            self._count = None

    def search(self, queries: np.ndarray, k: int, performing_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """`performing_only`: members of the performs-well pool only (the in_pool field, kept by the pool's
        publisher through the outbox)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        hits = self._call(
            "searching",
            lambda: self._client.search(
                self.collection,
                data=[q.tolist() for q in queries],
                limit=k,
                search_params=self._search_params,
                consistency_level="Strong",
                filter="in_pool == true" if performing_only else "",
            ),
        )
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for qi, row in enumerate(hits):
            for j, hit in enumerate(list(row)[:k]):
                ids[qi, j] = int(hit["row_id"])
                scores[qi, j] = float(hit["distance"])
        return scores, ids

    def __len__(self) -> int:
        with self._lock:
            now = time.monotonic()
            if self._count is None or now - self._count[0] > _COUNT_TTL_S:
                rows = self._call(
                    "counting",
                    lambda: self._client.query(
                        self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
                    ),
                )
                self._count = (now, int(rows[0]["count(*)"]))
            return self._count[1]

    def _call(self, doing: str, call):
        """A pymilvus call. A collection the server no longer has loaded (it restarted) is loaded again and
        the call retried once; other failures become the domain error the servicer maps to UNAVAILABLE."""
        from pymilvus.exceptions import MilvusException

        for attempt in range(2):
            try:
                return call()
            except MilvusException as e:
                if attempt == 0 and "load" in e.message.lower():
                    try:
                        self._client.load_collection(self.collection)
                        continue
                    except MilvusException:
                        pass
                raise StorageUnavailable(
                    f"{doing} the vector store ({self.collection} at {self._uri}) failed: {e.message}; committed "
                    f"writes reach it when it is back (the change feed ships them), so retrying is safe"
                ) from e

    def flush(self) -> None:
        """Seal what was written so it is searched through the index (growing segments are brute-forced)."""
        self._client.flush(self.collection)
        self._client.release_collection(self.collection)
        self._client.load_collection(self.collection)

    def index_params(self) -> dict:
        """The index as the server holds it (build parameters it silently dropped would be missing here)."""
        return self._client.describe_index(self.collection, "vector")

    def close(self) -> None:
        self._client.close()
