"""A model's adaptation statistics on disk: ``adaptation.safetensors`` (per stream: mean,
nuisance and emotion bases) beside ``model.json``, whose ``adaptation`` section holds the
:class:`AdaptConfig` and where the statistics were learned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter

ADAPT_FILE = "adaptation.safetensors"


def save_adapter(model_dir: str | Path, adapter: SpeakerAdapter, info: dict | None = None) -> Path:
    """Write ``adapter`` into ``model_dir`` (statistics file + ``model.json["adaptation"]``)."""
    from safetensors.numpy import save_file

    model_dir = Path(model_dir)
    save_file(adapter.to_arrays(), str(model_dir / ADAPT_FILE))
    cfg_path = model_dir / "model.json"
    config = json.loads(cfg_path.read_text())
    config["adaptation"] = {**adapter.config.to_dict(), **(info or {})}
    cfg_path.write_text(json.dumps(config, indent=2))
    return model_dir / ADAPT_FILE


def load_adapter(model_dir: str | Path | None, config: dict) -> SpeakerAdapter | None:
    """The model's adapter, or ``None`` when it has none."""
    if model_dir is None or "adaptation" not in config or not (Path(model_dir) / ADAPT_FILE).exists():
        return None
    from safetensors.numpy import load_file

    return SpeakerAdapter.from_arrays(load_file(str(Path(model_dir) / ADAPT_FILE)), AdaptConfig.from_dict(config["adaptation"]))


def fit_for_model(work_dir: str | Path, model_dir: str | Path, config: AdaptConfig | None = None,
                  progress: bool = True, info: dict | None = None) -> SpeakerAdapter:
    """Learn the adaptation statistics of the model in ``model_dir`` from the labelled
    corpora of the prepared ``work_dir`` it was trained on (speech patches only, the
    model's own stream features) and save them into ``model_dir``."""
    from emolens.models.io import load_model
    from emolens.selection.speech import SpeechGateConfig, speech_probability, voting_masks
    from emolens.training.data import backbone_features
    from emolens.workdir import WorkDir

    work = WorkDir.open(work_dir)
    model, mcfg, _ = load_model(model_dir)
    if list(mcfg["classes"]) != list(work.classes):
        raise ValueError(f"{work_dir} has classes {work.classes}, the model {mcfg['classes']}")
    ps = work.patchset(progress=progress)
    feats = backbone_features(model, ps.patches, work.root / "embeddings", progress=progress)
    gate = SpeechGateConfig.from_dict(mcfg.get("speech_gate"))
    # YAMNet's embedding is cached with yamnet_mid by the same backbone pass: the AudioSet head on it
    import torch

    from emolens.models.fusion import MODEL_STREAMS, FusionNet

    yam = FusionNet(len(work.classes), MODEL_STREAMS["yamnet"], yamnet=model.yamnet).eval()
    emb = backbone_features(yam, ps.patches, work.root / "embeddings", progress=progress)["yamnet"]
    with torch.no_grad():
        audioset = torch.sigmoid(model.yamnet.classifier(torch.from_numpy(emb))).numpy()
    speech = speech_probability(audioset, gate) >= gate.threshold
    voting = voting_masks(speech, np.ones(len(ps.utt), bool), ps.utt)
    cfg = config or AdaptConfig()
    speakers = work.manifest.speaker_array().astype(str)
    adapter = SpeakerAdapter.fit(feats, ps.utt, voting, speakers, ps.y_utt, np.arange(len(ps.y_utt)), cfg)
    if cfg.method == "gated":
        adapter.gate = gate_from_work(adapter, feats, ps.utt, voting, ps.y_utt, speakers,
                                      np.asarray([u.corpus for u in work.manifest.utterances], dtype=str))
    save_adapter(model_dir, adapter, {"fitted_on": sorted(set(work.info.get("per_corpus", {})) or ["work dir"]),
                                      "utterances": int(len(ps.y_utt)), **(info or {})})
    return adapter


def gate_from_work(adapter: SpeakerAdapter, feats: dict[str, np.ndarray], utt: np.ndarray, voting: np.ndarray,
                   y_utt: np.ndarray, speakers: np.ndarray, corpus: np.ndarray):
    """Method ``gated``'s :class:`~emolens.adaptation.transform.SpreadGate` from patch features
    ``{stream: (P, D)}`` with utterance ids ``utt (P,)`` and ``voting (P,)``, and per utterance
    ``y_utt``, ``speakers`` and ``corpus (U,)``: held out by corpus (in order of appearance) when
    there are two or more, else by thirds of the speakers (each part scored by what the others
    learned). ``ValueError`` when there are too few speakers for that."""
    from emolens.adaptation.transform import SpreadGate

    rows, ids = adapter.clip_rows(feats, utt, voting)
    corpus = np.asarray(corpus).astype(str)
    spk = np.char.add(np.char.add(corpus, "/"), np.asarray(speakers).astype(str))[ids]  # ids repeat across corpora
    part = corpus[ids]
    if len(np.unique(part)) < 2:
        order = {s: i for i, s in enumerate(np.unique(spk))}
        part = np.array([order[s] % 3 for s in spk])
    if len(np.unique(part)) < 2:
        raise ValueError("method gated needs speakers from two or more corpora, or three or more speakers, "
                         "to fit its spread gate; use AdaptConfig(method='nap')")
    y = np.asarray(y_utt)[ids]
    return SpreadGate.fit([(rows[part == p], y[part == p], spk[part == p]) for p in dict.fromkeys(part)])  # in order


def fit_from_corpora(corpora, streams, config: AdaptConfig | None = None) -> SpeakerAdapter:
    """Learn the statistics from per-corpus cached features (objects with ``name``,
    ``feats {stream: (P, D)}``, ``utt (P,)``, ``speech (P,)``, ``y (U,)``, ``speakers (U,)``,
    e.g. ``emolens.evaluation.generalisation.CorpusFeatures``) of the model's ``streams``;
    with prosody functionals on every corpus (``prosody (U, P)``), their class means too;
    from two or more corpora, method ``gated``'s spread gate too."""
    from emolens.selection.speech import voting_masks

    offs = np.cumsum([0] + [len(c.y) for c in corpora])
    feats = {s: np.concatenate([c.feats[s] for c in corpora]) for s in streams}
    utt = np.concatenate([c.utt + o for c, o in zip(corpora, offs)])
    speech = np.concatenate([np.asarray(c.speech, bool) for c in corpora])
    voting = voting_masks(speech, np.ones(len(utt), bool), utt)
    spk = np.concatenate([np.char.add(f"{c.name}/", np.asarray(c.speakers).astype(str)) for c in corpora])
    y = np.concatenate([c.y for c in corpora])
    adapter = SpeakerAdapter.fit(feats, utt, voting, spk, y, np.arange(len(y)), config or AdaptConfig())
    if len(corpora) >= 2:  # method gated's spread gate: each corpus held out in turn
        adapter.gate = gate_from_work(adapter, feats, utt, voting, y, np.concatenate([c.speakers for c in corpora]),
                                      np.repeat([c.name for c in corpora], [len(c.y) for c in corpora]))
    if all(getattr(c, "prosody", None) is not None for c in corpora):  # a prosody stream: its class means too
        from emolens.adaptation.transform import prosody_class_means

        adapter.prosody_means = prosody_class_means(np.concatenate([c.prosody for c in corpora]), spk, y,
                                                    len(corpora[0].classes))
    return adapter


__all__ = ["ADAPT_FILE", "save_adapter", "load_adapter", "fit_for_model", "fit_from_corpora", "gate_from_work"]
