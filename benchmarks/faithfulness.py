"""Faithfulness, sanity and cost of every attribution method, one table per corpus.

    python benchmarks/faithfulness.py \
        --run emodb-orig /work/cache/runs/yamnet-emodb /work/cache/emodb-orig \
        --run ravdess /work/cache/runs/yamnet-ravdess /work/cache/ravdess \
        [--per-class 10] [--methods gradcam@yamnet.7,ig,...] [--steps 10] [--orders 3]
        [--sanity-clips 8] [--threads 1] [--speed-clips 3] [--out faith.json]

Per corpus: ``--per-class`` clips of each emotion (seeded), each explained for its
predicted class. For each method: mean deletion AUC and insertion AUC of the
utterance probability (blocks of 4 frames x 4 bands replaced by the utterance's mean
log-mel, ``--steps`` steps), the random-order AUCs on the same clip (``--orders``
orders), the % of clips where the method beats random on *both*, seconds per 4 s of
audio (map only, ``--threads`` torch threads; plus a 2-thread re-timing on
``--speed-clips`` clips), and the sanity checks (Adebayo et al. 2018) on
``--sanity-clips`` clips: Spearman similarity of the maps after re-initialising the
trained head ("model") and after training a head on shuffled labels ("labels");
a test passes below 0.5.

Method specs (comma-separated): ``name[@layer][:key=value;...]`` with a name of
``emolens.explain.methods.METHODS`` or ``blind:kind=abs|loud|quiet`` (model-blind
controls: what the metric gives a map that never looked at the model) (e.g. ``gradcam@yamnet.7:score=log_softmax``,
``occlusion:window=32x16``, ``lime:n_samples=50``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np
import torch

DEFAULT_SPECS = (
    "gradcam@yamnet.7,gradcam@yamnet.1,gradcam@yamnet.13,hirescam@yamnet.7,gradcampp@yamnet.7,"
    "ig:n_steps=8,gxi,occlusion:window=16x16,lime:n_samples=50,kernelshap:n_samples=50"
)


def parse_spec(spec: str) -> tuple[str, dict]:
    """``name[@layer][:k=v;...]`` -> (name, options); ``AxB`` values become tuples."""
    head, _, opts = spec.partition(":")
    name, _, layer = head.partition("@")
    out: dict = {"layer": layer} if layer else {}
    for kv in filter(None, opts.split(";")):
        k, _, v = kv.partition("=")
        if "x" in v and all(p.isdigit() for p in v.split("x")):
            out[k] = tuple(int(p) for p in v.split("x"))
        else:
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return name, out


def blind_map(x: torch.Tensor, kind: str):
    """Model-blind control maps ``(N, 96, 64)`` from the patch alone: ``abs`` =
    |x - patch mean|, ``loud`` = x - mean, ``quiet`` = mean - x. A faithfulness score
    such a map reaches is what the metric gives for free."""
    from emolens.explain.attributions import Attribution

    d = (x - x.mean(dim=(1, 2, 3), keepdim=True))[:, 0].numpy()
    m = {"abs": np.abs(d), "loud": d, "quiet": -d}[kind]
    return Attribution(f"blind {kind}", m.astype(np.float32), 0, 0)


def run_corpus(name: str, model_dir: str, work_dir: str, specs: list[str], args) -> dict:
    from emolens.audio.io import load_audio
    from emolens.explain.faithfulness import faithfulness, utterance_predictor
    from emolens.explain.methods import run_method
    from emolens.explain.sanity import SanityConfig, label_randomized_head, map_similarity, randomized_head
    from emolens.explain.stitch import utterance_map
    from emolens.inference import EmotionRecognizer
    from emolens.training.data import backbone_features
    from emolens.workdir import WorkDir

    rec = EmotionRecognizer.from_dir(model_dir)
    work = WorkDir.open(work_dir)
    model = rec.model.eval()
    rng = np.random.default_rng(0)
    chosen = []
    for lab in rec.classes:
        idx = [i for i, u in enumerate(work.manifest) if u.label == lab]
        chosen += list(rng.choice(idx, size=min(args.per_class, len(idx)), replace=False))
    # sanity clips: the first of each class, round robin
    per_cls = len(chosen) // len(rec.classes)
    sanity_idx = [c * per_cls + k for k in range(per_cls) for c in range(len(rec.classes))][: args.sanity_clips]

    t0 = time.perf_counter()
    scfg = SanityConfig()
    randomized = {"model": randomized_head(model, scfg.seed)}
    if args.sanity_clips:
        ps = work.patchset(progress=False)
        feats = backbone_features(model, ps.patches, work.root / "embeddings", progress=False)
        randomized["labels"] = label_randomized_head(model, feats, ps.utt, ps.y_utt, len(rec.classes), scfg)
        del ps, feats
    setup_s = time.perf_counter() - t0

    predict = utterance_predictor(model)
    rows = defaultdict(lambda: defaultdict(list))
    parsed = [(s, *parse_spec(s)) for s in specs]
    for ci, i in enumerate(chosen):
        u = work.manifest[int(i)]
        a = rec.analyze_clip(load_audio(u.path))
        t = int(np.argmax(a.probs))
        x = torch.from_numpy(a.patches).unsqueeze(1)
        n = a.log_mel.shape[0]
        maps = {}
        for spec, mname, opts in parsed:
            s0 = time.perf_counter()
            att = blind_map(x, opts["kind"]) if mname == "blind" else run_method(mname, model, x, t, **opts)
            m = utterance_map(att.maps, n)
            rows[spec]["seconds"].append((time.perf_counter() - s0) / a.clip.duration * 4.0)
            maps[spec] = m
            if ci in sanity_idx:
                for test, rm in randomized.items():
                    ratt = blind_map(x, opts["kind"]) if mname == "blind" else run_method(mname, rm, x, t, **opts)
                    rmap = utterance_map(ratt.maps, n)
                    rows[spec][f"sanity_{test}"].append(map_similarity(m, rmap))
            if args.speed_clips and ci < args.speed_clips:
                torch.set_num_threads(2)
                s0 = time.perf_counter()
                run_method(mname, model, x, t, **opts)
                rows[spec]["seconds_2t"].append((time.perf_counter() - s0) / a.clip.duration * 4.0)
                torch.set_num_threads(args.threads)
        fa = faithfulness(predict, a.log_mel, maps, t, n_orders=args.orders, steps=args.steps)
        for k, v in fa.items():
            rows[k]["deletion"].append(v["deletion_auc"])
            rows[k]["insertion"].append(v["insertion_auc"])
            if k != "random":
                rows[k]["beats"].append(bool(v["deletion_gain"] > 0 and v["insertion_gain"] > 0))
        print(f"  {name}: clip {ci + 1}/{len(chosen)} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    table = {}
    for k in (*specs, "random"):
        r = rows[k]
        e = {"deletion_auc": float(np.mean(r["deletion"])), "insertion_auc": float(np.mean(r["insertion"]))}
        if k != "random":
            e["beats_random_fraction"] = float(np.mean(r["beats"]))
            e["seconds_per_4s_clip"] = float(np.mean(r["seconds"]))
            e["seconds_per_4s_clip_2_threads"] = float(np.mean(r["seconds_2t"])) if r["seconds_2t"] else None
            for test in randomized:
                sims = r[f"sanity_{test}"]
                e[f"sanity_{test}_similarity"] = float(np.mean(sims)) if sims else None
            sims = [e.get(f"sanity_{test}_similarity") for test in randomized]
            e["sanity_pass"] = all(s is not None and s < scfg.threshold for s in sims) if args.sanity_clips else None
        table[k] = e
    print(format_table(name, model_dir, len(chosen), table, args, setup_s))
    return {"clips": len(chosen), "model": model_dir, "work": work_dir, "steps": args.steps,
            "orders": args.orders, "sanity_clips": len(sanity_idx), "table": table}


def format_table(name: str, model_dir: str, n_clips: int, table: dict, args, setup_s: float) -> str:
    head = (f"\n== {name}: {n_clips} clips, model {model_dir}, steps {args.steps}, "
            f"random orders {args.orders}, sanity on {args.sanity_clips} clips (setup {setup_s:.0f} s)\n"
            f"{'method':<40}{'del AUC':>8}{'ins AUC':>8}{'beats rnd':>10}{'s/4s 1t':>9}{'s/4s 2t':>9}"
            f"{'rho model':>10}{'rho labels':>11}{'sanity':>8}")
    lines = [head]
    for k, e in table.items():
        if k == "random":
            lines.append(f"{'random order':<40}{e['deletion_auc']:>8.3f}{e['insertion_auc']:>8.3f}")
            continue
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        san = "-" if e["sanity_pass"] is None else ("pass" if e["sanity_pass"] else "FAIL")
        lines.append(f"{k:<40}{e['deletion_auc']:>8.3f}{e['insertion_auc']:>8.3f}{e['beats_random_fraction']:>10.0%}"
                     f"{f(e['seconds_per_4s_clip'], '.3f'):>9}{f(e['seconds_per_4s_clip_2_threads'], '.3f'):>9}"
                     f"{f(e.get('sanity_model_similarity'), '.2f'):>10}{f(e.get('sanity_labels_similarity'), '.2f'):>11}{san:>8}")
    return "\n".join(lines)


def choose_default(res: dict, max_seconds: float = 1.0) -> str | None:
    """The spec with the highest worst-corpus % of clips beating random on both AUCs
    among those costing <= ``max_seconds`` per 4-s clip on every corpus (ties: higher
    mean insertion - deletion AUC gap). Sanity failures do not exclude a method (a map
    no better than random is worse than one partly driven by the input); they are
    printed, shipped and shown next to the method. Model-blind controls never count."""
    specs = [k for k in next(iter(res.values()))["table"]
             if k != "random" and not k.startswith("blind")
             and all(k in r["table"] for r in res.values())]  # measured everywhere

    def ok(k):
        return all(r["table"][k]["seconds_per_4s_clip"] <= max_seconds for r in res.values())

    def key(k):
        rows = [r["table"][k] for r in res.values()]
        return (min(e["beats_random_fraction"] for e in rows),
                float(np.mean([e["insertion_auc"] - e["deletion_auc"] for e in rows])))

    good = [k for k in specs if ok(k)]
    best = max(good, key=key) if good else None
    if best is not None:
        failed = [c for c, r in res.items() if r["table"][best]["sanity_pass"] is False]
        if failed:
            print(f"note: {best} fails the sanity checks on {', '.join(failed)}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs=3, action="append", metavar=("NAME", "MODEL", "WORK"), required=True,
                    help="corpus name, trained model directory, prepared work directory (repeatable)")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--methods", default=DEFAULT_SPECS)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--orders", type=int, default=2)
    ap.add_argument("--sanity-clips", type=int, default=8)
    ap.add_argument("--speed-clips", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--ship", default=None, help="also write the package's faithfulness.json here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    specs = [s for s in args.methods.split(",") if s]
    res = {}
    for name, model_dir, work_dir in args.run:
        res[name] = run_corpus(name, model_dir, work_dir, specs, args)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(res, f, indent=2)
    best = choose_default(res)
    print(f"\ndefault by measurement (<= 1 s per 4-s clip, best worst-corpus beats-random): {best}")
    if args.ship:
        ship = {"default_spec": best, "threads": args.threads, "steps": args.steps, "orders": args.orders,
                "per_class": args.per_class, "corpora": res}
        with open(args.ship, "w") as f:
            json.dump(ship, f, indent=1)


if __name__ == "__main__":
    main()
