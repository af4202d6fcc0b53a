"""Implementations of the CLI sub-commands (argument parsing is in :mod:`main`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from emolens.cli.inputs import expand_inputs
from emolens.errors import EmolensError

log = logging.getLogger("emolens")


# --------------------------------------------------------------------------- prepare
def cmd_prepare(args) -> int:
    from emolens.corpora.label_map import apply_label_map, parse_label_map, unused_pairs
    from emolens.corpora.labels import resolve_class_set
    from emolens.corpora.multi import (
        build_multi_manifest,
        parse_corpus_specs,
        per_corpus_counts,
    )
    from emolens.corpora.parsers import EVALUATE_ONLY_CORPORA
    from emolens.errors import CorpusError
    from emolens.features.cache import FeatureCache
    from emolens.features.mel import PROFILES
    from emolens.features.patches import PatchConfig
    from emolens.report.gds_report import gds_summary, plot_gds
    from emolens.selection.gds import GaussianDataSelector, GDSConfig
    from emolens.training.data import patchset_from_mels

    progress = not args.quiet
    out: Path = args.out
    specs = parse_corpus_specs(args.corpus, args.root, args.csv)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest, skipped = build_multi_manifest(specs, allow_unknown_speakers=args.allow_unknown_speakers)
    for w in caught:
        log.warning("warning: %s", w.message)
    names = [c.name for c in specs]
    label_map = parse_label_map(args.label_map or [], names)
    manifest, relabelled = apply_label_map(manifest, label_map)
    for pair in unused_pairs(label_map, relabelled, names):
        log.warning("note: --label-map %s relabelled no file", pair)
    eval_only = sorted(set(names) & EVALUATE_ONLY_CORPORA)
    if eval_only:
        log.warning("warning: %s is evaluate-only (unclear provenance): a model trained on this work dir "
                    "cannot be packaged or shipped; use it as a test corpus", ", ".join(eval_only))
    for path, why in skipped[:20]:
        log.warning("skipped %s: %s", path, why)
    if len(skipped) > 20:
        log.warning("... and %d more skipped files (see %s)", len(skipped) - 20, out / "skipped.csv")
    if skipped:
        (out / "skipped.csv").write_text("path,reason\n" + "".join(f"\"{p}\",\"{w}\"\n" for p, w in skipped))
    classes = list(resolve_class_set(args.classes, manifest.labels))
    manifest = manifest.filter_classes(classes)
    if len(manifest) == 0:
        raise CorpusError(f"no files of the classes {classes} under {', '.join(str(c.root) for c in specs)}; check --corpus and --classes")
    fe = PROFILES[args.profile]
    pcfg = PatchConfig(96, args.patch_hop)
    cache = FeatureCache(out / "features", fe)
    res = cache.compute(manifest.paths(), workers=args.workers, progress=progress)
    if res.errors:
        for p, e in list(res.errors.items())[:10]:
            log.warning("unreadable, left out: %s", e)
        good = [i for i, m in enumerate(res.mels) if m is not None]
        manifest = manifest[np.array(good, int)]
        res.mels[:] = [m for m in res.mels if m is not None]
    for p, notes in res.notes.items():
        if any("padded" in n or "silent" in n for n in notes):
            log.info("note: %s: %s", p, "; ".join(notes))
    manifest.to_csv(out / "manifest.csv")
    ps = patchset_from_mels(res.mels, manifest.label_array(classes), pcfg)
    gcfg = GDSConfig.preset(args.gds_preset)
    if args.gds_scope:
        gcfg = dataclasses.replace(gcfg, scope=args.gds_scope)
    if args.gds_threshold is not None:
        gcfg = dataclasses.replace(gcfg, threshold=args.gds_threshold)
    sel = GaussianDataSelector(gcfg).fit(ps.patches, labels=ps.y, utterance_ids=ps.utt)
    result = sel.select(ps.patches, ps.utt)
    label_names = np.array(classes)[ps.y]
    summary = gds_summary(result, label_names, ps.utt, patches=ps.patches)
    plot_gds(result, ps.patches, label_names, out / "gds.png")
    with open(out / "gds_scores.csv", "w") as f:
        f.write("path,label,patch,score,kept\n")
        paths = manifest.paths()
        first = np.r_[0, np.flatnonzero(np.diff(ps.utt)) + 1]
        for i in range(len(ps.utt)):
            u = int(ps.utt[i])
            f.write(f"{paths[u]},{classes[ps.y[i]]},{i - first[u]},{result.scores[i]:.5f},{int(result.keep[i])}\n")
    info = {
        "corpus": "+".join(c.name for c in specs), "root": str(Path(specs[0].root).resolve()),
        "corpora": [{"name": c.name, "root": str(Path(c.root).resolve())} for c in specs],
        "per_corpus": per_corpus_counts(manifest, ps.utt, result.keep), "classes": classes,
        "label_map": label_map, "label_map_applied": relabelled, "evaluate_only_corpora": eval_only,
        "files": len(manifest), "labels": manifest.label_counts(), "speakers": len(manifest.speakers),
        "speaker_ids": list(manifest.speakers), "duration_s": round(float(sum(ps.n_frames)) * fe.frame_seconds, 2),
        "skipped": len(skipped), "unreadable": len(res.errors),
        "patches_before": summary["patches_before"], "patches_after": summary["patches_after"],
        "frontend": fe.to_dict(), "patches": pcfg.to_dict(), "gds": gcfg.to_dict(), "gds_summary": summary,
    }
    (out / "prepare.json").write_text(json.dumps(info, indent=2))
    _print_prepare(info)
    return 0


def _print_prepare(info: dict) -> None:
    s = info["gds_summary"]
    print(f"\n{info['corpus']}: {info['files']} files, {info['speakers']} speakers, {info['duration_s'] / 60:.1f} min, classes {', '.join(info['classes'])}")
    print(f"{'label':<10}{'files':>7}{'patches':>9}{'kept':>7}{'dropped':>9}")
    for lab, n in info["labels"].items():
        pc = s["per_class"].get(lab, {"before": 0, "after": 0})
        drop = 1 - pc["after"] / max(pc["before"], 1)
        print(f"{lab:<10}{n:>7}{pc['before']:>9}{pc['after']:>7}{drop:>8.1%}")
    print(f"{'total':<10}{info['files']:>7}{info['patches_before']:>9}{info['patches_after']:>7}{1 - info['patches_after'] / max(info['patches_before'], 1):>8.1%}")
    per = info.get("per_corpus", {})
    if len(per) > 1:
        print(f"\n{'corpus':<10}{'files':>7}{'speakers':>10}{'patches':>9}{'kept':>7}{'dropped':>9}")
        for c, d in per.items():
            print(f"{c:<10}{d['files']:>7}{d['speakers']:>10}{d['patches_before']:>9}{d['patches_after']:>7}{d['dropped_fraction']:>8.1%}")
    print(f"GDS {json.dumps(info['gds'])}")


# --------------------------------------------------------------------------- train / experiment
def _run_config(args, model: str = "fusion", gds: bool = True):
    from emolens.training.experiment import RunConfig
    from emolens.training.trainer import TrainConfig

    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                     finetune=args.finetune, seed=args.seed)
    from emolens.selection.gds import GDSConfig

    return RunConfig(model=model, gds=gds, folds=str(args.folds), seed=args.seed, train=tc,
                     gds_config=GDSConfig.preset(getattr(args, "gds_preset", "transfer")),
                     speech_gate=getattr(args, "speech_gate", False),
                     allow_speaker_overlap=args.allow_speaker_overlap, normalize=args.normalize,
                     yamnet_weights=args.yamnet_weights, vggish_weights=args.vggish_weights)


def cmd_train(args) -> int:
    from emolens.evaluation.baseline import run_egemaps_cv
    from emolens.training.experiment import cross_validate
    from emolens.workdir import WorkDir

    work = WorkDir.open(args.work)
    if args.model == "egemaps-svm":
        m = run_egemaps_cv(work, str(args.folds), args.out, seed=args.seed, progress=not args.quiet,
                           allow_speaker_overlap=args.allow_speaker_overlap)
    else:
        m = cross_validate(work, _run_config(args, args.model, args.gds), args.out, progress=not args.quiet)
    _print_metrics(m, args.out)
    return 0


def _print_metrics(m: dict, out: Path) -> None:
    print(f"\n{m['model']}{' +GDS' if m.get('gds') else ''}: {m['n_folds']} speaker-independent folds ({m['fold_spec']})")
    print(f"accuracy {m['accuracy']:.3f} ± {m['accuracy_std']:.3f}   UAR {m['uar']:.3f} ± {m['uar_std']:.3f}   "
          f"macro F1 {m['f1_macro']:.3f} ± {m['f1_macro_std']:.3f}   train {m['train_seconds']:.1f} s")
    if len(m.get("per_corpus") or {}) > 1:
        from emolens.evaluation.groups import format_group_table

        print(format_group_table(m["per_corpus"]))
    if m.get("vggish_pretrained") is False:
        print("note: VGGish ran WITHOUT pretrained weights (random initialisation): not transfer learning")
    print(f"written: {out / 'metrics.json'}, {out / 'confusion.png'}")


def cmd_experiment(args) -> int:
    from emolens.training.experiment import run_ablation
    from emolens.workdir import WorkDir

    work = WorkDir.open(args.work)
    table = run_ablation(work, _run_config(args), args.out, progress=not args.quiet, baseline=not args.no_baseline)
    print()
    print((Path(args.out) / "ablation.md").read_text())
    return 0


# --------------------------------------------------------------------------- weights
def cmd_weights(args) -> int:
    from emolens.models.weights import download_weights, resolve_weights

    names = ["yamnet", "vggish"] if args.name == "all" else [args.name]
    for n in names:
        if args.action == "where":
            try:
                print(f"{n}: {resolve_weights(n)}")
            except EmolensError as exc:
                print(f"{n}: {exc}")
        else:
            print(f"{n}: {download_weights(n, progress=not args.quiet)}")
    return 0


# --------------------------------------------------------------------------- explain / profile
def _true_labels(work_dir: Path | None) -> dict[str, str]:
    if work_dir is None:
        return {}
    from emolens.workdir import WorkDir

    return {str(Path(u.path).resolve()): u.label for u in WorkDir.open(work_dir).manifest}


def cmd_explain(args) -> int:
    from emolens.explain.methods import METHODS as REGISTRY
    from emolens.explain.pipeline import METHODS, explain_file
    from emolens.inference import EmotionRecognizer, resolve_model

    methods = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    bad = [m for m in methods if m not in REGISTRY]
    if bad:
        raise EmolensError(f"unknown method(s) {', '.join(bad)}; use {', '.join(REGISTRY)}")
    rec = EmotionRecognizer.from_dir(resolve_model(args.model), **({"backend": "torch"} if args.adapt else {}))
    if args.target is not None and args.target not in rec.classes:
        raise EmolensError(f"--target {args.target!r} is not a class of this model ({', '.join(rec.classes)})")
    from emolens.explain.region_attribution import DEFAULT_REGION_METHOD, REGION_METHODS
    from emolens.explain.regions import DEFAULT_REGIONS

    region_method = args.region_method or DEFAULT_REGION_METHOD
    if region_method not in REGION_METHODS:
        raise EmolensError(f"unknown --region-method {region_method!r}; use {', '.join(REGION_METHODS)}")
    if args.contrast not in (True, False) and args.contrast not in rec.classes:
        raise EmolensError(f"--contrast {args.contrast!r} is not a class of this model ({', '.join(rec.classes)})")
    regions = (None if args.regions == "none" else DEFAULT_REGIONS if args.regions is None
               else dataclasses.replace(DEFAULT_REGIONS, time_unit=args.regions))
    truth = _true_labels(args.work)
    from emolens.cli.adapt import adapt_request

    req = adapt_request(args, rec, expand_inputs(args.inputs), quiet=args.quiet or args.json)
    failures = 0
    for f, source in _explain_sources(rec, req, args):
        if isinstance(source, str):  # --adapt: a file that could not be decoded (one line, the rest go on)
            failures += 1
            print(json.dumps({"file": str(f), "error": source}) if args.json else f"{f}: error: {source}", flush=True)
            continue
        dest = Path(args.out) / Path(f).stem
        info = explain_file(rec, source, dest, methods=methods, target=args.target,
                            true_label=truth.get(str(Path(f).resolve())), layer=args.layer,
                            lime_samples=args.lime_samples, with_faithfulness=not args.no_faithfulness,
                            progress=not args.quiet and not args.json, regions=regions,
                            region_method=region_method, contrast=args.contrast)
        if args.json:
            print(json.dumps({**info, "out": str(dest)}), flush=True)
            continue
        line = f"{f}: {info['label']} ({info['probability']:.2f}) -> {dest}/explanation.png, regions.png, focus.wav"
        if info["notes"]:
            line += f"  ({'; '.join(info['notes'])})"
        if "faithfulness" in info:
            line += "  deletion AUC " + ", ".join(
                f"{k} {v['deletion_auc']:.3f}" for k, v in info["faithfulness"].items())
        print(line)
        if info.get("sentence"):
            print(f"  {info['sentence']}")
        if info.get("streams"):  # how much of the decision the map (the spectrogram's stream) can show
            print(f"  streams: {info['streams']['text']}")
        for pl in info.get("prosody") or []:  # a model with a prosody stream: the functionals that moved it
            print(f"  prosody: {pl['text']}")
    return 1 if failures else 0


def _explain_sources(rec, req, args):
    """``(file, what explain reads)`` per input: the path itself, or with ``--adapt`` the
    voice group's adapted analysis (decided as ``predict --adapt`` decides) or an error line."""
    if not req.adapt:
        yield from ((f, f) for f in req.files)
        return
    from emolens.adaptation.groups import iter_adapted_results

    quiet = args.quiet or args.json
    for r in iter_adapted_results(rec, req.files, req.speakers, neutral=req.neutral or None,
                                  on_group=None if quiet else (lambda m: print(f"adapt: {m}", file=sys.stderr, flush=True))):
        note = ENROLLED_NOTE if req.neutral else ADAPTED_NOTE
        if r.error is None and r.analysis.adapted and note not in r.analysis.clip.notes:
            r.analysis.clip.notes.append(note)  # explanation.json, the figure and the report say so
        yield r.path, (r.error if r.error is not None else r.analysis)


