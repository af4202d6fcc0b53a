"""The shipped default model: its configuration, how it is trained and measured, and
its card (``scripts/train_default`` runs :func:`train_default`).

Configuration (measured by ``benchmarks/cross_corpus.py``, README "Several corpora"):
``yamnet-layers`` streams (mean+max pooled YAMNet layers 5, 7 and 9; no VGGish, whose
pretrained weights cannot be shipped here), head training on frozen features, GDS off,
no stream normalisation (speaker normalisation measures better but needs several clips
of a speaker, and the shipped model must work on one clip), speech-gated voting as in
``emolens predict``. Four classes: angry, happy, neutral, sad.

Measurements written into the card, all speaker-independent, with eGeMAPS + SVM on the
same folds: within-corpus 5-fold (the model trained on that corpus alone) and
leave-one-corpus-out (trained on the other two). The shipped weights are the final
model of the leave-one-corpus-out run, trained on all three corpora.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from emolens.corpora.multi import corpus_array
from emolens.evaluation.baseline import run_egemaps_cv
from emolens.training.experiment import RunConfig, cross_validate
from emolens.training.package import package_model
from emolens.workdir import WorkDir

log = logging.getLogger("emolens")

#: The shipped model's training configuration.
DEFAULT_CONFIG = RunConfig(model="yamnet-layers", gds=False, normalize="none", speech_vote=True)
CORPORA = (("emodb", "emodb-original"), ("ravdess", "ravdess"), ("ased", "ased"))
SUMMARY = ("Four-class speech emotion recognition (angry, happy, neutral, sad) on YAMNet "
           "(AudioSet) features, trained on acted German, English and Amharic speech. "
           "Patches without speech do not vote; a recording without speech is labelled \"no speech\".")


def _subset(work: WorkDir, corpus: str) -> WorkDir:
    return WorkDir(work.root, work.manifest[corpus_array(work.manifest) == corpus], work.info, work.classes)


def _row(corpus: str, m: dict, base: dict) -> dict:
    return {"corpus": corpus, "utterances": m["n"], "UAR": float(m["uar"]), "accuracy": float(m["accuracy"]),
            "eGeMAPS+SVM UAR": float(base["uar"]), "gain (pt)": f"{100 * (m['uar'] - base['uar']):+.1f}"}


def train_default(work_dir: str | Path, out: str | Path, dest: str | Path, *, seed: int = 0,
                  progress: bool = True) -> dict:
    """Measure and train the default model on a prepared three-corpus work dir; write the
    packaged model into ``dest``. Returns the card."""
    work, out = WorkDir.open(work_dir), Path(out)
    cfg = replace(DEFAULT_CONFIG, seed=seed)
    corpora = sorted(set(corpus_array(work.manifest)))
    within = []
    for c in corpora:
        sub = _subset(work, c)
        m = cross_validate(sub, replace(cfg, folds="5", final_model=False), out / f"within-{c}", progress=progress)
        b = run_egemaps_cv(sub, "5", out / f"within-{c}-egemaps", seed=seed, progress=progress)
        within.append(_row(c, {"n": len(sub.manifest), **m}, b))
    loco = cross_validate(work, replace(cfg, folds="locorpus", final_model=True), out / "locorpus", progress=progress)
    loco_b = run_egemaps_cv(work, "locorpus", out / "locorpus-egemaps", seed=seed, progress=progress)
    held = [_row(c, loco["per_corpus"][c], loco_b["per_corpus"][c]) for c in corpora]
    cols = [["corpus", "corpus"], ["utterances", "utterances"], ["UAR", "UAR"], ["accuracy", "accuracy"],
            ["eGeMAPS+SVM UAR", "eGeMAPS+SVM UAR"], ["gain (pt)", "gain (pt)"]]
    info = work.info.get("per_corpus", {})
    card = {
        "title": "emolens default model (4 emotions, YAMNet layers, three corpora)",
        "summary": SUMMARY,
        "training_data": [{"corpus": c, "files": info.get(c, {}).get("files", "?"),
                           "speakers": info.get(c, {}).get("speakers", "?")} for c in corpora],
        "evaluations": [
            {"title": "Within each corpus (speaker-grouped 5-fold, trained on that corpus alone)",
             "note": "UAR = unweighted average recall (chance 0.25); eGeMAPS+SVM on the same folds.",
             "columns": cols, "rows": within,
             "command": "scripts/train_default (emolens train --model yamnet-layers --folds 5 per corpus)"},
            {"title": "Leave one corpus out (trained on the other two: the figure for unseen data)",
             "note": "This is the honest estimate for a new corpus, language or recording setup.",
             "columns": cols, "rows": held,
             "command": "emolens train --work W --model yamnet-layers --folds locorpus"},
        ],
        "reproduce": "scripts/train_default",
        "seed": seed,
    }
    (out / "card.json").write_text(json.dumps(card, indent=2))
    package_model(out / "locorpus", dest, card)
    from emolens.adaptation.store import fit_for_model  # --adapt statistics, learned on the same corpora

    fit_for_model(work.root, dest, progress=progress)
    from emolens.report.model_card import model_card

    config = json.loads((Path(dest) / "model.json").read_text())
    (Path(dest) / "MODEL_CARD.md").write_text(model_card(config, name=card.get("title", "emolens model")))
    return card


__all__ = ["DEFAULT_CONFIG", "train_default"]
