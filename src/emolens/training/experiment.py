"""Speaker-independent cross-validation of one model configuration, and the thesis's
ablation ({fusion, vggish, yamnet} x {GDS off, on}) on the same folds.

Per fold: GDS is fitted on the fold's *training* patches only and the same fitted
selector is applied to its validation and test patches; the model is trained with
early stopping on the speaker-independent validation speakers; each test utterance's
decision is the mean of its kept patches' probabilities. Finished folds are saved
(``RUNDIR/folds/<name>/``) and skipped on a re-run, and the epoch checkpoint inside a
fold resumes after a kill. After the folds, a final model is trained on all speakers
(one held out for early stopping) and saved for ``emolens predict``/``explain``.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from emolens.corpora.multi import corpus_array
from emolens.corpora.parsers import EVALUATE_ONLY_CORPORA
from emolens.corpora.splits import Fold, make_folds
from emolens.errors import EmolensError
from emolens.evaluation.groups import per_corpus_from_folds
from emolens.evaluation.metrics import (
    aggregate_folds,
    classification_report_dict,
    utterance_scores,
    write_confusion_csv,
)
from emolens.features.normalize import check_mode, group_keys, normalize_streams
from emolens.models import build_model, load_yamnet_file, resolve_weights
from emolens.models.fusion import MODEL_STREAMS, FusionNet
from emolens.models.io import save_model
from emolens.report.metrics_figures import plot_confusion, plot_training_curves
from emolens.selection.gds import GaussianDataSelector, GDSConfig
from emolens.selection.speech import (
    SpeechGateConfig,
    audioset_scores,
    speech_probability,
    voting_masks,
)
from emolens.training.data import PatchSet, backbone_features
from emolens.training.trainer import TrainConfig, fit, predict_proba
from emolens.workdir import WorkDir

log = logging.getLogger("emolens")


@dataclass
class RunConfig:
    """One row of the ablation: model kind, GDS on/off, folds, optimisation."""

    model: str = "fusion"  # fusion | vggish | yamnet
    gds: bool = False  # off by default: it cost 1.8-5.2 pt UAR on the EmoDB copies (benchmarks/gds_onoff.py)
    folds: str = "5"  # k, 'loso' or 'holdout:SPK,SPK' ('random[:k]' needs allow_speaker_overlap)
    allow_speaker_overlap: bool = False
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    gds_config: GDSConfig = field(default_factory=GDSConfig)
    speech_gate: bool = False  # train and evaluate on speech patches only (as prediction votes)
    speech_vote: bool = False  # train on all (GDS-kept) patches, evaluate with prediction's voting rule
    hidden: int = 256
    layer_dim: int = 256
    dropout: float = 0.3
    final_model: bool = True
    normalize: str = "none"  # none | corpus | speaker | utterance: z-score stream features per group (head mode)
    yamnet_weights: str | None = None
    vggish_weights: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gds_config"] = self.gds_config.to_dict()
        return d


class _Inputs:
    """Module inputs for patch indices: cached features (head) or log-mel patches."""

    def __init__(self, ps: PatchSet, feats: dict[str, np.ndarray] | None):
        self.ps, self.feats = ps, feats

    def __call__(self, idx: np.ndarray, train: bool = False):
        if self.feats is not None:
            return {k: torch.from_numpy(v[idx]) for k, v in self.feats.items()}
        return torch.from_numpy(self.ps.patches[idx]).unsqueeze(1)


def _select(cfg: RunConfig, ps: PatchSet, train_p: np.ndarray,
            is_speech: np.ndarray | None = None) -> tuple[np.ndarray, GaussianDataSelector | None]:
    """Keep mask over all patches: GDS fitted on ``train_p`` (or all True), then, with
    ``is_speech`` ``(P,)``, the speech gate's voting rule per utterance."""
    keep, sel = np.ones(len(ps.utt), bool), None
    if cfg.gds:
        sel = GaussianDataSelector(cfg.gds_config).fit(ps.patches[train_p], labels=ps.y[train_p], utterance_ids=ps.utt[train_p])
        keep = sel.select(ps.patches, ps.utt).keep
    if is_speech is not None:
        keep = voting_masks(is_speech, keep, ps.utt)
    return keep, sel


