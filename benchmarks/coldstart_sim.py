"""The cold-start loop in a simulated platform: three rollout policies over the same uploads.

    python -m benchmarks.coldstart_sim [--history 5000] [--uploads 2000] [--seed 0] [--plot out.png] [--json out.json]

The world (embeddings, not media: thousands of rollouts of real clips do not fit this machine's budget;
`tests/routeworld.py` and `benchmarks/route_eval.py` cover the media path):
- T topics. A video's true rate (weighted engagement per impression, what its score converges to) is
  lognormal around its topic's level: log r = topic level + a video's own quality (sd `--quality-sd`),
  so content predicts part of performance and the rest is the video's own.
- Content as three modalities with the structure of the topic-in-speech world of issue 15: speech
  carries the topic; pictures mostly carry the creator's room (a little topic); captions are generic
  boilerplate (no topic). Each is a unit vector: normalise(a * topic centre + b * nuisance + noise).
- History: `--history` videos with 5k-100k impressions each and engagement drawn from their true
  rates (likes and shares, Poisson; a share weighs 4); the performs-well pool threshold is the 80th
  percentile of their scores, as the server computes it.
- Uploads: `--uploads` new videos from the same world, each rolled out over tiers of 300, 3k, 30k and
  300k impressions; engagement drawn as the impressions are granted.

The content prior is the server's own (ranking/coldstart/content.py over FAISS indexes of the history):
neighbours with >= 1,000 impressions, fused z-scored similarities with modality weights learned from
300 held-out history videos, kernel regression on log scores, conformal 80% interval. Policies, over the same uploads and
the same draws:
1. today: at each spent tier, widen iff the score smoothed toward the corpus mean (the server's
   `prior_impressions`) beats the pool threshold, else stop.
2. content prior only: the same rule with the score smoothed toward the content prior (the posterior
   mean, ranking/coldstart/posterior.py).
3. the expansion rule alone: `coldopen.ranking.coldstart.rollout.decide` (posterior probability test, early
   stop) with the corpus mean as the prior, weighted as today's smoothing (to separate the two parts);
4. content prior + expansion rule: the same rule on the content prior's posterior.
Reported: impressions spent on uploads in the bottom half of true quality; recall of the true top
decile reaching the last tier; impressions spent in all per top-decile video reaching it; the prior's
80% interval coverage of the uploads' true rates and its rank correlation with them. The plot shows,
per policy, the cumulative impressions against uploads ordered by true quality.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from coldopen.app.outlook import PRIOR_WEIGHT_CAP
from coldopen.config.settings import Settings
from coldopen.ranking.coldstart import posterior as post
from coldopen.ranking.coldstart import prior as cp
from coldopen.ranking.coldstart import rollout
from coldopen.ranking.coldstart.content import ContentPriors
from coldopen.ranking.coldstart.signals import PriorQuery
from coldopen.storage.vectors import FaissIndex

TIERS = (300, 3000, 30000, 300000)
W_LIKE, W_SHARE = 1.0, 4.0
MODALITIES = ("visual", "spoken", "caption")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class World:
    def __init__(self, rng, topics: int, creators: int, dim: int, quality_sd: float, topic_sd: float, base_rate: float):
        self.rng, self.dim = rng, dim
        self.topic_level = np.log(base_rate) + rng.normal(0, topic_sd, topics)
        self.quality_sd = quality_sd
        self.centres = {m: unit(rng.normal(size=(topics, dim))) for m in MODALITIES}
        self.rooms = unit(rng.normal(size=(creators, dim)))
        self.boilerplate = unit(rng.normal(size=(8, dim)))
        self.topics, self.creators = topics, creators

    def videos(self, n: int) -> dict:
        r = self.rng
        topic = r.integers(0, self.topics, n)
        creator = r.integers(0, self.creators, n)
        log_rate = self.topic_level[topic] + r.normal(0, self.quality_sd, n)
        noise = lambda s: r.normal(0, s / np.sqrt(self.dim), (n, self.dim))  # noqa: E731
        emb = {
            "spoken": unit(self.centres["spoken"][topic] + noise(0.8)),
            "visual": unit(0.3 * self.centres["visual"][topic] + self.rooms[creator] + noise(0.5)),
            "caption": unit(self.boilerplate[r.integers(0, 8, n)] + noise(0.4)),
        }
        return {"topic": topic, "creator": creator, "rate": np.exp(log_rate), "emb": emb}


def engagement(rng, rate: np.ndarray, impressions: np.ndarray) -> np.ndarray:
    """Weighted engagement drawn for `impressions` at `rate` (likes 60% of it, shares 40%)."""
    likes = rng.poisson(impressions * rate * 0.6 / W_LIKE)
    shares = rng.poisson(impressions * rate * 0.4 / W_SHARE)
    return W_LIKE * likes + W_SHARE * shares


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", type=int, default=5000)
    p.add_argument("--uploads", type=int, default=2000)
    p.add_argument("--topics", type=int, default=40)
    p.add_argument("--creators", type=int, default=200)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--quality-sd", type=float, default=0.5, help="sd of a video's own log-rate around its topic's")
    p.add_argument("--topic-sd", type=float, default=0.6, help="sd of topics' log-rate levels")
    p.add_argument("--base-rate", type=float, default=0.04, help="median weighted engagement per impression")
    p.add_argument("--prior-k", type=int, default=50)
    p.add_argument("--bandwidth", type=float, default=0.25)
    p.add_argument(
        "--prior-impressions",
        type=float,
        default=1000.0,
        help="today's smoothing strength (the server's default prior_impressions)",
    )
    p.add_argument("--widen-at", type=float, default=0.5)
    p.add_argument("--stop-below", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    world = World(rng, args.topics, args.creators, args.dim, args.quality_sd, args.topic_sd, args.base_rate)

    # History: engaged videos with their scores; the pool threshold over them.
    hist = world.videos(args.history)
    hist_imp = rng.integers(5_000, 100_000, args.history).astype(float)
    hist_w = engagement(rng, hist["rate"], hist_imp)
    corpus_mean = hist_w.sum() / hist_imp.sum()
    hist_score = (hist_w + args.prior_impressions * corpus_mean) / (hist_imp + args.prior_impressions)
    threshold = float(np.percentile(hist_score, 80, method="lower"))

    # The server's content priors over the history: FAISS indexes of every video, calibration on held-out
    # history videos, modality weights learned from them (ranking/coldstart/content.py).
    settings = Settings(
        prior_k=args.prior_k,
        prior_bandwidth=args.bandwidth,
        prior_min_impressions=1000,
        prior_calibration_videos=300,
        prior_impressions=args.prior_impressions,
    )
    indexes = {m: FaissIndex(args.dim) for m in MODALITIES}
    for m in MODALITIES:
        indexes[m].add(np.arange(args.history), hist["emb"][m].astype(np.float32))
    priors_of = ContentPriors(
        settings,
        indexes,
        lambda rows: {m: hist["emb"][m][np.asarray(rows, int)] for m in MODALITIES},
        lambda rows: (hist_score[np.asarray(rows, int)], hist_imp[np.asarray(rows, int)]),
        lambda least: np.flatnonzero(hist_imp >= least),
    )
    calibration, weights = priors_of.calibration()

    # Uploads: their priors, then three rollouts over the same engagement draws.
    up = world.videos(args.uploads)
    priors = [priors_of.prior(PriorQuery({m: up["emb"][m][i].astype(np.float32) for m in MODALITIES}))
              for i in range(args.uploads)]
    weight_cap = PRIOR_WEIGHT_CAP * Settings().prior_impressions  # as the server stores a prior

    def gamma(i: int) -> tuple[float, float]:
        shape, rate = priors[i].gamma()
        capped = min(rate, weight_cap)
        return shape / rate * capped, capped

    covered = np.mean([pr.low <= r <= pr.high for pr, r in zip(priors, up["rate"])])
    rank_corr = cp.spearman(np.array([pr.log_mean for pr in priors]), np.log(up["rate"]))

    # The engagement each upload would earn in each third of each tier's increment (the same draws for
    # every policy; the expansion rule looks after each third, the others after each tier).
    steps = np.diff((0,) + TIERS)
    thirds = np.repeat(steps / 3.0, 3)
    slices = np.stack([engagement(rng, up["rate"], np.full(args.uploads, s)) for s in thirds], axis=1)
    draws = slices.reshape(args.uploads, len(steps), 3).sum(axis=2)

    def rollout_today(i: int) -> int:
        w = imp = 0.0
        for t, step in enumerate(steps):
            w, imp = w + draws[i, t], imp + step
            if t == len(steps) - 1:
                break
            score = (w + args.prior_impressions * corpus_mean) / (imp + args.prior_impressions)
            if score < threshold:
                break
        return int(imp)

    def rollout_prior_only(i: int) -> int:
        a0, b0 = gamma(i)
        w = imp = 0.0
        for t, step in enumerate(steps):
            w, imp = w + draws[i, t], imp + step
            if t == len(steps) - 1:
                break
            if (a0 + w) / (b0 + imp) < threshold:
                break
        return int(imp)

    def rollout_rule(i: int, content: bool = True) -> int:
        # without the content prior: the corpus mean, weighted as today's smoothing weighs it
        a0, b0 = gamma(i) if content else (args.prior_impressions * corpus_mean, args.prior_impressions)
        w = imp = 0.0
        audience = TIERS[0]
        for s, size in enumerate(thirds):
            if imp >= audience:  # not widened: stopped, or complete at the last tier
                break
            w, imp = w + slices[i, s], imp + size
            posterior = post.posterior(a0, b0, w, imp, threshold)
            d = rollout.decide(posterior, int(round(imp)), TIERS, audience, args.widen_at, args.stop_below)
            if d.action == rollout.STOP:
                break
            if d.action == rollout.WIDEN:
                audience = d.next_audience
        return int(round(imp))

    policies = {
        "today (corpus-mean prior)": rollout_today,
        "content prior only": rollout_prior_only,
        "expansion rule, corpus-mean prior": lambda i: rollout_rule(i, content=False),
        "content prior + expansion rule": rollout_rule,
    }
    rate = up["rate"]
    bottom = rate < np.median(rate)
    top = rate >= np.quantile(rate, 0.9)
    table, spent = {}, {}
    for name, run in policies.items():
        imp = np.array([run(i) for i in range(args.uploads)], float)
        spent[name] = imp
        reached = imp >= sum(steps)
        table[name] = {
            "impressions_bottom_half": int(imp[bottom].sum()),
            "impressions_total": int(imp.sum()),
            "top_decile_recall": round(float(reached[top].mean()), 3),
            "impressions_per_top_decile_video_reaching_last_tier": int(imp.sum() / max(1, reached[top].sum())),
            "bottom_half_reaching_last_tier": int(reached[bottom].sum()),
        }
    base = table["today (corpus-mean prior)"]["impressions_bottom_half"]
    for row in table.values():
        row["bottom_half_vs_today"] = round(row["impressions_bottom_half"] / base - 1, 3)

    print(f"history {args.history}, uploads {args.uploads}, topics {args.topics}, pool threshold {threshold:.4f}")
    print(
        f"prior: 80% interval covers {covered:.1%} of uploads' true rates (calibrated on {calibration.samples} "
        f"held-out videos, q = {calibration.q_low:.2f} .. {calibration.q_high:.2f}); Spearman vs true rate "
        f"{rank_corr:.3f} (uploads), {calibration.rank_correlation:.3f} (held-out history); learned weights "
        + ", ".join(f"{m} {w:.3f}" for m, w in weights.items())
        + "\n"
    )
    print(
        "| policy | impressions on bottom-half uploads | vs today | top-decile recall at the last tier | "
        "impressions per top-decile video reaching it | bottom-half uploads reaching it |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in table.items():
        print(
            f"| {name} | {row['impressions_bottom_half']:,} | {row['bottom_half_vs_today']:+.1%} | "
            f"{row['top_decile_recall']:.3f} | {row['impressions_per_top_decile_video_reaching_last_tier']:,} | "
            f"{row['bottom_half_reaching_last_tier']} |"
        )
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "pool_threshold": threshold,
        "prior_coverage_80": round(float(covered), 3),
        "prior_rank_correlation_uploads": round(rank_corr, 3),
        "prior_rank_correlation_held_out": round(calibration.rank_correlation, 3),
        "calibration": {"q_low": calibration.q_low, "q_high": calibration.q_high, "samples": calibration.samples},
        "learned_weights": weights,
        "policies": table,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    if args.plot:
        plot(args.plot, spent, rate)


def plot(path: Path, spent: dict[str, np.ndarray], rate: np.ndarray) -> None:
    """Left: cumulative impressions over uploads ordered by true quality (log scale, so the bottom half's
    few hundred per upload show beside the top's hundreds of thousands). Right: mean impressions per
    upload in each decile of true quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(rate)
    x = np.arange(1, len(rate) + 1) / len(rate) * 100
    decile = np.minimum((np.argsort(np.argsort(rate)) * 10) // len(rate), 9)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(spent)
    for j, (name, imp) in enumerate(spent.items()):
        left.plot(x, np.cumsum(imp[order]), label=name)
        means = [imp[decile == d].mean() for d in range(10)]
        right.bar(np.arange(10) + (j - (len(spent) - 1) / 2) * width, means, width, label=name)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both", axis="y")
    left.axvline(50, color="grey", lw=0.8, ls=":")
    left.axvline(90, color="grey", lw=0.8, ls=":")
    left.set_xlabel("uploads ordered by true quality (percentile)")
    left.set_ylabel("cumulative impressions")
    left.set_title("Where each rollout policy spends impressions")
    left.legend()
    right.set_xticks(range(10), [f"{10 * d}-{10 * d + 10}" for d in range(10)], rotation=45)
    right.set_xlabel("true-quality percentile of the upload")
    right.set_ylabel("mean impressions per upload")
    right.set_title("Impressions per upload by true quality")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
