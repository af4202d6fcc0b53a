"""Which YAMNet layer carries emotion? Mean+max-pooled output of each layer, averaged
per utterance, logistic regression, speaker-grouped 5-fold UAR on a prepared work dir.

    python benchmarks/yamnet_layers.py --work runs/demo/work [--weights ../shared/weights]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emolens.corpora.splits import make_folds
from emolens.models.fusion import vggish_to_yamnet_input
from emolens.models.weights import resolve_weights
from emolens.models.yamnet import load_yamnet_file
from emolens.workdir import WorkDir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--folds", default="5")
    args = ap.parse_args()
    work = WorkDir.open(args.work)
    ps = work.patchset(progress=False)
    net = load_yamnet_file(resolve_weights("yamnet", args.weights)).eval()
    feats: dict[int, list[np.ndarray]] = {i: [] for i in range(len(net.layers))}
    with torch.no_grad():
        for s in range(0, len(ps.patches), 128):
            h = vggish_to_yamnet_input(torch.from_numpy(ps.patches[s : s + 128]).unsqueeze(1))
            for i, layer in enumerate(net.layers):
                h = layer(h)
                feats[i].append(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1).numpy())
    folds = make_folds(work.manifest, args.folds)
    counts = np.bincount(ps.utt)[:, None]
    print(f"{'layer':<8}{'dim':>6}{'UAR':>8}")
    for i, chunks in feats.items():
        X = np.concatenate(chunks)
        Xu = np.zeros((len(counts), X.shape[1]))
        np.add.at(Xu, ps.utt, X)
        Xu /= counts
        uars = []
        for f in folds:
            tr = np.union1d(f.train, f.val) if f.val is not None else f.train
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000, class_weight="balanced"))
            clf.fit(Xu[tr], ps.y_utt[tr])
            uars.append(balanced_accuracy_score(ps.y_utt[f.test], clf.predict(Xu[f.test])))
        print(f"L{i:<7}{X.shape[1]:>6}{np.mean(uars):>8.3f}")


if __name__ == "__main__":
    main()
