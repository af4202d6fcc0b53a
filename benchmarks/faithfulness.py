"""Faithfulness, sanity and cost of the explanations of a model, one table per corpus,
at region level and at cell level; ``--ship`` writes the package's faithfulness.json.

    nice -n 10 python benchmarks/faithfulness.py            # the table (6 corpora x 24 clips)
    nice -n 10 python benchmarks/faithfulness.py --ship     # re-measure and ship faithfulness.json (<= 10 min, 2 cores)
    nice -n 10 python benchmarks/faithfulness.py --ship --model whisper   # the Whisper model's, into its folder
    python benchmarks/faithfulness.py --corpora ravdess,nemo --per-class 3 --methods r.occlusion,gxi --model runs/x

Clips: ``--per-class`` clips of each of the model's classes (seeded, the same every
run), read from ``../shared/data/<corpus>/metadata.csv`` directly (turev's *calm* is
neutral); ``seen`` marks corpora the model was trained on (from its model.json), so
those clips may be training clips. Each clip is explained for its predicted class
over its **voting patches** (speech-gated, as ``predict`` decides).

Methods (comma-separated specs):

* cell methods ``name[@layer][:k=v;...]`` of ``emolens.explain.methods`` (``gxi``,
  ``gradcam@yamnet.7``, ``ig:n_steps=8``, ...), stitched over the voting patches;
* region methods ``r.NAME[@fixed|@syllable][:k=v;...]`` of
  ``emolens.explain.region_attribution`` (``r.occlusion``, ``r.smoothgrad:nt_samples=8;stdev=1``,
  ``r.kernelshap:n_samples=96``, ``r.gxi``) on regions of 0.2-s blocks (``@fixed``) or
  syllable-like units (``@syllable``) x 6 mel-band groups (``block=0.1;bands=4`` sets
  the block length in seconds and the number of band groups);
* ``blind:kind=abs|loud|quiet``: model-blind controls (what the metric gives a map
  that never looked at the model).

Per method: **region level**: deletion / insertion of regions (replaced by the
utterance's mean log-mel, ``--steps`` steps) in the method's order vs ``--orders``
random region orders (cell methods: their region sums); **cell level**: the same over
4 x 4 blocks of cells (region methods: their score per cell); the share of clips
beating random on *both* curves; model- and label-randomisation sanity (Spearman
similarity of the region scores after re-initialising the head / training a head on
shuffled labels, on ``--sanity-clips`` clips; passes below 0.5; over the regions a
voting patch covers: the others are 0 for any model by construction); seconds per 4 s
of audio with ``--threads`` torch threads (the explanation only; the curves run on
ONNX Runtime): CPU seconds of the process, which on a shared machine is what an idle
machine's wall time would be for one thread (the wall time is recorded too).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CORPORA = ("emodb-original", "ravdess", "ased", "nemo", "turev", "casia")
LABEL_MAP = {"calm": "neutral"}  # turev
TRAINING_NAMES = {"emodb": "emodb-original"}  # corpus names in model.json -> shared/data folders
DEFAULT_SPECS = ("r.occlusion,r.occlusion@syllable,r.smoothgrad,r.gxi,r.kernelshap,gxi,ig:n_steps=8,gradcam@yamnet.7")
SHIP_SPECS = "r.occlusion,r.occlusion:block=0.1,r.occlusion@syllable,r.smoothgrad,gxi,gradcam@yamnet.7"
SHIP_ARGS = {"per_class": 3, "steps": 6, "orders": 2, "sanity_clips": 4, "threads": 1}


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
    """Model-blind control maps ``(N, 96, 64)``: ``abs`` = |x - patch mean|, ``loud`` = x - mean, ``quiet`` = mean - x."""
    from emolens.explain.attributions import Attribution

    d = (x - x.mean(dim=(1, 2, 3), keepdim=True))[:, 0].numpy()
    m = {"abs": np.abs(d), "loud": d, "quiet": -d}[kind]
    return Attribution(f"blind {kind}", m.astype(np.float32), 0, 0)


def pick_clips(root: Path, corpus: str, classes: list[str], per_class: int, seed: int = 0) -> list[tuple[str, str]]:
    """``[(path, label)]``: ``per_class`` clips of each class, seeded, from metadata.csv."""
    rows = list(csv.DictReader(open(root / corpus / "metadata.csv", newline="", encoding="utf-8")))
    rng = np.random.default_rng(seed)
    out = []
    for lab in classes:
        idx = [i for i, r in enumerate(rows) if LABEL_MAP.get(r["emotion"], r["emotion"]) == lab]
        for i in sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False)):
            out.append((str(root / corpus / rows[i]["path"]), lab))
    return out


from emolens.explain.regions import RegionConfig  # noqa: E402


class Explainer:
    """Computes one spec's region scores and cell map for a clip and a model."""

    def __init__(self, spec: str, grids: dict):
        self.spec = spec
        self.name, self.opts = parse_spec(spec)
        self.region = self.name.startswith("r.")
        unit = self.opts.pop("layer", "fixed") if self.region else "fixed"
        block, bands = self.opts.pop("block", None), self.opts.pop("bands", None)
        # the grid this spec is scored on: "fixed", "syllable", or e.g. "fixed:block=0.1;bands=4"
        self.unit = unit + (f":block={block};bands={bands}" if block or bands else "")
        if self.unit not in grids:
            base = grids[unit]
            grids[self.unit] = RegionConfig(time_unit=unit, block_seconds=float(block or base.block_seconds),
                                            n_bands=int(bands or base.n_bands))
        self.grid = grids[self.unit]

    def __call__(self, model, a, t, regions, probs_fn=None):
        from emolens.explain.methods import run_method
        from emolens.explain.region_attribution import region_attribution
        from emolens.explain.stitch import utterance_map

        reg = regions[self.unit]
        if self.region:
            ra = region_attribution(model, a.log_mel, reg, t, voting=a.voting, method=self.name[2:], probs_fn=probs_fn,
                                    **self.opts)
            return ra.scores, ra.cell_map()
        x = torch.from_numpy(a.patches).unsqueeze(1)
        att = blind_map(x, self.opts["kind"]) if self.name == "blind" else run_method(self.name, model, x, t, **self.opts)
        m = utterance_map(att.maps, a.log_mel.shape[0], weights=np.asarray(a.voting, float))
        return reg.sum_map(m), m


