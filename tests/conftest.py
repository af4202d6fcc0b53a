"""Shared fixtures: where ../shared lives, and small synthetic audio made by the tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """``$EMOLENS_SHARED`` or ``../shared`` beside the repository."""
    return Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared")).resolve()


#: The EmoDB recordings the tests read: the original, full-length 16 kHz files (535; the
#: 2-s crops of ../shared/data/emodb are being retired and no test reads them).
EMODB = Path("data") / "emodb-original"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if not (root / EMODB / "metadata.csv").exists():
        pytest.skip(f"shared data not found at {root} (set EMOLENS_SHARED)")
    return root


@pytest.fixture(scope="session")
def emodb_dir(shared_dir: Path) -> Path:
    return shared_dir / EMODB


@pytest.fixture(scope="session")
def weights_dir(shared_dir: Path) -> Path:
    return shared_dir / "weights"


@pytest.fixture
def tone() -> np.ndarray:
    """1 s of a 1 kHz sine at 16 kHz, amplitude 0.5, float32, shape (16000,)."""
    t = np.arange(16000) / 16000.0
    return (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)


def _pretrained_yamnet():
    """Google's YAMNet from ../shared/weights, else the copy the package ships, else None
    (a random YAMNet then: its outputs barely differ between clips)."""
    from emolens.models.yamnet import load_yamnet_file
    from emolens.resources import packaged_yamnet

    tfl = shared_root() / "weights" / "yamnet.tflite"
    tfl = tfl if tfl.is_file() else packaged_yamnet()
    return load_yamnet_file(tfl) if tfl is not None else None


def _save_tiny_run(root: Path, classes=("angry", "happy", "neutral", "sad")) -> Path:
    """A YAMNet-stream model with an untrained head saved as a run directory (no
    training: the surfaces only need a working model). YAMNet is Google's when
    one can be found (:func:`_pretrained_yamnet`), else random."""
    import torch

    from emolens.models.fusion import MODEL_STREAMS, FusionNet
    from emolens.models.io import save_model

    torch.manual_seed(0)
    streams = MODEL_STREAMS["yamnet"]
    yam = _pretrained_yamnet()
    model = FusionNet(len(classes), streams, yamnet=yam, hidden=32, layer_dim=32).eval()
    cfg = {"emolens_model": 1, "model": "yamnet", "streams": list(streams), "classes": list(classes),
           "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
           "head": {"hidden": 32, "layer_dim": 32, "dropout": 0.3}, "gds": {"enabled": False},
           "yamnet_pretrained": yam is not None, "vggish_pretrained": None}
    return save_model(root, model, cfg)


def _save_stats_run(root: Path, classes=("angry", "happy", "neutral", "sad")) -> Path:
    """As :func:`_save_tiny_run`, with a statistics-pooling head (``pooling='mean+std'``,
    linear, random weights scaled up so the decision depends on sigma as well as mu)."""
    import torch

    from emolens.models.fusion import FusionNet
    from emolens.models.io import save_model

    torch.manual_seed(1)
    streams = ("yamnet_l5", "yamnet_mid")
    yam = _pretrained_yamnet()
    model = FusionNet(len(classes), streams, yamnet=yam, hidden=0, dropout=0.0, pooling="mean+std").eval()
    with torch.no_grad():
        model.head.classifier[1].weight.mul_(8.0)
    cfg = {"emolens_model": 1, "model": "yamnet-layers-stats", "streams": list(streams), "classes": list(classes),
           "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
           "head": {"hidden": 0, "layer_dim": 256, "dropout": 0.0, "pooling": "mean+std"}, "gds": {"enabled": False},
           "yamnet_pretrained": yam is not None, "vggish_pretrained": None}
    return save_model(root, model, cfg)


def _save_prosody_run(root: Path, classes=("angry", "happy", "neutral", "sad"), whisper: bool = False,
                      whisper_mlp: int = 0) -> Path:
    """As :func:`_save_stats_run`, with the prosody head (``pooling='mean+prosody'``):
    random weights, prosody statistics of a few synthetic signals, so the decision depends
    on the functionals as well as on the patches (``whisper_mlp``: the Whisper stream's MLP
    with that many hidden units, as the shipped Whisper model has)."""
    import numpy as np
    import torch

    from emolens.features.prosody import N_PROSODY, prosody_features
    from emolens.features.prosody_files import prosody_cache_tag
    from emolens.models.fusion import FusionNet
    from emolens.models.io import save_model

    torch.manual_seed(2)
    streams = ("yamnet_l5", "yamnet_mid")
    yam = _pretrained_yamnet()
    spec = {"dim": N_PROSODY, "weight": 2.0, "clip": 6.0, "features": prosody_cache_tag()}
    wspec = None
    if whisper:  # the Whisper model's head: the clip's Whisper base stream after the functionals
        from emolens.features.whisper_files import whisper_cache_tag
        from emolens.models.whisper import WhisperStreamConfig

        wc = WhisperStreamConfig()
        wspec = {"dim": wc.dim, "weight": 1.0, **wc.to_spec(), "features": whisper_cache_tag(wc),
                 **({"mlp": whisper_mlp} if whisper_mlp else {})}
    model = FusionNet(len(classes), streams, yamnet=yam, hidden=0, dropout=0.0, pooling="mean+prosody",
                      prosody=spec, whisper=wspec).eval()
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    q = np.stack([prosody_features((0.2 * np.sin(2 * np.pi * f * t * (1 + 0.05 * t)) + 0.02 * rng.normal(size=t.size))
                                   .astype(np.float32)) for f in (110, 160, 220, 300, 400)])
    with torch.no_grad():
        model.head.prosody_mean.copy_(torch.from_numpy(q.mean(0)))
        model.head.prosody_scale.copy_(torch.from_numpy(q.std(0) + 1e-3))
        if whisper:  # the Whisper columns weigh like the rest, so that the stream moves the decision
            model.head.classifier[1].weight[:, -1024:].mul_(8.0)
        if whisper_mlp:  # and so does its MLP
            model.head.whisper_mlp[2].weight.mul_(20.0)
    cfg = {"emolens_model": 1, "model": "yamnet-layers-prosody" + ("-whisper" if whisper else ""),
           "streams": list(streams), "classes": list(classes),
           "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
           "head": {"hidden": 0, "layer_dim": 256, "dropout": 0.0, "pooling": "mean+prosody", "prosody": spec,
                    **({"whisper": wspec} if whisper else {})},
           "gds": {"enabled": False}, "yamnet_pretrained": yam is not None, "vggish_pretrained": None}
    return save_model(root, model, cfg)


@pytest.fixture(scope="session")
def prosody_run(tmp_path_factory) -> Path:
    """Run directory of a tiny untrained 4-class model with the prosody head."""
    return _save_prosody_run(tmp_path_factory.mktemp("prosody-run"))


@pytest.fixture(scope="session")
def whisper_run(tmp_path_factory) -> Path:
    """Run directory of a tiny untrained 4-class model with the prosody head and the Whisper stream."""
    return _save_prosody_run(tmp_path_factory.mktemp("whisper-run"), whisper=True, whisper_mlp=8)


@pytest.fixture(scope="session")
def stats_run(tmp_path_factory) -> Path:
    """Run directory of a tiny untrained 4-class statistics-pooling model."""
    return _save_stats_run(tmp_path_factory.mktemp("stats-run"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """Run directory of a tiny untrained 4-class (EmoDB emotions) model."""
    return _save_tiny_run(tmp_path_factory.mktemp("tiny-run"))


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's ``chromium``, driven by Playwright); skips with the
    reason when either is missing (scripts/test installs both)."""
    import shutil

    exe = os.environ.get("EMOLENS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium executable (apt-get install chromium; scripts/test does it when it can)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'emolens[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def make_run(tmp_path):
    """``make_run(streams=("yamnet", "yamnet_mid"), gds_patches=None, yamnet=None) -> run dir``:
    a saved 3-class model with a seeded random head (YAMNet random unless given); with
    ``gds_patches`` ``(n, 96, 64)`` a GDS selector fitted on them is saved too."""
    import torch

    from emolens.models.fusion import FusionNet
    from emolens.models.io import save_model

    def make(streams=("yamnet", "yamnet_mid"), gds_patches=None, yamnet=None, name="run"):
        torch.manual_seed(0)
        model = FusionNet(3, tuple(streams), yamnet=yamnet).eval()
        cfg = {"emolens_model": 1, "model": "test", "streams": list(streams), "classes": ["angry", "happy", "sad"],
               "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
               "head": {"hidden": 256, "layer_dim": 256, "dropout": 0.3}, "gds": {"enabled": gds_patches is not None}}
        state = None
        if gds_patches is not None:
            from emolens.selection.gds import GaussianDataSelector

            state = GaussianDataSelector().fit(gds_patches).state_dict()
        return save_model(tmp_path / name, model, cfg, state)

    return make
