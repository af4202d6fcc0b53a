"""What Gaussian Data Selection and the speech gate drop, per corpus and class.

    python benchmarks/gds_transfer.py --work emodb-2s=work/emodb2s \\
        --work emodb-orig=/work/cache/emodb-orig --work ravdess=/work/cache/ravdess \\
        --work ased=/work/cache/ased [--json out.json]

Each ``NAME=WORKDIR`` is a prepared work dir (``emolens prepare``). Per corpus, for

* ``thesis``: ``GDSConfig.thesis()`` (corpus scope, absolute levels, z < -0.30),
* ``transfer``: ``GDSConfig()`` (levels relative to the utterance's loudest patch,
  z < 0, at most 25% of an utterance's patches),
* ``gate``: the speech gate (:class:`SpeechGateConfig`, patches with speech
  probability < 0.2 dropped),

GDS fitted on all the corpus's patches (as ``emolens prepare`` does), it prints the
dropped fraction overall and per class, the worst class's rate over the overall rate
(target <= 1.5), and what is dropped vs kept: mean speech probability (YAMNet's voice
classes), mean level in dB re the utterance's loudest frame, fraction of mostly silent
patches (more than half the frames 40 dB under the utterance's loudest frame).
Then the held-out drop of each GDS setting: fitted on four fifths of the speakers
(speaker-grouped 5-fold), applied to the fifth (mean and range over folds).

The YAMNet AudioSet scores come from the backbone-feature cache of the work dir
(``W/embeddings``, filled by ``emolens train`` in head mode); missing features are
computed (and cached there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def load_corpus(root: str | Path) -> dict:
    """Patches, labels, utterances, speakers, AudioSet scores, silence and level of a work dir."""
    from emolens.corpora.splits import make_folds
    from emolens.models import build_model
    from emolens.report.gds_report import patch_silence
    from emolens.training.data import backbone_features
    from emolens.workdir import WorkDir

    work = WorkDir.open(root)
    ps = work.patchset(progress=False)
    model, _ = build_model("yamnet", len(work.classes))
    feats = backbone_features(model, ps.patches, work.root / "embeddings", progress=False)
    with torch.no_grad():
        audioset = torch.sigmoid(model.yamnet.classifier(torch.from_numpy(feats["yamnet"]))).numpy()
    silent, level = patch_silence(ps.patches, ps.utt)
    folds = make_folds(work.manifest, "5", seed=0)
    return {"patches": ps.patches, "y": ps.y, "utt": ps.utt, "classes": list(work.classes),
            "audioset": audioset, "silent": silent, "level": level, "folds": folds, "ps": ps}


def describe(drop: np.ndarray, d: dict, speech: np.ndarray) -> dict:
    """Drop rates (overall, per class) and what is dropped vs kept."""
    y, n_cls = d["y"], len(d["classes"])
    rate = float(drop.mean())
    per_class = {c: float(drop[y == i].mean()) for i, c in enumerate(d["classes"])}
    worst = max(per_class.values())

    def stats(mask: np.ndarray) -> dict:
        if not mask.any():
            return {"speech": float("nan"), "level_db": float("nan"), "mostly_silent": float("nan")}
        return {"speech": float(speech[mask].mean()), "level_db": float(d["level"][mask].mean()),
                "mostly_silent": float(np.mean(d["silent"][mask] > 0.5))}

    return {"dropped": rate, "per_class": per_class, "worst_over_overall": worst / rate if rate > 0 else float("nan"),
            "dropped_stats": stats(drop), "kept_stats": stats(~drop), "n_classes": n_cls}


def main() -> None:
    from emolens.selection.gds import GDSConfig, GaussianDataSelector
    from emolens.selection.speech import SpeechGateConfig, speech_probability

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", action="append", required=True, help="NAME=WORKDIR (repeatable)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gate = SpeechGateConfig()
    settings = {"thesis": GDSConfig.thesis(), "transfer": GDSConfig()}
    report: dict = {}
    for spec in args.work:
        name, root = spec.split("=", 1)
        d = load_corpus(root)
        speech = speech_probability(d["audioset"], gate)
        x, y, utt = d["patches"], d["y"], d["utt"]
        rows = {}
        for key, cfg in settings.items():
            res = GaussianDataSelector(cfg).fit(x, y, utt).select(x, utt)
            rows[key] = describe(~res.keep, d, speech)
            held = []
            for fold in d["folds"]:
                tr = d["ps"].patch_indices(np.setdiff1d(np.arange(len(d["ps"].y_utt)), fold.test))
                te = d["ps"].patch_indices(fold.test)
                sel = GaussianDataSelector(cfg).fit(x[tr], y[tr], utt[tr])
                held.append(1.0 - sel.select(x[te], utt[te]).keep.mean())
            rows[key]["held_out_dropped"] = {"mean": float(np.mean(held)), "min": float(np.min(held)), "max": float(np.max(held))}
        rows["gate"] = describe(speech < gate.threshold, d, speech)
        both = (speech < gate.threshold) | ~GaussianDataSelector(GDSConfig()).fit(x, y, utt).select(x, utt).keep
        rows["gate+transfer"] = describe(both, d, speech)
        report[name] = {"patches": int(len(y)), "utterances": int(len(np.unique(utt))), "rows": rows}
        classes = d["classes"]
        print(f"\n== {name}: {len(np.unique(utt))} utterances, {len(y)} patches, "
              f"mostly silent {np.mean(d['silent'] > 0.5):.1%}, speech < {gate.threshold} {np.mean(speech < gate.threshold):.1%}")
        print(f"{'setting':<14}{'dropped':>8} " + "".join(f"{c[:7]:>8}" for c in classes)
              + f"{'worst/all':>10}{'held-out (range)':>20}   dropped vs kept: speech p | level dB | mostly silent")
        for key, r in rows.items():
            ho = r.get("held_out_dropped")
            hos = f"{ho['mean']:.1%} ({ho['min']:.0%}-{ho['max']:.0%})" if ho else "-"
            ds, ks = r["dropped_stats"], r["kept_stats"]
            print(f"{key:<14}{r['dropped']:>8.1%} " + "".join(f"{r['per_class'][c]:>8.1%}" for c in classes)
                  + f"{r['worst_over_overall']:>10.2f}{hos:>20}   {ds['speech']:.2f} / {ks['speech']:.2f} | "
                  f"{ds['level_db']:6.1f} / {ks['level_db']:6.1f} | {ds['mostly_silent']:.2f} / {ks['mostly_silent']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
