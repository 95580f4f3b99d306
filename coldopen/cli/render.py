"""How the CLI shows results to a person (with --json it prints the replies as they are)."""

from __future__ import annotations

from coldopen.domain import modalities


def describe_prior(p: dict) -> str:
    if not p:
        return "content prior: none"
    how = (f"from {p['neighbours']:.1f} effective neighbours, calibrated on {p['calibration_videos']} held-out videos"
           if p["calibrated"] else "not calibrated yet (too few engaged videos): the corpus's own spread")
    used = {m: w for m, w in (p.get("weights") or {}).items() if w > 0}
    if used:
        how += "; weighing " + ", ".join(f"{m} {w:.2f}" for m, w in used.items())
        if used.get(modalities.CREATOR):
            how += f" ({p.get('creator_videos', 0)} of the creator's engaged videos)"
    return f"content prior: {p['mean']:.4f} ({p['coverage']:.0%} interval {p['low']:.4f} .. {p['high']:.4f}; {how})"


def describe_rollout(r: dict) -> str:
    post = r.get("posterior") or {}
    return "\n".join([
        f"{r['decision']}: {r['reason']}",
        f"  impressions {int(r['impressions']):,} of an audience of {int(r['audience']):,}"
        + (f"; next audience {int(r['next_audience']):,}" if int(r["next_audience"]) else ""),
        f"  P(beats the pool threshold {r['pool_threshold']:.4f}) = {r['p_beats_threshold']:.3f}",
        f"  posterior mean {post.get('mean', 0):.4f} ({post.get('level', 0):.0%} credible {post.get('low', 0):.4f} .. "
        f"{post.get('high', 0):.4f}; the prior weighs {post.get('prior_impressions', 0):,.0f} impressions)",
        "  " + describe_prior(r.get("content_prior") or {}),
    ])


def describe_route(r: dict) -> str:
    w = r["weights"]
    lines = [
        f"pool of {r['pool_size']} performing videos; weights visual {w['visual']:.2f} spoken {w['spoken']:.2f} "
        f"caption {w['caption']:.2f} sound {w['sound']:.2f}"
        + (f" ({r['weights_basis']}: {r['weights_reason']})" if r.get("weights_basis") else ""),
        describe_prior(r.get("content_prior") or {}),
        f"routed neighbours' mean score: {r['prior']:.4f} ± {r['prior_uncertainty']:.4f}",
    ]
    for i, n in enumerate(r["neighbours"], 1):
        c = n["contributions"]
        why = ", ".join(f"{m} {c[m]:+.3f}" for m in modalities.ALL if abs(c[m]) >= 0.0005)
        if n.get("shared_sound_id"):
            why += f" (shares {n['shared_sound_id']})"
        lines.append(
            f"  {i}. {n['video_id']:<24} score {n['score']:.3f} (performance {n['performance']:.4f}, "
            f"by {n['creator_id'] or '-'}{', ' + n['sound_id'] if n['sound_id'] else ''}): {why}"
        )
    if not r["neighbours"]:
        lines.append("  no performing neighbours yet (record engagement so videos enter the pool)")
    return "\n".join(lines)


def skipped(e: dict) -> str:
    """What the frame skipping dropped (engine/repeats.py), to follow "N frames"; empty when it dropped none."""
    n = e.get("frames_skipped", 0)
    return f" embedded ({n} near-repeats of {n + e['frames_sampled']} sampled skipped)" if n else ""


def describe_ingest(r: dict) -> str:
    e = r["extraction"]
    m = e["media"]
    t = e["transcript"]
    transcript = f'"{t["text"]}" ({t["language"]})' if t["text"] else "(no speech)" if m["has_audio"] else "(no audio track)"
    lines = [
        f"{r['video_id']}: {'replaced, ' if r.get('replaced') else ''}{m['duration_s']:.1f} s {m['width']}x{m['height']}, "
        f"{e['frames_sampled']} frames{skipped(e)} -> {e['embedding_dim']}-d {e['embedding_model']}",
        f"  transcript: {transcript}",
        "  sound: " + describe_uses(e),
    ]
    if r.get("sound_matches"):
        lines.append("  shares sound with: " + "; ".join(
            f"{x['video_id']} ({x['sound_id']}: here {x['query_start_s']:.1f} s = its {x['reference_start_s']:.1f} s, "
            f"for {x['duration_s']:.1f} s)" for x in r["sound_matches"]))
    lines.append("  timings ms: " + ", ".join(f"{s['stage']} {s['ms']:.0f}" for s in e["timings"]))
    if e.get("queue_wait"):
        lines.append("  queued ms: " + ", ".join(f"{s['stage']} {s['ms']:.0f}" for s in e["queue_wait"])
                     + "; mean batch: " + ", ".join(f"{b['stage']} {b['mean']:g}" for b in e.get("batches", [])))
    if r.get("vectors_pending"):
        lines.append("  stored, not searchable yet: the vector store was unavailable; it is shipped when the store is "
                     "back (do not re-send)")
    return "\n".join(lines)


