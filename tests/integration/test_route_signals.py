"""Route on the signal worlds of testkit/signalworlds.py at small size (benchmarks/route_worlds.py runs
them all at full size): where the topic, and so performance, lives only in a shared background song, and
where engagement teaches nothing (the topic lives in speech, pictures show the creator's room), the
default Route is never worse than its best single modality by more than 0.05."""

from __future__ import annotations

import pytest

from coldopen.api.client import Client
from testkit import routeworld, signalworlds

pytestmark = pytest.mark.slow

K = 4
ASKED = ("Route (default)", *signalworlds.SINGLES)


def _run(world: str, models, base_settings, folder):
    from tests.conftest import RunningServer

    spec = signalworlds.WORLDS[world]
    corpus, queries = signalworlds.make(spec, folder / "clips", per_topic=8, queries=2, seed=0)
    low_share = 100 * sum(not v.performs for v in corpus) / len(corpus)
    settings = base_settings.replace(data_dir=folder / "data", pool_min_impressions=1000,
                                     pool_percentile=min(low_share + 1, 99.0))
    server = RunningServer(settings, models)
    try:
        with Client(server.server.address, timeout=600) as client:
            routeworld.load(client, corpus)
            return signalworlds.evaluate(client, corpus, queries, K, ASKED)
    finally:
        server.stop()


def test_a_shared_song_carries_the_route(models, base_settings, tmp_path):
    ev = _run("sound", models, base_settings, tmp_path)
    best, best_p = ev.best_single()
    default = ev.mean("Route (default)")
    assert best == "sound only" and best_p >= 0.8, ev.precision
    assert default is not None and default >= best_p - 0.05, ev.precision
    assert ev.bases.get("learned", 0) == len(ev.priors), ev.bases  # engagement taught the weights


def test_where_engagement_teaches_nothing_the_content_picks_the_weights(models, base_settings, tmp_path):
    ev = _run("no signal in engagement (topic in speech, rooms)", models, base_settings, tmp_path)
    best, best_p = ev.best_single()
    default = ev.mean("Route (default)")
    assert default is not None and default >= best_p - 0.05, ev.precision
    assert "learned" not in ev.bases, ev.bases  # nothing predicts performance here
    assert sum(ev.bases.values()) == len(ev.priors) and all(r != "-" for r in ev.reasons), ev.reasons