def _patch_speech(cfg: RunConfig, model: FusionNet, ps: PatchSet, feats) -> np.ndarray | None:
    """``(P,)`` speech-gate decision per patch (None when ``cfg.speech_gate`` is off):
    YAMNet's AudioSet head on the cached YAMNet embeddings, or YAMNet run on the patches."""
    if not (cfg.speech_gate or cfg.speech_vote):
        return None
    gate = SpeechGateConfig()
    if feats is not None and "yamnet" in feats and model.yamnet is not None:
        with torch.no_grad():
            audioset = torch.sigmoid(model.yamnet.classifier(torch.from_numpy(feats["yamnet"]))).numpy()
    else:
        yam = model.yamnet if model.yamnet is not None else load_yamnet_file(resolve_weights("yamnet", cfg.yamnet_weights))
        audioset = audioset_scores(yam.eval(), ps.patches)
    return speech_probability(audioset, gate) >= gate.threshold


def _evaluate(module, inputs: _Inputs, ps: PatchSet, test_p: np.ndarray, classes: list[str]) -> dict:
    probs = predict_proba(module, lambda i: inputs(test_p[i]), len(test_p))
    ids, scores = utterance_scores(probs, ps.utt[test_p])
    y = ps.y_utt[ids]
    rep = classification_report_dict(y, scores.argmax(1), classes)
    rep["utterances"] = [int(i) for i in ids]
    rep["predicted"] = [int(p) for p in scores.argmax(1)]
    rep["probabilities"] = [[round(float(v), 6) for v in row] for row in scores]  # out-of-fold, for calibration
    return rep


def _train_one(cfg: RunConfig, model: FusionNet, ps: PatchSet, feats, keep: np.ndarray,
               train_u: np.ndarray, val_u: np.ndarray | None, n_classes: int, out: Path,
               progress: bool, desc: str):
    """Train a fresh head (``head`` mode) or a copy of the whole network on the kept
    patches of ``train_u``; returns ``(module, inputs, FitResult, n_train_patches)``."""
    mode = cfg.train.finetune
    if mode == "head":
        module = copy.deepcopy(model.head)
        bb_params = None
        inputs = _Inputs(ps, feats)
    else:
        module = copy.deepcopy(model)
        bb_params = module.set_finetune(mode)
        inputs = _Inputs(ps, None)
    torch.manual_seed(cfg.seed)
    for m in module.modules() if mode == "head" else module.head.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    train_p = ps.patch_indices(train_u)
    train_p = train_p[keep[train_p]]
    val_p = None
    if val_u is not None and len(val_u):
        val_p = ps.patch_indices(val_u)
        val_p = val_p[keep[val_p]]
    out.mkdir(parents=True, exist_ok=True)
    res = fit(module, inputs, ps.y, train_p, val_p, ps.utt, n_classes, cfg.train, backbone_params=bb_params,
              log_path=out / "train_log.jsonl", ckpt_path=out / "checkpoint.pt", progress=progress, desc=desc)
    return module, inputs, res, len(train_p)


