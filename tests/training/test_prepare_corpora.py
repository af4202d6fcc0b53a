"""``prepare_corpora``: the work dirs the yardstick and ``scripts/train_default`` share, with
the label maps of ``CORPORA`` (RAVDESS's and TurEV-DB's calm counted as neutral)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emolens.training.default_model import CORPORA, prepare_corpora, prepared_dirs

RAVDESS = (("ravdess", "ravdess", "ravdess", ("--label-map", "ravdess:calm=neutral")),)


def _ravdess(shared: Path) -> None:
    """Two actors x (neutral, calm, happy, sad, angry), 1.5 s of noisy tones each, in RAVDESS's layout."""
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    for actor in (1, 2):
        d = shared / "data" / "ravdess" / f"Actor_{actor:02d}"
        d.mkdir(parents=True)
        for emotion in range(1, 6):
            x = 0.3 * np.sin(2 * np.pi * (150 + 40 * emotion + 20 * actor) * t) + 0.01 * rng.normal(size=t.size)
            sf.write(d / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav", x.astype(np.float32), 16000)


def test_the_shipped_maps_count_calm_as_neutral() -> None:
    maps = {name: extra for name, _, _, extra in CORPORA}
    assert maps["ravdess"] == ("--label-map", "ravdess:calm=neutral")
    assert maps["turev"] == ("--label-map", "turev:calm=neutral")
    assert maps["emodb-original"] == ()  # bored is not neutral (measured: it lost)


def test_prepare_corpora_maps_reuses_and_reprepares(tmp_path: Path) -> None:
    _ravdess(tmp_path / "shared")
    logs: list[str] = []
    dirs = prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS, log_fn=logs.append)
    info = json.loads((dirs["ravdess"] / "prepare.json").read_text())
    assert dirs["ravdess"] == tmp_path / "work" / "ravdess" and len(logs) == 1
    assert info["label_map"] == {"ravdess": {"calm": "neutral"}}
    assert info["labels"] == {"neutral": 4, "happy": 2, "sad": 2, "angry": 2}  # 2 neutral + 2 calm

    prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS, log_fn=logs.append)
    assert len(logs) == 1  # prepared and matching: reused

    info["label_map"] = {}  # a work dir from a release that did not map calm
    (dirs["ravdess"] / "prepare.json").write_text(json.dumps(info))
    prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS, log_fn=logs.append)
    assert len(logs) == 2 and "label map changed" in logs[-1]
    assert json.loads((dirs["ravdess"] / "prepare.json").read_text())["labels"]["neutral"] == 4

    other = prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS, label_maps=[], log_fn=logs.append)
    assert other["ravdess"] != dirs["ravdess"] and other["ravdess"].name.startswith("ravdess-")
    info = json.loads((other["ravdess"] / "prepare.json").read_text())
    assert info["label_map"] == {} and info["labels"] == {"neutral": 2, "happy": 2, "sad": 2, "angry": 2}  # calm left out


def test_benchmark_says_what_is_wrong_with_a_label_map(tmp_path: Path, capsys) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "generalisation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    code = bench.main(["--shared", str(tmp_path), "--work-root", str(tmp_path / "w"), "--label-map", "turev:calm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not FROM=TO" in err[0]
    assert not (tmp_path / "w").exists()  # nothing prepared


def test_prepare_corpora_passes_each_corpus_only_the_maps_that_concern_it(tmp_path: Path) -> None:
    _ravdess(tmp_path / "shared")
    logs: list[str] = []
    turev_only = prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS,
                                 label_maps=["turev:calm=neutral"], log_fn=logs.append)
    info = json.loads((turev_only["ravdess"] / "prepare.json").read_text())
    assert info["label_map"] == {} and info["labels"]["neutral"] == 2  # another corpus's map: RAVDESS unmapped
    none = prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS, label_maps=[], log_fn=logs.append)
    assert none == turev_only and len(logs) == 1  # the same labelling, the same dir, reused

    every = prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS,
                            label_maps=["calm=neutral", "turev:sad=neutral"], log_fn=logs.append)
    info = json.loads((every["ravdess"] / "prepare.json").read_text())
    assert every["ravdess"] not in (none["ravdess"], tmp_path / "work" / "ravdess") and len(logs) == 2
    assert info["label_map"] == {"*": {"calm": "neutral"}} and info["labels"]["neutral"] == 4  # a map for every corpus applies


def test_prepared_dirs_refuses_a_missing_or_relabelled_dir(tmp_path: Path, capsys) -> None:
    import importlib.util

    with pytest.raises(ValueError, match="is not a prepared work dir"):
        prepared_dirs(tmp_path / "work", corpora=RAVDESS)
    _ravdess(tmp_path / "shared")
    dirs = prepare_corpora(tmp_path / "shared", tmp_path / "work", corpora=RAVDESS, log_fn=lambda m: None)
    assert prepared_dirs(tmp_path / "work", corpora=RAVDESS) == dirs
    info = json.loads((dirs["ravdess"] / "prepare.json").read_text())
    (dirs["ravdess"] / "prepare.json").write_text(json.dumps({**info, "label_map": {}}))
    with pytest.raises(ValueError, match=r"prepared with label map none, not \{'ravdess': \{'calm': 'neutral'\}\}"):
        prepared_dirs(tmp_path / "work", corpora=RAVDESS)

    spec = importlib.util.spec_from_file_location("adapt_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "adaptation_loco.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--work-root", str(tmp_path / "work")]) == 2  # the shipped CORPORA: emodb-original missing
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "emodb-original is not a prepared work dir" in err[0]
