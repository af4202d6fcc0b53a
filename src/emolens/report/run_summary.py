"""What a report says about a training run, read from its directory (no rendering).

A run directory (``emolens train --out RUN``) holds ``metrics.json`` (cross-validated
scores, per fold, confusion), ``model.json``, per-fold ``folds/*/train_log.jsonl``
and ``final/train_log.jsonl``, and the figures ``confusion.png`` /
``training_curves.png``. With the prepared work directory (``--work``) the summary
also knows the corpus, its GDS drop and ``gds.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from emolens.errors import ModelError

__all__ = ["RunSummary", "read_run", "is_run_dir"]


@dataclass
class RunSummary:
    """Scores and provenance of one run.

    Attributes:
        name: run directory name; ``corpus``: corpus of ``--work`` (``None`` unknown).
        metrics: ``metrics.json`` as written by training (``{}`` if absent).
        model: ``model.json``; ``folds``: per-fold rows (fold, accuracy, uar, f1_macro, ...).
        logs: ``{fold name or "final": epoch records}``.
        figures: ``{"confusion" | "training_curves" | "gds": PNG path}`` that exist.
        gds: GDS facts (threshold, patches before/after on train, test, corpus).
        speech: speech-gating facts when the run records them (``{}`` otherwise).
    """

    root: Path
    name: str
    metrics: dict
    model: dict
    folds: list[dict]
    logs: dict[str, list[dict]]
    figures: dict[str, Path]
    corpus: str | None = None
    work: Path | None = None
    gds: dict = field(default_factory=dict)
    speech: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.model.get("classes") or self.metrics.get("labels") or [])

    @property
    def headline(self) -> dict[str, float | None]:
        """Mean accuracy / UAR / macro F1 over folds (with std where recorded)."""
        m = self.metrics
        return {k: m.get(k) for k in ("accuracy", "accuracy_std", "uar", "uar_std", "f1_macro", "f1_macro_std")}


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / "metrics.json").is_file() or (p / "model.json").is_file()


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: the rest of the log is still useful
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON ({exc.msg}); re-run training") from None


def read_run(run_dir: str | Path, work: str | Path | None = None) -> RunSummary:
    """Read ``run_dir`` (and optionally its prepared ``work`` directory)."""
    root = Path(run_dir)
    if not is_run_dir(root):
        raise ModelError(f"{root}: not a run directory (no metrics.json or model.json); train one with `emolens train --out {root}`")
    metrics, model = _read_json(root / "metrics.json"), _read_json(root / "model.json")
    logs = {}
    for d in sorted((root / "folds").glob("*")) + [root / "final"]:
        if (d / "train_log.jsonl").is_file():
            recs = [r for r in _read_jsonl(d / "train_log.jsonl") if r.get("epoch") is not None]
            if recs:
                logs[d.name] = recs
    figures = {k: root / f"{k}.png" for k in ("confusion", "training_curves") if (root / f"{k}.png").is_file()}
    cfg = metrics.get("config", {})
    gds = {"enabled": metrics.get("gds", model.get("gds", {}).get("enabled") if isinstance(model.get("gds"), dict) else None),
           "threshold": (cfg.get("gds_config") or {}).get("threshold"), **{f"{k}": v for k, v in (metrics.get("patches") or {}).items()}}
    speech = dict(metrics.get("speech_gating") or metrics.get("speech") or model.get("speech_gating") or {})
    s = RunSummary(root, root.resolve().name, metrics, model, list(metrics.get("folds") or []), logs, figures, gds=gds, speech=speech)
    if work is not None:
        w = Path(work)
        info = _read_json(w / "prepare.json")
        if not info:
            raise ModelError(f"{w}: not a prepared work directory (no prepare.json); run `emolens prepare --out {w}`")
        s.work, s.corpus = w, info.get("corpus")
        s.gds.update({"corpus_patches_before": info.get("patches_before"), "corpus_patches_after": info.get("patches_after"),
                      "corpus_files": info.get("files"), "corpus_speakers": info.get("speakers")})
        if (w / "gds.png").is_file():
            s.figures["gds"] = w / "gds.png"
    return s
