"""emolens.batch: how a folder run shares the cores between decoding and the model."""

import pytest

from emolens.batch import DECODE_SHARE, BatchConfig, decode_share, split_threads


@pytest.mark.parametrize("cores, share, threads, workers, expected", [
    (2, DECODE_SHARE["default"], None, None, (1, 1)),   # measured best on 2 cores (not 2 + 2)
    (2, DECODE_SHARE["whisper"], None, None, (1, 2)),   # the Whisper stream: decoding is most of the work
    (1, DECODE_SHARE["default"], None, None, (1, 1)),   # never 0 on either side
    (16, DECODE_SHARE["default"], None, None, (8, 8)),
    (16, DECODE_SHARE["whisper"], None, None, (2, 14)),
    (2, 0.5, 2, None, (2, 1)),                          # the user's --threads kept, the rest decodes
    (8, 0.5, 3, None, (3, 5)),
    (2, 0.5, None, 3, (1, 3)),                          # the user's --workers kept, even above the cores
    (4, 0.5, 3, 3, (3, 3)),                             # both given: both kept
])
def test_split_threads(cores, share, threads, workers, expected):
    assert split_threads(cores, share, threads, workers) == expected


def test_split_threads_uses_every_core_without_oversubscribing_the_model():
    for cores in range(1, 33):
        for share in DECODE_SHARE.values():
            t, w = split_threads(cores, share)
            assert t >= 1 and w >= 1
            assert t + w == max(cores, 2) or t == 1  # all cores busy; only the decoding side may exceed them


def test_decode_share_reads_the_model_json():
    assert decode_share({"head": {"whisper": {"layer": [3, 4, 5]}}}) == DECODE_SHARE["whisper"]
    assert decode_share({"head": {"prosody": {}}}) == DECODE_SHARE["default"]
    assert decode_share({}) == DECODE_SHARE["default"]
    assert BatchConfig().files_per_batch == 8


def test_predict_threads_splits_for_onnx_and_keeps_every_core_for_torch():
    from emolens.batch import predict_threads

    whisper = {"head": {"whisper": {"dim": 1024}}}
    assert predict_threads({}, "onnx", cores=2) == (1, 1)
    assert predict_threads(whisper, "onnx", cores=2) == (1, 2)
    assert predict_threads({}, "onnx", threads=2, cores=2) == (2, 1)  # the user's --threads kept
    assert predict_threads({}, "torch", cores=2) == (None, 2)  # torch: all cores (None), 2 decoding threads
    assert predict_threads({}, "torch", threads=1, workers=3, cores=2) == (1, 3)