#: the note of an explanation whose decision was adapted to its voice group
ADAPTED_NOTE = "decided with --adapt: adapted to its voice's statistics, as `emolens predict --adapt` decides"
ENROLLED_NOTE = ("decided with --adapt --neutral: referenced to its voice's neutral clip(s), "
                 "as `emolens predict --adapt --neutral` decides")


def cmd_profile(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from emolens.explain.methods import (
        DEFAULT_METHOD,
        layer_names,
        method_label,
        run_method,
    )
    from emolens.explain.methods import METHODS as REGISTRY
    from emolens.explain.profile import (
        frequency_profile,
        leans_higher,
        profile_summary,
        write_profile_csv,
    )
    from emolens.explain.profile_stats import (
        ProfileStatsConfig,
        band_distributions,
        format_profile_stats,
        profile_stats,
    )
    from emolens.explain.stitch import utterance_map
    from emolens.features.mel import mel_band_centers
    from emolens.features.patches import log_mel_patches
    from emolens.inference import EmotionRecognizer, resolve_model
    from emolens.report.explain_figures import plot_profile
    from emolens.workdir import WorkDir

    method = args.method or DEFAULT_METHOD
    if method not in REGISTRY:
        raise EmolensError(f"unknown method {method!r}; use {', '.join(REGISTRY)}")
    rec = EmotionRecognizer.from_dir(resolve_model(args.model))
    work = WorkDir.open(args.work)
    opts = {}
    if method in ("gradcam", "hirescam", "gradcampp"):
        names = layer_names(rec.model)
        layer = args.layer if args.layer in names else next(iter(names))
        if layer != args.layer:
            log.warning("layer %r is not in this model (it has %s): using %r", args.layer, ", ".join(names), layer)
        opts["layer"] = layer
    mels = work.cache.compute(work.manifest.paths(), progress=False).mels
    maps, labels, seen = [], [], {}
    for u, mel in tqdm(list(zip(work.manifest, mels)), desc=f"{method} profile", disable=args.quiet):
        if mel is None or u.label not in rec.classes:
            continue
        if args.limit and seen.get(u.label, 0) >= args.limit:
            continue
        seen[u.label] = seen.get(u.label, 0) + 1
        x = torch.from_numpy(log_mel_patches(mel, rec.patch_config)).unsqueeze(1)
        samples = None
        if getattr(rec, "needs_prosody", False):  # a prosody head decides on the waveform's functionals too
            from emolens.audio import load_audio

            samples = load_audio(u.path, sample_rate=rec.frontend.sample_rate, max_seconds=None).samples
        voting, context = rec.voting_and_context(mel, samples)  # the patches that make the decision, as explain stitches them
        with rec.model.head.use_context(*(context or ())):  # pooled heads: shares of this utterance
            att = run_method(method, rec.model, x, rec.classes.index(u.label), **opts)  # the emotion's own class
        maps.append(utterance_map(att.maps, mel.shape[0], rec.patch_config, weights=voting.astype(float)))
        labels.append(u.label)
    hz = mel_band_centers(rec.frontend)
    prof = frequency_profile(maps, labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_profile_csv(out / "profile.csv", prof, hz)
    what = method_label(method) + (f" ({opts['layer']})" if "layer" in opts else "")
    plot_profile(prof, hz, out / "profile.png", title=f"{what} per mel band (positive evidence), per emotion")
    summ = profile_summary(prof, hz)
    st = profile_stats(band_distributions(maps, labels), hz, ProfileStatsConfig(seed=args.seed))
    (out / "profile.json").write_text(json.dumps({"summary": summ, "angry_happy_above_neutral_sad": leans_higher(summ),
                                                  "method": method, "layer": opts.get("layer"), "recordings": len(maps),
                                                  "patches": "voting (speech, GDS-kept), as explain",
                                                  "stats": st.as_dict()}, indent=2))
    print(format_profile_stats(st, f"{what} frequency profile, {len(maps)} recordings of {args.work}"))
    print(f"-> {out / 'profile.png'}, {out / 'profile.csv'}, {out / 'profile.json'}")
    return 0
