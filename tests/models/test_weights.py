"""Weight resolution (explicit > $EMOLENS_WEIGHTS > cache > error), checked downloads via
file:// URLs, and load_vggish's loud random fallback."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch

from emolens.errors import WeightsError
from emolens.models.vggish import VGGish
from emolens.models.weights import (
    REGISTRY,
    VGGISH_PCA,
    VGGISH_PTH,
    YAMNET_H5,
    RandomInitWarning,
    WeightFile,
    WeightSpec,
    WeightsNotFoundError,
    download_weights,
    load_vggish,
    resolve_weights,
    weights_cache_dir,
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Isolated HOME, cache and weights folders; EMOLENS_WEIGHTS unset."""
    home, cache_root, wdir = tmp_path / "home", tmp_path / "cacheroot", tmp_path / "wdir"
    for d in (home, cache_root, wdir):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("EMOLENS_CACHE", str(cache_root))
    monkeypatch.delenv("EMOLENS_WEIGHTS", raising=False)
    cache = cache_root / "weights"
    cache.mkdir()
    return {"home": home, "cache": cache, "wdir": wdir, "tmp": tmp_path}


def _touch(p: Path, data: bytes = b"x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_registry_digests() -> None:
    assert VGGISH_PTH.sha256 is not None and len(VGGISH_PTH.sha256) == 64
    assert VGGISH_PTH.sha256.startswith("10086976")  # agrees with the torch-hub name
    assert VGGISH_PCA.sha256_prefix == "970ea276"
    assert YAMNET_H5.sha256_prefix is None and YAMNET_H5.magic == b"\x89HDF\r\n\x1a\n"
    assert REGISTRY["vggish"].files[0].url.endswith("/v0.1/vggish-10086976.pth")
    assert REGISTRY["yamnet"].files[0].url == "https://storage.googleapis.com/audioset/yamnet.h5"
    assert REGISTRY["vggish"].accepted[0] == "vggish-10086976.pth"
    assert REGISTRY["yamnet"].accepted[:2] == ("yamnet.tflite", "yamnet.h5")


def test_cache_dir_default_and_env(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights_cache_dir() == env["cache"]
    monkeypatch.delenv("EMOLENS_CACHE")
    assert weights_cache_dir() == env["home"] / ".cache" / "emolens" / "weights"


def test_resolution_order(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing anywhere -> WeightsNotFoundError telling how to get them
    with pytest.raises(WeightsNotFoundError, match=r"emolens weights download vggish.*EMOLENS_WEIGHTS"):
        resolve_weights("vggish")
    cached = _touch(env["cache"] / "vggish-10086976.pth")
    assert resolve_weights("vggish") == cached
    in_env_dir = _touch(env["wdir"] / "vggish-10086976.pth")
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(env["wdir"]))
    assert resolve_weights("vggish") == in_env_dir
    explicit = _touch(env["tmp"] / "elsewhere" / "my_vggish.pth")
    assert resolve_weights("vggish", explicit) == explicit
    assert resolve_weights("vggish", str(explicit)) == explicit
    # EMOLENS_WEIGHTS naming a file: used when its suffix fits the backbone, else skipped
    env_file = _touch(env["tmp"] / "direct" / "weights.pth")
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(env_file))
    assert resolve_weights("vggish") == env_file
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(_touch(env["tmp"] / "direct" / "yamnet.tflite")))
    assert resolve_weights("vggish") == cached
    assert resolve_weights("yamnet") == env["tmp"] / "direct" / "yamnet.tflite"


def test_env_dir_without_file_falls_back_to_cache(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(env["wdir"]))  # empty folder
    cached = _touch(env["cache"] / "yamnet.h5")
    assert resolve_weights("yamnet") == cached
    tfl = _touch(env["wdir"] / "yamnet.tflite")
    _touch(env["wdir"] / "yamnet.h5")
    assert resolve_weights("yamnet") == tfl  # tflite preferred over h5 in one folder


def test_bad_explicit_or_env_paths_raise(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(env["cache"] / "vggish-10086976.pth")
    with pytest.raises(WeightsError, match="does not exist") as ei:
        resolve_weights("vggish", env["tmp"] / "missing.pth")
    assert not isinstance(ei.value, WeightsNotFoundError)  # never a silent random fallback
    with pytest.raises(WeightsError, match="no vggish weights in folder"):
        resolve_weights("vggish", env["wdir"])
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(env["tmp"] / "typo"))
    with pytest.raises(WeightsError, match=r"EMOLENS_WEIGHTS=.*typo does not exist"):
        resolve_weights("vggish")
    with pytest.raises(WeightsError, match="unknown weights name 'resnet'"):
        resolve_weights("resnet")


# --------------------------------------------------------------------------- downloads


def _served(tmp: Path, payload: bytes, name: str = "blob.bin") -> str:
    src = _touch(tmp / "server" / name, payload)
    return src.as_uri()


