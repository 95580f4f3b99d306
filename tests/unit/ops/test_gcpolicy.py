"""ops/gcpolicy.py: what start built is exempted from full collections; later garbage is still collected."""

import gc
import weakref

from coldopen.ops import gcpolicy


class Node:
    pass


def test_freeze_exempts_what_exists_and_still_collects_later_cycles():
    kept = Node()
    kept.self = kept  # a cycle alive at "start"
    try:
        frozen = gcpolicy.freeze_long_lived()
        # frozen objects that die (by refcount, e.g. in another test's lingering thread) leave the frozen
        # set, so the count can only have fallen since
        assert 0 < gc.get_freeze_count() <= frozen
        assert all(kept is not o for o in gc.get_objects())  # frozen objects are no longer scanned
        later = Node()
        later.self = later  # a cycle made after start and dropped: only a collection frees it
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
    assert any(kept is o for o in gc.get_objects())
