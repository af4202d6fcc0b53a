"""Where the worst corpus's gap to eGeMAPS + SVM sits: the same RBF SVM (C = 1, balanced
classes) trained on the shippable corpora (emodb, ravdess, ased, nemo) and tested on one
held-out corpus (default CASIA), on openSMILE's eGeMAPS functionals and on emolens's
prosody functionals (:mod:`emolens.features.prosody`), whole and one feature group at a
time ("only" the group, "without" it).

    python benchmarks/prosody_groups.py --work-root /work/cache/gen [--test casia]

Work dirs: one prepared corpus each, as ``benchmarks/generalisation.py`` makes them; the
eGeMAPS and prosody functionals are read from (or written to) their per-file caches.
About 2 minutes once the caches exist.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TRAIN = ("emodb-original", "ravdess", "ased", "nemo")
#: group -> (substrings of eGeMAPS feature names, substrings of emolens prosody names)
GROUPS = {
    "F0": (("F0semitone",), ("pitch mean", "pitch std", "pitch coeff", "pitch 20th", "pitch median", "pitch 80th",
                             "pitch range", "pitch rising", "pitch falling")),
    "loudness": (("loudness",), ("loudness",)),
    "spectral balance": (("alphaRatio", "hammarberg", "slope", "spectralFlux"),
                         ("alpha ratio", "Hammarberg", "spectral slope", "spectral flux")),
    "MFCC": (("mfcc",), ("MFCC",)),
    "voice quality": (("jitter", "shimmer", "HNR", "H1-H2", "H1-A3"), ("jitter", "shimmer", "HNR", "H1-H2", "H1-A3")),
    "formants": (("F1", "F2", "F3"), ("F1 ", "F2 ", "F3 ")),
    "temporal": (("Rate", "SegmentLength", "equivalentSoundLevel"),
                 ("per second", "segment length", "voiced fraction", "equivalent sound level")),
}


def _cols(names: list[str], keys: tuple[str, ...]) -> list[int]:
    return [i for i, n in enumerate(names) if any(k in n for k in keys)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("work/gen"))
    ap.add_argument("--test", default="casia", help="work dir of the held-out corpus (default casia)")
    args = ap.parse_args(argv)

    from emolens.evaluation.egemaps import EgemapsSVM, _make_smile, extract_egemaps
    from emolens.evaluation.metrics import classification_report_dict
    from emolens.features.prosody import _names
    from emolens.features.prosody_files import extract_prosody
    from emolens.workdir import WorkDir

    dirs = (*TRAIN, args.test)
    works = {d: WorkDir.open(args.work_root / d) for d in dirs}
    feats = {
        "eGeMAPS": {d: extract_egemaps(w.manifest.paths(), cache_dir=w.root / "egemaps", progress=True) for d, w in works.items()},
        "emolens": {d: extract_prosody(w.manifest.paths(), cache_dir=args.work_root / d / "prosody", progress=True)
                    for d, w in works.items()},
    }
    names = {"eGeMAPS": list(_make_smile().feature_names), "emolens": _names()[0]}
    y = {d: w.labels() for d, w in works.items()}

    def uar(kind: str, cols: list[int] | None = None) -> float:
        F = feats[kind]
        pick = (lambda a: a) if cols is None else (lambda a: a[:, cols])
        clf = EgemapsSVM(C=1.0).fit(np.concatenate([pick(F[d]) for d in TRAIN]), np.concatenate([y[d] for d in TRAIN]))
        return float(classification_report_dict(y[args.test], clf.predict(pick(F[args.test])), works[args.test].classes)["uar"])

    print(f"\nRBF SVM trained on {', '.join(TRAIN)}; UAR on {args.test} (chance 0.25)\n")
    print("| features | eGeMAPS: n | only | without | emolens: n | only | without |")
    print("|---|---|---|---|---|---|---|")
    print(f"| all | {len(names['eGeMAPS'])} | {uar('eGeMAPS'):.3f} | - | {len(names['emolens'])} | {uar('emolens'):.3f} | - |")
    for group, keys in GROUPS.items():
        cells = []
        for kind, k in zip(("eGeMAPS", "emolens"), keys):
            cols = _cols(names[kind], k)
            rest = [i for i in range(len(names[kind])) if i not in cols]
            cells.append(f"{len(cols)} | {uar(kind, cols):.3f} | {uar(kind, rest):.3f}")
        print(f"| {group} | " + " | ".join(cells) + " |", flush=True)
    # emolens's spectral group with standard deviations normalised by |mean|, as eGeMAPS reports them
    pn = names["emolens"]
    spec = _cols(pn, GROUPS["spectral balance"][1])
    pairs = [(pn.index(n), pn.index(n.replace(" mean", " std"))) for n in (pn[i] for i in spec)
             if " mean" in n and n.replace(" mean", " std") in pn]
    stds = {b for _, b in pairs}
    keep = [i for i in spec if i not in stds]
    normed = {d: np.concatenate([v[:, keep], np.stack([v[:, b] / (np.abs(v[:, a]) + 1e-3) for a, b in pairs], 1)], 1)
              for d, v in feats["emolens"].items()}
    feats["emolens-cv"] = normed
    print(f"\nemolens spectral balance with std/|mean| instead of std: {uar('emolens-cv'):.3f} "
          f"({len(keep) + len(pairs)} features)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