def describe_uses(e: dict) -> str:
    """The sounds a video uses: its primary one (new or reused) and any other it also matched."""
    if not e.get("sounds"):
        return f"{e['sound_id']} ({e['landmarks']} landmarks)" if e.get("sound_id") else "(none)"
    parts = []
    for u in e["sounds"]:
        origin = "new: this video started it" if u["started"] else "reused"
        where = f"from {u['start_s']:.1f} s for {u['duration_s']:.1f} s"
        if abs(u["speed"] - 1.0) > 1e-6:
            where += f", at {u['speed']:.2f}x its speed"
        if abs(u.get("pitch_semitones", 0.0)) >= 0.05:
            where += f", {u['pitch_semitones']:+.1f} semitones"
        parts.append(f"{u['sound_id']} ({'' if u['primary'] else 'also: '}{origin}; {where})")
    return "; ".join(parts) + f"; {e['landmarks']} landmarks"


def describe_sound_matches(r: dict) -> str:
    if not r["matches"]:
        return "  no video uses this sound"
    return "\n".join(describe_sound_match(m) for m in r["matches"])


def describe_sound_match(m: dict) -> str:
    return (
        f"  {m['video_id']:<24} {m['sound_id']:<10} confidence {m['confidence']:.2f} ({m['matched_frames']} frames): "
        f"query {m['query_start_s']:.1f} s = its {m['reference_start_s']:.1f} s, for {m['duration_s']:.1f} s"
    )


def describe_sound(s: dict) -> str:
    days = s["window_s"] / 86400
    window = f"{days:g} d" if days >= 1 else f"{s['window_s'] / 3600:g} h"
    return (
        f"{s['sound_id']:<10} {s['video_count']:>6} videos, {s['recent_video_count']:>6} in the last {window}; "
        f"first: {s['first_video_id']} at {s['created_at']}"
    )


def describe_search(r: dict) -> str:
    if not r["neighbours"]:
        return f"  no neighbours (index holds {r['index_size']} videos)"
    return "\n".join(
        f"  {i + 1}. {n['video_id']:<24} score {n['score']:.3f}  by {n['creator_id'] or '-'}  {n['caption']!r}"
        for i, n in enumerate(r["neighbours"])
    )


def describe_video(r: dict) -> str:
    md = r["metadata"]
    lines = [
        f"{md['video_id']} by {md['creator_id'] or '-'}: {md['caption']!r} {' '.join('#' + h for h in md['hashtags'])}",
        f"  ingested at {r['ingested_at']}",
        describe_ingest({"video_id": md["video_id"], "replaced": False, "extraction": r["extraction"]}).split("\n", 1)[1],
    ]
    if r.get("performance"):
        p = r["performance"]
        lines.append(
            f"  performance: score {p['score']:.4f} ({'in' if p['in_pool'] else 'not in'} the performs-well pool, "
            f"threshold {p['pool_threshold']:.4f}); {p['impressions']} impressions, {p['plays']} plays, "
            f"completion {p['completion_rate']:.0%}, {p['likes']} likes, {p['comments']} comments, "
            f"{p['shares']} shares, {p['follows']} follows"
        )
    for s in r["extraction"]["transcript"]["segments"]:
        lines.append(f"  [{s['start_s']:6.2f}-{s['end_s']:6.2f}] {s['text']}  (avg_logprob {s['avg_logprob']:.2f})")
    if r.get("frames"):
        lines.append(f"  {len(r['frames'])} frame embeddings at t = {', '.join(str(f['t_s']) for f in r['frames'])} s")
    return "\n".join(lines)
