"""Keep CPython's full garbage collections off the request path.

A full (generation-2) collection walks every container object the process tracks. After start that
is the models' Python objects (torch, open_clip, transformers modules) and the service's long-lived
state: ~0.55 M objects, at 2 x 10^4 videos as at 10^6 (nearly all of them the libraries'), and one
full collection takes 0.3-0.4 s on the 2-core VM. CPython runs one whenever enough survivors have accumulated, inside whichever
thread allocated last, so an unlucky request pays for it (`benchmarks/one_node.py` reports the
collections during its engagement batches and the batches that met one).

What is built at start lives as long as the process, so once the service is ready it is moved to
the permanent generation (`gc.freeze`, the standard library's tool for this), which collections
skip; what requests allocate is collected as before. Freezing is process-wide: the entry point
(`coldopen.api.server.serve`) calls it, not the service, so tests and embedding callers keep CPython's defaults.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_long_lived() -> int:
    """Collect once, then exempt every object alive now from later collections; the number frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("%d long-lived objects exempted from garbage collection (gc.freeze) in %.2f s", frozen,
             time.perf_counter() - started)
    return frozen