def _registry(url: str, filename: str, sha256: str | None = None, magic: bytes | None = None) -> dict[str, WeightSpec]:
    wf = WeightFile(filename, url, sha256=sha256, magic=magic)
    return {"toy": WeightSpec("toy", (wf,), (filename,))}


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_good_hash_then_resolves(env: dict[str, Path]) -> None:
    payload = bytes(range(256)) * 5000
    digest = hashlib.sha256(payload).hexdigest()
    reg = _registry(_served(env["tmp"], payload), "toy.bin", sha256=digest)
    path = download_weights("toy", progress=False, registry=reg)  # default: the cache folder
    assert path == env["cache"] / "toy.bin"
    assert path.read_bytes() == payload
    assert _listing(env["cache"]) == ["toy.bin"]  # no temp file left
    assert resolve_weights("toy", registry=reg) == path
    # a verified file is kept: a second call must not fetch (the URL is now dead)
    dead = _registry((env["tmp"] / "gone.bin").as_uri(), "toy.bin", sha256=digest)
    assert download_weights("toy", progress=True, registry=dead) == path


def test_download_bad_hash_raises_and_leaves_nothing(env: dict[str, Path]) -> None:
    payload = b"pretend weights" * 1000
    reg = _registry(_served(env["tmp"], payload), "toy.bin", sha256="0" * 64)
    dest = env["tmp"] / "dl"
    with pytest.raises(WeightsError, match="sha256 .* does not match"):
        download_weights("toy", cache_dir=dest, progress=False, registry=reg)
    assert _listing(dest) == []


def test_download_checks_torch_hub_prefix(env: dict[str, Path]) -> None:
    payload = b"abc" * 999
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    good = _registry(_served(env["tmp"], payload), f"toy-{prefix}.pth")
    dest = env["tmp"] / "dl"
    assert download_weights("toy", cache_dir=dest, progress=False, registry=good).read_bytes() == payload
    wrong = "00000000" if prefix != "00000000" else "11111111"
    bad = _registry(_served(env["tmp"], payload), f"toy-{wrong}.pth")
    with pytest.raises(WeightsError, match="does not match"):
        download_weights("toy", cache_dir=dest, progress=False, registry=bad)
    assert _listing(dest) == [f"toy-{prefix}.pth"]


def test_download_magic_and_unreachable(env: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    dest = env["tmp"] / "dl"
    h5 = b"\x89HDF\r\n\x1a\n" + b"\x00" * 100
    ok = _registry(_served(env["tmp"], h5, "a.h5"), "yamnet.h5", magic=b"\x89HDF\r\n\x1a\n")
    with caplog.at_level(logging.WARNING, logger="emolens.models.weights"):
        assert download_weights("toy", cache_dir=dest, progress=False, registry=ok).read_bytes() == h5
    assert hashlib.sha256(h5).hexdigest() in caplog.text  # no published digest: computed one is logged
    html = _registry(_served(env["tmp"], b"<html>quota exceeded</html>", "b.h5"), "other.h5", magic=b"\x89HDF")
    with pytest.raises(WeightsError, match="bad signature"):
        download_weights("toy", cache_dir=dest, progress=False, registry=html)
    missing = _registry((env["tmp"] / "nowhere.bin").as_uri(), "x.bin", sha256="0" * 64)
    with pytest.raises(WeightsError, match="cannot download .*EMOLENS_WEIGHTS"):
        download_weights("toy", cache_dir=dest, progress=False, registry=missing)
    assert _listing(dest) == ["yamnet.h5"]


def test_corrupt_cached_file_is_replaced(env: dict[str, Path]) -> None:
    payload = b"good" * 100
    reg = _registry(_served(env["tmp"], payload), "toy.bin", sha256=hashlib.sha256(payload).hexdigest())
    _touch(env["cache"] / "toy.bin", b"truncated")
    assert download_weights("toy", progress=False, registry=reg).read_bytes() == payload


# --------------------------------------------------------------------------- load_vggish


def test_load_vggish_random_fallback_is_loud(env: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="emolens.models.weights"):
        with pytest.warns(RandomInitWarning, match=r"VGGish pretrained weights not found: starting from random"):
            model, pretrained = load_vggish()
    assert pretrained is False and isinstance(model, VGGish)
    assert "results are not transfer learning" in caplog.text and "EMOLENS_WEIGHTS" in caplog.text
    with pytest.raises(WeightsNotFoundError):
        load_vggish(allow_random=False)
    with pytest.raises(WeightsError, match="does not exist"):  # explicit typo never falls back
        load_vggish(env["tmp"] / "typo.pth")


def test_load_vggish_pretrained_from_env(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # a small file: each tensor is one random value per output unit, broadcast (stride-0 view)
    g = torch.Generator().manual_seed(5)
    ref = VGGish().eval()
    state = {
        k: (torch.randn(v.shape[0], generator=g) * (0.5 if k.endswith("bias") else 0.05))
        .reshape(-1, *[1] * (v.dim() - 1))
        .expand(v.shape)
        for k, v in ref.state_dict().items()
    }
    ref.load_state_dict(state)
    torch.save(state, env["wdir"] / "vggish-10086976.pth")
    assert (env["wdir"] / "vggish-10086976.pth").stat().st_size < 1_000_000
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(env["wdir"]))
    model, pretrained = load_vggish(allow_random=False)
    assert pretrained is True
    x = torch.randn(1, 1, 96, 64)
    with torch.no_grad():
        want = ref(x)
        assert float(want.abs().max()) > 0.0
        assert torch.equal(model(x), want)
    _touch(env["wdir"] / "vggish-10086976.pth", b"corrupt")
    with pytest.raises(WeightsError, match="cannot read vggish-10086976.pth"):  # corrupt: raise, no fallback
        load_vggish()