def cross_validate(work: WorkDir, cfg: RunConfig, out: str | Path, *, progress: bool = True) -> dict:
    """Run ``cfg`` over the folds of ``work``; writes ``out/metrics.json`` and figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = work.classes
    folds = make_folds(work.manifest, cfg.folds, seed=cfg.seed, allow_speaker_overlap=cfg.allow_speaker_overlap)  # fail fast
    t_feat = time.perf_counter()
    ps = work.patchset(progress=progress)
    model, weights_info = build_model(cfg.model, len(classes), yamnet_weights=cfg.yamnet_weights,
                                      vggish_weights=cfg.vggish_weights, seed=cfg.seed,
                                      hidden=cfg.hidden, layer_dim=cfg.layer_dim, dropout=cfg.dropout)
    feats = None
    check_mode(cfg.normalize)
    if cfg.normalize != "none" and cfg.train.finetune != "head":
        raise EmolensError(f"--normalize {cfg.normalize} works on cached stream features: use it with --finetune head")
    if cfg.train.finetune == "head":
        feats = backbone_features(model, ps.patches, work.root / "embeddings", progress=progress)
        feats = normalize_streams(feats, group_keys(cfg.normalize, ps.utt, work.manifest.speaker_array(),
                                                    corpus_array(work.manifest)))
    feature_seconds = time.perf_counter() - t_feat
    is_speech = _patch_speech(cfg, model, ps, feats)
    fold_reports = []
    for fold in folds:
        fdir = out / "folds" / fold.name
        done = fdir / "metrics.json"
        if done.exists():
            fold_reports.append(json.loads(done.read_text()))
            log.info("fold %s: already done, skipped", fold.name)
            continue
        train_p_all = ps.patch_indices(fold.train)
        t0 = time.perf_counter()
        keep, _ = _select(cfg, ps, train_p_all, is_speech if cfg.speech_gate else None)
        test_keep = voting_masks(is_speech, keep, ps.utt) if cfg.speech_vote and not cfg.speech_gate else keep
        gds_seconds = time.perf_counter() - t0
        module, inputs, res, n_train = _train_one(cfg, model, ps, feats, keep, fold.train, fold.val,
                                                   len(classes), fdir, progress, f"{cfg.model} {fold.name}")
        test_p = ps.patch_indices(fold.test)
        rep = _evaluate(module, inputs, ps, test_p[test_keep[test_p]], classes)
        rep.update(fold=fold.name, train_seconds=res.seconds, gds_seconds=gds_seconds,
                   best_epoch=res.best_epoch, best_val_uar=res.best_val_uar,
                   epochs_run=len(res.history),
                   patches={"train_before": int(len(train_p_all)), "train_after": n_train,
                            "test_before": int(len(test_p)), "test_after": int(test_keep[test_p].sum())})
        done.write_text(json.dumps(rep, indent=2))
        (fdir / "checkpoint.pt").unlink(missing_ok=True)
        fold_reports.append(rep)
        log.info("fold %s: UAR %.3f accuracy %.3f (%d train patches, %.1f s)", fold.name, rep["uar"], rep["accuracy"], n_train, res.seconds)
    agg = aggregate_folds(fold_reports)
    metrics = {
        "model": cfg.model, "streams": list(MODEL_STREAMS[cfg.model]), "gds": cfg.gds, "normalize": cfg.normalize,
        "speech_gate": cfg.speech_gate, "speech_vote": cfg.speech_vote,
        "finetune": cfg.train.finetune, "labels": classes,
        "accuracy": agg["accuracy"]["mean"], "uar": agg["uar"]["mean"], "f1_macro": agg["f1_macro"]["mean"],
        "accuracy_std": agg["accuracy"]["std"], "uar_std": agg["uar"]["std"], "f1_macro_std": agg["f1_macro"]["std"],
        "confusion": agg["confusion"], "per_class": agg["pooled"]["per_class"],
        "train_seconds": float(sum(r["train_seconds"] for r in fold_reports)),
        "feature_seconds": feature_seconds,
        "patches": {k: int(sum(r["patches"][k] for r in fold_reports)) for k in fold_reports[0]["patches"]},
        "folds": [{k: r[k] for k in ("fold", "accuracy", "uar", "f1_macro", "train_seconds", "best_epoch", "patches")} for r in fold_reports],
        "n_folds": len(fold_reports), "fold_spec": cfg.folds,
        "per_corpus": per_corpus_from_folds(fold_reports, corpus_array(work.manifest), ps.y_utt, classes),
        "aggregate": agg, **weights_info, "config": cfg.to_dict(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_confusion_csv(out / "confusion.csv", agg["confusion"], classes)
    title = f"{cfg.model} {'+GDS' if cfg.gds else ''} ({len(fold_reports)} folds): UAR {metrics['uar']:.3f}"
    plot_confusion(np.array(agg["confusion"]), classes, out / "confusion.png", title=title)
    first_log = out / "folds" / fold_reports[0]["fold"] / "train_log.jsonl"
    if first_log.exists():
        plot_training_curves([json.loads(l) for l in first_log.read_text().splitlines() if l], out / "training_curves.png")
    if cfg.final_model:
        eval_only = sorted(set(corpus_array(work.manifest).tolist()) & EVALUATE_ONLY_CORPORA)
        if eval_only:
            log.warning("WARNING: the final model is trained on %s, an evaluate-only corpus (unclear provenance): "
                        "it is marked in model.json and cannot be packaged or shipped", ", ".join(eval_only))
        train_final(work, cfg, model, ps, feats, folds[0], out, progress=progress, weights_info=weights_info,
                    is_speech=is_speech if cfg.speech_gate else None)
    return metrics


def train_final(work: WorkDir, cfg: RunConfig, model: FusionNet, ps: PatchSet, feats, fold0: Fold,
                out: Path, *, progress: bool, weights_info: dict, is_speech: np.ndarray | None = None) -> Path:
    """Train on every speaker but fold 0's validation speakers (kept for early
    stopping) and save the full network + GDS state for prediction."""
    all_u = np.arange(len(ps.y_utt))
    val_u = fold0.val if fold0.val is not None else np.array([], int)
    train_u = np.setdiff1d(all_u, val_u)
    keep, sel = _select(cfg, ps, ps.patch_indices(train_u), is_speech)
    module, _, res, _ = _train_one(cfg, model, ps, feats, keep, train_u, val_u, len(work.classes),
                                   out / "final", progress, f"{cfg.model} final")
    final = copy.deepcopy(model)
    if cfg.train.finetune == "head":
        final.head.load_state_dict(module.state_dict())
    else:
        final.load_state_dict(module.state_dict())
    config = {
        "emolens_model": 1, "model": cfg.model, "streams": list(final.streams),
        "classes": list(work.classes), "frontend": work.info["frontend"], "patches": work.info["patches"],
        "head": {"hidden": cfg.hidden, "layer_dim": cfg.layer_dim, "dropout": cfg.dropout},
        "vggish_final_relu": True,
        "gds": {"enabled": cfg.gds, "config": cfg.gds_config.to_dict()},
        "speech_gate": SpeechGateConfig().to_dict(),
        "normalize": cfg.normalize,
        "training_corpora": sorted(set(corpus_array(work.manifest).tolist())),
        "label_map": work.info.get("label_map", {}),
        "train": cfg.train.to_dict(), "best_epoch": res.best_epoch, "val_uar": res.best_val_uar,
        **weights_info,
    }
    (out / "final" / "checkpoint.pt").unlink(missing_ok=True)
    return save_model(out, final, config, sel.state_dict() if sel is not None else None)


ABLATION = [(m, g) for m in ("fusion", "vggish", "yamnet") for g in (False, True)]


def run_ablation(work: WorkDir, base: RunConfig, out: str | Path, *, progress: bool = True,
                 baseline: bool = True) -> dict:
    """{fusion, vggish, yamnet} x {GDS off, on} on the same folds (+ eGeMAPS-SVM)."""
    out = Path(out)
    rows = []
    for kind, gds in ABLATION:
        cfg = copy.deepcopy(base)
        cfg.model, cfg.gds, cfg.final_model = kind, gds, False
        name = f"{kind}-{'gds' if gds else 'nogds'}"
        log.info("ablation: %s", name)
        m = cross_validate(work, cfg, out / name, progress=progress)
        rows.append(_row(name, m))
    if baseline:
        from emolens.evaluation.baseline import run_egemaps_cv

        m = run_egemaps_cv(work, base.folds, out / "egemaps-svm", seed=base.seed, progress=progress,
                           allow_speaker_overlap=base.allow_speaker_overlap)
        rows.append(_row("egemaps-svm", m))
    table = {"rows": rows, "folds": base.folds, "finetune": base.train.finetune, "labels": work.classes}
    (out / "ablation.json").write_text(json.dumps(table, indent=2))
    (out / "ablation.md").write_text(ablation_markdown(table))
    return table


def _row(name: str, m: dict) -> dict:
    return {"run": name, "accuracy": m["accuracy"], "accuracy_std": m.get("accuracy_std", 0.0),
            "uar": m["uar"], "uar_std": m.get("uar_std", 0.0), "f1_macro": m["f1_macro"],
            "f1_macro_std": m.get("f1_macro_std", 0.0), "train_seconds": m["train_seconds"],
            "patches": (m.get("patches") or {}).get("train_after"),
            "vggish_pretrained": m.get("vggish_pretrained"),
            "per_corpus_uar": {c: d["uar"] for c, d in (m.get("per_corpus") or {}).items()}}


def ablation_markdown(table: dict) -> str:
    corpora = sorted({c for r in table["rows"] for c in r.get("per_corpus_uar", {})})
    corpora = corpora if len(corpora) > 1 else []
    extra = "".join(f" UAR {c} |" for c in corpora)
    lines = [f"Folds: {table['folds']} (speaker-independent); fine-tuning: {table['finetune']}; classes: {', '.join(table['labels'])}", "",
             "| run | accuracy | UAR | macro F1 | train s | train patches |" + extra, "|---|---|---|---|---|---|" + "---|" * len(corpora)]
    for r in table["rows"]:
        pc = r.get("per_corpus_uar", {})
        lines.append(f"| {r['run']} | {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} | {r['uar']:.3f} ± {r['uar_std']:.3f} | "
                     f"{r['f1_macro']:.3f} ± {r['f1_macro_std']:.3f} | {r['train_seconds']:.1f} | {r['patches'] if r['patches'] is not None else '-'} |"
                     + "".join(f" {pc[c]:.3f} |" if c in pc else " - |" for c in corpora))
    return "\n".join(lines) + "\n"