def label_random_model(rec, analyses, labels, cfg):
    from emolens.explain.sanity import label_randomized_head
    from emolens.training.data import backbone_features

    patches = np.concatenate([a.patches for a in analyses])
    utt = np.concatenate([np.full(len(a.patches), i) for i, a in enumerate(analyses)])
    y = np.asarray([rec.classes.index(lab) for lab in labels])
    feats = backbone_features(rec.model, patches, None, progress=False)
    return label_randomized_head(rec.model, feats, utt, y, len(rec.classes), cfg)


def run_corpus(rec, corpus: str, specs: list[str], args, seen: bool) -> dict:
    from emolens.audio.io import load_audio
    from emolens.explain.faithfulness import beats_random, faithfulness, region_faithfulness
    from emolens.explain.region_attribution import decision_predictor
    from emolens.explain.regions import RegionConfig, make_regions
    from emolens.explain.sanity import SanityConfig, map_similarity, randomized_head
    from emolens.inference import EmotionRecognizer

    root = Path(args.data)
    grids = {"fixed": RegionConfig(time_unit="fixed"), "syllable": RegionConfig(time_unit="syllable")}
    exps = [Explainer(s, grids) for s in specs]
    clips = pick_clips(root, corpus, rec.classes, args.per_class, args.seed)
    t0 = time.perf_counter()
    analyses = [rec.analyze_clip(load_audio(p)) for p, _ in clips]
    scfg = SanityConfig()
    randomized = {}
    if args.sanity_clips:
        randomized["model"] = randomized_head(rec.model, scfg.seed)
        extra = pick_clips(root, corpus, rec.classes, max(args.per_class, 10), args.seed + 1)
        more = [rec.analyze_clip(load_audio(p)) for p, _ in extra]
        randomized["labels"] = label_random_model(rec, analyses + more, [c[1] for c in clips + extra], scfg)
    setup_s = time.perf_counter() - t0
    per_cls = max(1, len(clips) // len(rec.classes))
    sanity_idx = set([c * per_cls + k for k in range(per_cls) for c in range(len(rec.classes))][: args.sanity_clips])
    rows = defaultdict(lambda: defaultdict(list))
    model = rec.model.eval()
    fast = EmotionRecognizer.from_dir(args.model_dir, backend="auto", threads=args.threads)  # ONNX Runtime for the curves
    outputs = lambda p: fast.patch_outputs(p)[0]  # noqa: E731 - the backend's per-patch outputs, decided by the model's head
    for ci, a in enumerate(analyses):
        # every decision below is taken in this clip's context (a pooled head: its statistics or prosody)
        with ExitStack() as ctx:
            if a.context:
                for m in (model, *randomized.values()):
                    ctx.enter_context(m.head.use_context(*a.context))
            t = int(np.argmax(a.probs))
            regions = {u: make_regions(a.log_mel, g) for u, g in grids.items() if any(e.unit == u for e in exps)}
            predict = decision_predictor(model, a.log_mel, a.voting, pcfg=rec.patch_config, probs_fn=outputs)
            # sanity similarity only over what the decision can see: regions no voting patch covers
            # are 0 for every model by construction and would make any two explanations look alike
            seen_f = np.zeros(a.log_mel.shape[0], bool)
            for p in np.flatnonzero(a.voting):
                seen_f[p * rec.patch_config.hop_frames:p * rec.patch_config.hop_frames + rec.patch_config.patch_frames] = True
            covered = {u: np.bincount(R.ids[seen_f].ravel(), minlength=R.n) > 0 for u, R in regions.items()}
            scores, maps = {}, {}
            for e in exps:
                torch.set_num_threads(args.threads)
                s0, c0 = time.perf_counter(), time.process_time()
                scores[e.spec], maps[e.spec] = e(model, a, t, regions, outputs)
                rows[e.spec]["wall_seconds"].append((time.perf_counter() - s0) / a.clip.duration * 4.0)
                rows[e.spec]["seconds"].append((time.process_time() - c0) / a.clip.duration * 4.0)
                if ci in sanity_idx:
                    for test, rm in randomized.items():
                        rs, _ = e(rm, a, t, regions)
                        c = covered[e.unit]
                        rows[e.spec][f"sanity_{test}"].append(map_similarity(scores[e.spec][c], rs[c]))
            torch.set_num_threads(args.threads)
            cell = faithfulness(predict, a.log_mel, maps, t, n_orders=args.orders, steps=args.steps)
            reg = {}
            for u, R in regions.items():
                mine = {e.spec: scores[e.spec] for e in exps if e.unit == u}
                res = region_faithfulness(predict, a.log_mel, R.ids, mine, t, n_orders=args.orders, steps=args.steps)
                reg.update({k: v for k, v in res.items() if k != "random"})
                reg[f"random@{u}"] = res["random"]
            for level, fa in (("cell", cell), ("region", reg)):
                for k, v in fa.items():
                    rows[k][f"{level}_deletion"].append(v["deletion_auc"])
                    rows[k][f"{level}_insertion"].append(v["insertion_auc"])
                    if not k.startswith("random"):
                        rows[k][f"{level}_beats"].append(beats_random(v))
            rows["_"]["n_regions"].append(regions["fixed"].n if "fixed" in regions else 0)
            print(f"  {corpus}: clip {ci + 1}/{len(clips)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    table = {}
    for k in (*specs, "random", *[f"random@{u}" for u in grids]):
        r = rows[k]
        if not r:
            continue
        e = {key: float(np.mean(r[key])) for key in ("cell_deletion", "cell_insertion", "region_deletion", "region_insertion") if r[key]}
        if not k.startswith("random"):
            e["region_beats_random"] = float(np.mean(r["region_beats"]))
            e["cell_beats_random"] = float(np.mean(r["cell_beats"]))
            e["seconds_per_4s_clip"] = float(np.mean(r["seconds"]))  # CPU seconds of this process (all its threads)
            e["wall_seconds_per_4s_clip"] = float(np.mean(r["wall_seconds"]))
            for test in randomized:
                e[f"sanity_{test}_similarity"] = float(np.mean(r[f"sanity_{test}"])) if r[f"sanity_{test}"] else None
            e["sanity_pass"] = (all(e[f"sanity_{t}_similarity"] is not None and e[f"sanity_{t}_similarity"] < scfg.threshold
                                    for t in randomized) if randomized else None)
        table[k] = e
    res = {"clips": len(clips), "seen": seen, "sanity_clips": len(sanity_idx), "setup_seconds": round(setup_s, 1),
           "regions_per_clip": float(np.mean(rows["_"]["n_regions"])), "table": table}
    print(format_table(corpus, res, args))
    return res


def format_table(corpus: str, res: dict, args) -> str:
    lines = [f"\n== {corpus} ({'seen in training' if res['seen'] else 'unseen'}): {res['clips']} clips, "
             f"steps {args.steps}, random orders {args.orders}, sanity on {res['sanity_clips']} clips, "
             f"{args.threads} threads, {res['regions_per_clip']:.0f} fixed regions per clip",
             f"{'method':<34}{'region beats':>13}{'del/ins':>14}{'cell beats':>11}{'del/ins':>14}"
             f"{'cpu s/4s':>9}{'rho model':>10}{'rho labels':>11}{'sanity':>8}"]
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    for k, e in res["table"].items():
        if k.startswith("random"):
            lines.append(f"{k:<34}{'':>13}{f(e.get('region_deletion'), '.3f'):>7}{f(e.get('region_insertion'), '.3f'):>7}"
                         f"{'':>11}{f(e.get('cell_deletion'), '.3f'):>7}{f(e.get('cell_insertion'), '.3f'):>7}")
            continue
        san = "-" if e["sanity_pass"] is None else ("pass" if e["sanity_pass"] else "FAIL")
        lines.append(f"{k:<34}{e['region_beats_random']:>13.0%}{e['region_deletion']:>7.3f}{e['region_insertion']:>7.3f}"
                     f"{e['cell_beats_random']:>11.0%}{e['cell_deletion']:>7.3f}{e['cell_insertion']:>7.3f}"
                     f"{e['seconds_per_4s_clip']:>9.2f}{f(e.get('sanity_model_similarity'), '.2f'):>10}"
                     f"{f(e.get('sanity_labels_similarity'), '.2f'):>11}{san:>8}")
    return "\n".join(lines)


def summary(res: dict) -> str:
    """Method x corpus: region-level % beating random (cell level), sanity, s/4s."""
    specs = [k for k in next(iter(res.values()))["table"] if not k.startswith("random")]
    head = f"{'method':<34}" + "".join(f"{c[:14]:>16}" for c in res) + f"{'worst':>8}{'sanity':>8}{'s/4s':>7}"
    lines = ["\nregion-level % of clips beating random on both curves (cell level in brackets)", head]
    for k in specs:
        cells, worst, ok, sec = "", 1.0, True, 0.0
        for c, r in res.items():
            e = r["table"].get(k)
            if e is None:
                cells += f"{'-':>16}"
                continue
            cells += f"{e['region_beats_random']:>9.0%} ({e['cell_beats_random']:.0%})"
            worst = min(worst, e["region_beats_random"])
            ok = ok and e["sanity_pass"] is not False
            sec = max(sec, e["seconds_per_4s_clip"])
        lines.append(f"{k:<34}{cells}{worst:>8.0%}{'pass' if ok else 'FAIL':>8}{sec:>7.2f}")
    return "\n".join(lines)


#: TFLite YAMNet (ai-edge-litert, 2 threads) x real time on 120 EmoDB files on the machine the
#: ``max_seconds`` budget was set on (``benchmarks/inference_speed.py --files 120 --threads 2``, stop 10)
REFERENCE_TFLITE_X = 517.0


def machine_factor(data: Path, files: int = 120) -> tuple[float, float]:
    """``(tflite_x, factor)``: TFLite YAMNet x real time measured now, as in
    ``benchmarks/inference_speed.py``, and how many times slower this machine is than the
    reference machine (>= 1; the cost budget is scaled by it, so a slow or busy machine
    does not rule every method out)."""
    import soundfile as sf

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from inference_speed import tflite_pipeline

    paths = sorted((data / "emodb-original").rglob("*.flac"))[:files]
    tflite = data.parent / "weights" / "yamnet.tflite"
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        paths = []
    if not paths or not tflite.exists():
        print(f"note: cannot time TFLite YAMNet here (needs {data / 'emodb-original'}, {tflite} and ai-edge-litert): "
              "the cost budget is not scaled", file=sys.stderr)
        return float("nan"), 1.0
    audio_s = sum(sf.info(str(p)).duration for p in paths)
    x = audio_s / min(tflite_pipeline(paths, tflite, 2) for _ in range(2))
    return x, max(1.0, REFERENCE_TFLITE_X / x)


def choose_default(res: dict, max_seconds: float = 1.0) -> str | None:
    """The region method with the highest worst-corpus share of clips beating random on
    both region-level curves, among those passing the sanity checks everywhere and
    costing <= ``max_seconds`` per 4-s clip; ties: the cheaper (worst-corpus seconds
    rounded to 0.1 s), then the mean insertion - deletion gap."""
    specs = [k for k in next(iter(res.values()))["table"]
             if k.startswith("r.") and all(k in r["table"] for r in res.values())]

    def ok(k):
        return all(r["table"][k]["seconds_per_4s_clip"] <= max_seconds and r["table"][k]["sanity_pass"] is not False
                   for r in res.values())

    def key(k):
        rows = [r["table"][k] for r in res.values()]
        return (min(e["region_beats_random"] for e in rows),
                -round(max(e["seconds_per_4s_clip"] for e in rows), 1),
                float(np.mean([e["region_insertion"] - e["region_deletion"] for e in rows])))

    good = [k for k in specs if ok(k)]
    return max(good, key=key) if good else None


def model_sha256(model_dir: Path) -> str:
    from emolens.models.weights import sha256_file

    return sha256_file(Path(model_dir) / "model.safetensors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="run directory (default: the shipped model)")
    ap.add_argument("--data", default=str(Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared")) / "data"),
                    help="folder with <corpus>/metadata.csv (default $EMOLENS_SHARED/data or ../shared/data)")
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--methods", default=None, help=f"method specs (default {DEFAULT_SPECS}; with --ship {SHIP_SPECS})")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--orders", type=int, default=2)
    ap.add_argument("--sanity-clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=1.0,
                    help="cost budget of the default, CPU s per 4-s clip on the reference machine (scaled by this "
                         "machine's TFLite YAMNet speed, measured in the run)")
    ap.add_argument("--out", default=None, help="write the full results as JSON")
    ap.add_argument("--ship", action="store_true",
                    help=f"re-measure with the shipped settings ({SHIP_ARGS}, methods {SHIP_SPECS}) and write "
                         "src/emolens/explain/faithfulness.json for the default model, MODEL/faithfulness.json for another "
                         "(keyed by the model's weight hash)")
    args = ap.parse_args()
    if args.ship:
        for k, v in SHIP_ARGS.items():
            setattr(args, k, v)
    specs = [s for s in (args.methods or (SHIP_SPECS if args.ship else DEFAULT_SPECS)).split(",") if s]
    from emolens.inference import EmotionRecognizer, resolve_model

    torch.set_num_threads(args.threads)
    model_dir = resolve_model(args.model)
    args.model_dir = model_dir
    rec = EmotionRecognizer.from_dir(model_dir)
    card = json.loads((Path(model_dir) / "model.json").read_text()).get("card", {})
    trained = {TRAINING_NAMES.get(d["corpus"], d["corpus"]) for d in card.get("training_data", [])}
    t_all = time.perf_counter()
    res = {}
    for corpus in [c for c in args.corpora.split(",") if c]:
        res[corpus] = run_corpus(rec, corpus, specs, args, corpus in trained)
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
    print(summary(res))
    tflite_x, factor = machine_factor(Path(args.data))
    budget = args.max_seconds * factor
    best = choose_default(res, budget)
    wall = time.perf_counter() - t_all
    print(f"\nthis machine: TFLite YAMNet {tflite_x:.0f}x real time (reference machine {REFERENCE_TFLITE_X:.0f}x): "
          f"budget {args.max_seconds:g} s x {factor:.2f} = {budget:.2f} CPU s per 4-s clip")
    print(f"default by measurement (region methods, sanity passed, within the budget, best worst-corpus "
          f"beats-random, then the cheaper): {best}\nwall time {wall:.0f} s")
    if args.ship:
        from emolens.resources import default_model_dir

        is_default = Path(model_dir).resolve() == default_model_dir().resolve()
        command = "python benchmarks/faithfulness.py --ship" + ("" if is_default else f" --model {args.model}")
        ship = {"model_sha256": model_sha256(model_dir), "default_spec": best,
                "command": command, "methods": specs,
                "settings": {**SHIP_ARGS, "seed": args.seed, "clip_source": "../shared/data/<corpus>/metadata.csv",
                             "max_seconds": args.max_seconds, "tflite_x_real_time": round(tflite_x, 1),
                             "machine_factor": round(factor, 2)},
                "wall_seconds": round(wall), "corpora": res}
        # the default model's measurement ships next to emolens.explain.methods; another model's in its folder
        dest = (REPO / "src" / "emolens" / "explain" / "faithfulness.json" if is_default
                else Path(model_dir) / "faithfulness.json")
        dest.write_text(json.dumps(ship, indent=1) + "\n")
        print(f"-> {dest}")


if __name__ == "__main__":
    main()
