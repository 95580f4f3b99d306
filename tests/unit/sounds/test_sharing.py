"""The one rule of sound sharing (sounds/sharing.py): where two uses of a sound overlap, for any offsets and
speeds the matching allows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coldopen.domain.sounds import SoundUse
from coldopen.sounds import sharing


@settings(max_examples=300, deadline=None)
@given(st.integers(-5000, 5000), st.integers(0, 3000), st.integers(1, 3000), st.floats(0.75, 1.35),
       st.integers(-5000, 5000), st.integers(0, 3000), st.integers(1, 3000), st.floats(0.75, 1.35))
def test_a_shared_stretch_is_never_negative_nor_longer_than_either_clip(o1, s1, n1, k1, o2, s2, n2, k2):
    """Two videos of n1 and n2 frames from frame s1 and s2, on a sound at offsets o1, o2 and speeds k1, k2."""

    def use(offset: int, start: int, frames: int, scale: float) -> SoundUse:
        first = int(round(start * scale)) + offset
        return SoundUse(1, True, offset, scale, first, int(round((start + frames - 1) * scale)) + offset, 5, 1.0)

    a, b = use(o1, s1, n1, k1), use(o2, s2, n2, k2)
    n = sharing.shared(a, b, "b")
    if n is None:
        assert a.first > b.last or b.first > a.last
        return
    frame = sharing.FRAME_S
    assert n.query_start_s >= 0 and n.reference_start_s >= 0 and n.duration_s > 0
    assert n.query_start_s + n.duration_s <= (s1 + n1 + 1) * frame + 1e-6
    assert n.reference_start_s + n.duration_s <= (s2 + n2 + 1) * frame + 1e-6
