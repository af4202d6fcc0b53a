"""The generalisation yardstick: leave-one-corpus-out over emodb-original, ravdess, ased,
nemo and turev (train on four, test on the fifth), CASIA tested by the head trained on
all five (never trained on), next to eGeMAPS + SVM on the same folds; one ablation row
per lever.

    python benchmarks/generalisation.py [--shared ../shared] [--work-root work/gen] \\
        [--out runs/generalisation] [--rows baseline,balance,...|all] [--seeds 0,1,2] [--folds issue|ship] [--list]

Missing work dirs are prepared first (``emolens prepare``, 4 classes, TurEV-DB's and RAVDESS's calm→neutral,
``--label-map`` to change that);
YAMNet features are computed once per corpus and cached in each work dir; every row's
folds are cached under ``--out/<row>/seed<k>/`` (resumable: a re-run only computes what
is missing). Prints, per row, the mean and worst UAR over the six test corpora, the mean
over the five development corpora, UAR per test corpus (± std over seeds), mean macro F1
and mean expected calibration error; then the eGeMAPS + SVM row and a detail table
(UAR, macro F1, ECE per corpus) for the first row. ``--markdown FILE`` also writes the
tables.

``--folds ship`` measures the folds the shipped model can have: TurEV-DB (CC BY-NC-ND) and
CASIA are only tested, by the head trained on the four shippable corpora, and never
trained on (``scripts/train_default`` measures the same folds); the row that ships is
chosen on these (statistics pooling won the five-corpus table and lost here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from emolens.errors import LabelError
from emolens.evaluation.generalisation import (
    PROSODY_SETS,
    HeadConfig,
    corpus_features,
    egemaps_loco,
    run_loco,
    summarise,
)
from emolens.training.default_model import prepare_corpora
from emolens.training.package import NOT_SHIPPABLE
from emolens.workdir import WorkDir

B = HeadConfig()
#: the cheap base of the lever rows: a linear head (logistic regression on the layer-normalised
#: streams), 6 epochs; a patch-level MLP row costs ~60x more head compute
L = HeadConfig(hidden=0, dropout=0.0, epochs=6, batch_size=512)
LB = replace(L, balance="corpus-class")
#: utterance-level (statistics pooling) linear head: one sample per utterance, many cheap epochs
U = HeadConfig(hidden=0, dropout=0.0, epochs=40, batch_size=128, train_on="utterance")
UB = replace(U, balance="corpus-class")
#: the shipped recipe (utt-mixup) decided on the pooled utterance row: the base of the utterance-decision levers
UP = replace(UB, mixup=0.4, decision="pooled")
#: name -> (config, what it tests). ``baseline`` is today's shipped recipe on these folds.
ROWS: dict[str, tuple[HeadConfig, str]] = {
    "baseline": (B, "today's recipe: layers 5/7/9, MLP 256, class-balanced loss, mean vote of speech patches"),
    "linear": (L, "linear head on layers 5/7/9, class-balanced, 6 epochs"),
    "linear-balance": (LB, "linear + every corpus x class cell weighs the same"),
    "linear-balance-utt": (replace(LB, per_utterance=True), "linear-balance + each utterance weighs the same"),
    "linear-speech": (replace(LB, speech_train=True), "linear-balance trained on speech patches only"),
    "linear-smooth": (replace(LB, label_smoothing=0.1), "linear-balance + label smoothing 0.1"),
    "linear-mixup": (replace(LB, mixup=0.4), "linear-balance + mixup Beta(0.4, 0.4)"),
    "linear-center": (replace(LB, corpus_center=True), "linear-balance + each training corpus shifted to the pooled mean"),
    "linear-wd": (replace(LB, weight_decay=1e-2), "linear-balance + weight decay 1e-2"),
    "linear-l7": (replace(LB, streams=("yamnet_mid",)), "linear-balance on layer 7 alone"),
    "linear-l9-l11": (replace(LB, streams=("yamnet_l9", "yamnet_l11")), "linear-balance on layers 9 and 11"),
    "linear-emb": (replace(LB, streams=("yamnet",)), "linear-balance on the 1024-d embedding alone"),
    "linear-all5": (replace(LB, streams=("yamnet_l5", "yamnet_mid", "yamnet_l9", "yamnet_l11", "yamnet")), "linear-balance on layers 5/7/9/11 + embedding"),
    "utt": (U, "utterance-pooled linear head (statistics pooling), class-balanced"),
    "utt-balance": (UB, "utt + every corpus x class cell weighs the same"),
    "utt-smooth": (replace(UB, label_smoothing=0.1), "utt-balance + label smoothing 0.1"),
    "utt-mixup": (replace(UB, mixup=0.4), "utt-balance + mixup Beta(0.4, 0.4)"),
    "utt-center": (replace(UB, corpus_center=True), "utt-balance + each training corpus shifted to the pooled mean"),
    "utt-wd": (replace(UB, weight_decay=1e-2), "utt-balance + weight decay 1e-2"),
    "utt-wd3": (replace(UB, weight_decay=1e-3), "utt-balance + weight decay 1e-3"),
    "utt-l7": (replace(UB, streams=("yamnet_mid",)), "utt-balance on layer 7 alone"),
    "utt-l9-l11": (replace(UB, streams=("yamnet_l9", "yamnet_l11")), "utt-balance on layers 9 and 11"),
    "utt-emb": (replace(UB, streams=("yamnet",)), "utt-balance on the embedding alone"),
    "utt-all5": (replace(UB, streams=("yamnet_l5", "yamnet_mid", "yamnet_l9", "yamnet_l11", "yamnet")), "utt-balance on layers 5/7/9/11 + embedding"),
    "utt-l9-l11-mixup": (replace(UB, streams=("yamnet_l9", "yamnet_l11"), mixup=0.4), "utt-balance on layers 9 and 11 + mixup"),
    "utt-l9-l11-emb-mixup": (replace(UB, streams=("yamnet_l9", "yamnet_l11", "yamnet"), mixup=0.4), "utt-balance on layers 9, 11 and the embedding + mixup"),
    "utt-mlp": (replace(UB, hidden=64, dropout=0.3), "utt-balance with an MLP 64 (applied per patch at test: a mismatch)"),
    "mlp64-balance": (replace(B, hidden=64, balance="corpus-class", epochs=6, batch_size=512), "MLP 64, corpus x class balanced, 6 epochs"),
    "balance": (replace(B, balance="corpus-class"), "today's recipe + corpus x class balance"),
    # utterance-decision levers (issue 12, stop 8): one pooled row per utterance, decided on it
    "utt-mixup-pooled": (UP, "utt-mixup decided on the pooled utterance row (the levers' reference)"),
    "utt-mixup-std": (replace(UP, pooling="mean+std"), "statistics pooling: mean and standard deviation over the speech patches"),
    "utt-mixup-sq": (replace(UP, pooling="mean+sq"), "mean and mean of squares: per-patch decomposable (a head on [z, z^2] could vote)"),
    "utt-mixup-egemaps": (replace(UP, prosody=2.0), "prosody stream: eGeMAPS functionals fused early (weight 2)"),
    "utt-mixup-prosody": (replace(UP, prosody=2.0, prosody_set="emolens"),
                          "prosody stream: emolens's numpy prosody functionals (no openSMILE) fused early (weight 2)"),
    "utt-mixup-prosody-audible": (replace(UP, prosody=2.0, prosody_set="emolens-audible"),
                                  "utt-mixup-prosody with the unvoiced means over audible frames only (shipped at stops 10-12)"),
    "utt-mixup-std-egemaps": (replace(UP, pooling="mean+std", prosody=2.0), "mean+std pooling and the eGeMAPS stream"),
    "utt-mixup-nap16": (replace(UP, nap=16), "16 speaker directions projected out (nuisance attribute projection)"),
    "utt-mlp128-pooled": (replace(UP, hidden=128), "MLP 128 on the pooled row (reference of the adversarial row)"),
    "utt-mlp128-adv": (replace(UP, hidden=128, adversarial=0.3), "MLP 128 + corpus adversary (gradient reversal, weight 0.3)"),
    "utt-mixup-aug-mix": (replace(UP, augment="mix"), "one augmented copy per training clip: speed 0.9/1/1.1, gain, reverb, noise, Opus"),
    "utt-mixup-aug-speed": (replace(UP, augment="speed"), "one speed-perturbed copy (0.9/1/1.1) per training clip"),
    "utt-mixup-prosody-ft9": (replace(UP, prosody=2.0, prosody_set="emolens", finetune=9),
                              "the shipped row, then YAMNet layer 9 fine-tuned with the probe (LP-FT, 6 epochs, lr 1e-4)"),
    "utt-mixup-prosody-ft8": (replace(UP, prosody=2.0, prosody_set="emolens", finetune=8),
                              "the shipped row, then YAMNet layers 8-9 fine-tuned with the probe (LP-FT, 6 epochs, lr 1e-4)"),
    # stop 17: the Whisper base encoder's layer 4 (mean + sd over frames) fused early
    "utt-mixup-prosody-whisper": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=1.0),
                                  "the shipped row + Whisper base layer 4 mean+sd, each utterance's vector standardised (weight 1)"),
    "utt-mixup-prosody-whisper-z": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=1.0, whisper_norm="z"),
                                    "the shipped row + Whisper base layer 4 mean+sd, z-scored with the training statistics (weight 1)"),
    "utt-mixup-prosody-whisper2": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=2.0),
                                   "utt-mixup-prosody-whisper with the Whisper stream at weight 2"),
    # stop 18: the stream's two halves
    "utt-mixup-prosody-whisper-row2": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=1.0, whisper_norm="row2"),
                                       "utt-mixup-prosody-whisper with the mean and the sd halves standardised each"),
    "utt-mixup-prosody-whisper-x5": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=1.0, ensemble=5),
                                     "utt-mixup-prosody-whisper with 5 seeds' linear heads averaged into one"),
    "utt-mixup-prosody-x5": (replace(UP, prosody=2.0, prosody_set="emolens", ensemble=5),
                             "utt-mixup-prosody (the shipped row) with 5 seeds' linear heads averaged into one"),
    "utt-mixup-prosody-whisper-mean": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=1.0, whisper_norm="mean"),
                                       "utt-mixup-prosody-whisper with the frames' mean alone (no sd)"),
    # stop 21: an MLP on the Whisper stream alone beside the linear head (logits added)
    "utt-mixup-prosody-whisper-mlp": (replace(UP, prosody=2.0, prosody_set="emolens", whisper=1.0, whisper_mlp=256),
                                      "utt-mixup-prosody-whisper + an MLP 256 on the Whisper stream alone, its logits added"),
    "utt-mixup-eq-band": (replace(UP, frontend="eq-band"), "per-utterance channel EQ of the log-mel onto a reference profile"),
    "utt-mixup-eq-gain": (replace(UP, frontend="eq-gain"), "per-utterance loudness normalisation of the log-mel"),
    "test-corpus-norm": (replace(LB, test_norm="corpus"), "REFERENCE, not single clip: linear-balance, test corpus standardised by its own statistics"),
}


#: corpora whose mean band profile makes the equalisation reference (the shippable ones)
EQ_REFERENCE = ("emodb", "ravdess", "ased", "nemo")


def load_lever_inputs(cfgs: list[HeadConfig], data: dict, dirs: dict[str, Path]) -> None:
    """Attach what the requested rows need: eGeMAPS functionals, augmented copies of the
    development corpora, equalised front ends (each cached in its work dir)."""
    from emolens.evaluation.generalisation import variant_features

    by_name = {WorkDir.open(d).manifest[0].corpus: d for d in dirs.values()}
    for pset in sorted({c.prosody_set for c in cfgs if c.prosody > 0 and c.prosody_set in PROSODY_SETS}):
        from emolens.training.default_model import attach_prosody

        for name, cf in data.items():
            attach_prosody(cf, by_name[name], progress=True, prosody_set=pset)
    if any(c.whisper > 0 for c in cfgs):
        import torch

        from emolens.training.default_model import attach_whisper

        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)  # the encoder's matrix products use every core
        try:
            for name, cf in data.items():
                attach_whisper(cf, by_name[name], progress=True)
        finally:
            torch.set_num_threads(threads)
    if any(c.prosody > 0 and c.prosody_set == "egemaps" for c in cfgs):
        from emolens.evaluation.egemaps import extract_egemaps

        for name, cf in data.items():
            w = WorkDir.open(by_name[name])
            cf.egemaps = extract_egemaps(w.manifest.paths(), cache_dir=w.root / "egemaps", progress=True).astype(np.float32)
    for layer in sorted({c.finetune - 1 for c in cfgs if c.finetune}):
        from emolens.evaluation.finetune_top import lower_activations

        for name, cf in data.items():
            cf.activations[layer] = lower_activations(by_name[name], layer)
    for policy in sorted({c.augment for c in cfgs if c.augment}):
        for name, cf in data.items():
            if name != "casia":  # never trained on: no augmented copy needed
                cf.variants[f"aug-{policy}"] = variant_features(by_name[name], f"aug-{policy}")
    eqs = sorted({c.frontend for c in cfgs if c.frontend != "none"})
    if eqs:
        from emolens.features.equalize import utterance_profiles

        profiles = {}
        for name in EQ_REFERENCE:
            ps = WorkDir.open(by_name[name]).patchset(progress=False)
            profiles[name] = utterance_profiles(ps.patches, ps.utt, data[name].n_utt).mean(0)
        ref = np.mean([profiles[n] for n in EQ_REFERENCE], 0)
        for kind in eqs:
            for name, cf in data.items():
                cf.variants[kind] = variant_features(by_name[name], kind, ref_profile=ref)


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")


def table(rows: dict[str, list[dict]], base: dict, corpora: list[str], held: list[str] | None = None) -> str:
    """Markdown ablation table: one row per lever (means over seeds); ``held``: the
    corpora only tested (default CASIA), left out of the development mean."""
    held = held or ["casia"]
    head = f"| row | mean UAR | worst UAR | mean UAR ({len(corpora) - len(held)} dev) | " + " | ".join(corpora) + " | mean F1 | mean ECE | seeds |"
    lines = [head, "|" + "---|" * (7 + len(corpora))]
    for name, sums in rows.items():
        per = [" " + _ms([s["per_corpus"][c]["uar"] for s in sums]) + " " for c in corpora]
        lines.append(f"| {name} | {_ms([s['mean_uar'] for s in sums])} | {_ms([s['worst_uar'] for s in sums])} | "
                     f"{_ms([s['mean_uar_dev'] for s in sums])} |" + "|".join(per)
                     + f"| {np.mean([s['mean_f1'] for s in sums]):.3f} | {np.mean([s['mean_ece'] for s in sums]):.3f} | {len(sums)} |")
    u = [base[c]["uar"] for c in corpora]
    dev = [base[c]["uar"] for c in corpora if c not in held]
    if np.all(np.isnan(u)):  # --no-egemaps: no baseline row
        return "\n".join(lines)
    lines.append(f"| eGeMAPS + SVM | {np.mean(u):.3f} | {np.min(u):.3f} | {np.mean(dev):.3f} | "
                 + " | ".join(f"{base[c]['uar']:.3f}" for c in corpora)
                 + f" | {np.mean([base[c]['f1_macro'] for c in corpora]):.3f} | - | - |")
    return "\n".join(lines)


def detail(name: str, sums: list[dict], base: dict, corpora: list[str]) -> str:
    lines = [f"| test corpus ({name}) | UAR | macro F1 | ECE | eGeMAPS+SVM UAR | eGeMAPS+SVM F1 | gain (pt) |",
             "|---|---|---|---|---|---|---|"]
    for c in corpora:
        u = [s["per_corpus"][c]["uar"] for s in sums]
        b = base[c]
        ref = ("- | - | -" if np.isnan(b["uar"]) else  # --no-egemaps: no baseline measured
               f"{b['uar']:.3f} | {b['f1_macro']:.3f} | {100 * (np.mean(u) - b['uar']):+.1f}")
        lines.append(f"| {c} | {_ms(u)} | {_ms([s['per_corpus'][c]['f1_macro'] for s in sums])} | "
                     f"{_ms([s['per_corpus'][c]['ece'] for s in sums])} | {ref} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--work-root", type=Path, default=Path("work/gen"), help="one prepared work dir per corpus (made when missing)")
    ap.add_argument("--out", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--rows", default="utt-mixup", help="comma list of row names or 'all' (default: the shipped recipe)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--folds", choices=["issue", "ship"], default="issue",
                    help="issue: train on the five development corpora (CASIA only tested); ship: the folds the shipped "
                         "model can have, TurEV-DB (CC BY-NC-ND) and CASIA only tested (how train_default measures)")
    ap.add_argument("--label-map", action="append", default=None, metavar="CORPUS:FROM=TO",
                    help="replace the shipped label maps (turev:calm=neutral, ravdess:calm=neutral; "
                         "emolens.training.default_model.CORPORA); repeatable. A corpus whose map then differs gets "
                         "its own work dir. E.g. --label-map turev:calm=neutral alone: RAVDESS without its calm clips "
                         "(the yardstick before stop 14)")
    ap.add_argument("--no-egemaps", action="store_true")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    args = ap.parse_args(argv)
    if args.list:
        for k, (cfg, what) in ROWS.items():
            print(f"{k:<24}{what}")
        return 0
    import torch

    torch.set_num_threads(1)  # 2 threads ran the small head steps 20x slower on a busy 2-core machine
    names = list(ROWS) if args.rows == "all" else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"emolens: error: unknown row(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    try:
        dirs = prepare_corpora(args.shared, args.work_root, label_maps=args.label_map, log_fn=lambda m: print(m, flush=True))
    except LabelError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    data = {}
    for name, d in dirs.items():
        cf = corpus_features(d, progress=True)
        data[cf.name] = cf
    load_lever_inputs([ROWS[n][0] for n in names], data, dirs)
    corpora = list(data)
    print(f"features ready ({time.perf_counter() - t0:.0f} s): " + ", ".join(f"{c} {data[c].n_utt} files" for c in corpora), flush=True)
    held = sorted(set(data) & set(NOT_SHIPPABLE)) if args.folds == "ship" else None  # None: CASIA only
    base = {} if args.no_egemaps else egemaps_loco({WorkDir.open(d).manifest[0].corpus: WorkDir.open(d) for d in dirs.values()},
                                                   args.out, progress=True, evaluate_only=held)
    if not base:
        base = {c: {"uar": float("nan"), "f1_macro": float("nan")} for c in corpora}
    rows: dict[str, list[dict]] = {}
    for name in names:
        cfg = ROWS[name][0]
        for seed in seeds:
            t = time.perf_counter()
            print(f"{name} seed {seed}:", flush=True)
            fold_dir = f"seed{seed}" if held is None else f"ship-seed{seed}"
            res = run_loco(cfg, data, seed=seed, out=args.out / f"{name}-{cfg.key()}" / fold_dir,
                           log=lambda s: print(s, flush=True), evaluate_only=held)
            s = summarise(res)
            rows.setdefault(name, []).append(s)
            print(f"  mean {s['mean_uar']:.3f} worst {s['worst_uar']:.3f} ({time.perf_counter() - t:.0f} s)", flush=True)
    md = table(rows, base, corpora, held)
    det = detail(names[0], rows[names[0]], base, corpora)
    print("\nLeave-one-corpus-out UAR (" + ("casia: trained on the five others, never on casia" if held is None else
          f"{', '.join(held)}: trained on the shippable corpora, never on these") + "); chance 0.25\n")
    print(md)
    print()
    print(det)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.markdown:
        args.markdown.write_text(md + "\n\n" + det + "\n")
    (args.out / "summary.json").write_text(json.dumps({n: {"config": ROWS[n][0].to_dict(), "seeds": seeds, "summaries": rows[n]}
                                                       for n in names}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
