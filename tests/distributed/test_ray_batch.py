"""``emolens predict --engine ray``: the Ray Data job gives the answers of single-process
``predict`` (and the segments of ``timeline`` for long recordings), records a corrupt or
missing file as an error row, and a killed job re-run with the same output records every
file exactly once.

One local Ray session (started like the CLI starts it, on this machine's cores) is shared
by the module; the real clips come from ../shared/data (emodb-original, ravdess).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

try:
    import ray  # noqa: F401
    import ray.data  # noqa: F401
except ImportError:  # pragma: no cover - the [ray] extra is not installed
    print("tests/distributed/test_ray_batch.py: skipped, ray[data] is not installed (pip install 'emolens[ray]')")
    pytest.skip("ray[data] is not installed (pip install 'emolens[ray]')", allow_module_level=True)

import pyarrow.parquet as pq  # noqa: E402

from emolens.distributed.ray_batch import (  # noqa: E402
    RayBatchConfig, _checkpoint, collect_inputs, file_id, init_ray, read_results, run_ray_batch,
)
from emolens.errors import EmolensError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared")).resolve()
EMODB = SHARED / "data" / "emodb-original" / "wav"
RAVDESS = SHARED / "data" / "ravdess"


def _clips(n_emodb: int, n_ravdess: int) -> list[Path]:
    if not EMODB.is_dir() or not RAVDESS.is_dir():
        pytest.skip(f"real clips not found under {SHARED}/data (emodb-original, ravdess); set EMOLENS_SHARED")
    return sorted(EMODB.glob("*.flac"))[:n_emodb] + sorted(RAVDESS.glob("Actor_0[12]/*.flac"))[:n_ravdess]


@pytest.fixture(scope="module")
def rec():
    from emolens.inference import EmotionRecognizer, resolve_model

    return EmotionRecognizer.from_dir(resolve_model(None), backend="onnx", threads=1)


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray for the module, started as ``emolens predict --engine ray`` starts it."""
    import ray

    init_ray(RayBatchConfig(workers=2))
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """12 real clips, a 70-s recording made of clips and silence, a corrupt and a missing file."""
    d = tmp_path_factory.mktemp("ray-in")
    clips = _clips(8, 4)
    parts = []
    for c in clips * 3:
        x, sr = sf.read(c, dtype="float32")
        assert sr == 16000
        parts += [x, np.zeros(sr // 2, np.float32)]
    long = np.concatenate(parts)[: 70 * 16000]
    assert len(long) == 70 * 16000
    sf.write(d / "long.wav", long, 16000)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 20)
    files = clips + [d / "long.wav", d / "corrupt.wav", d / "missing.flac"]
    lst = d / "files.txt"
    lst.write_text("# a file list\n" + "\n".join(str(f) for f in files) + "\n")
    return {"dir": d, "files": files, "list": lst, "long": d / "long.wav"}


@pytest.fixture(scope="module")
def job(ray_session, rec, inputs, tmp_path_factory):
    """One Ray job over the inputs (2 model actors, 4 files per shard; the 70-s file
    streamed in 20-s blocks and given segments): ``(summary, rows by file)``."""
    out = tmp_path_factory.mktemp("ray-out") / "results"
    cfg = RayBatchConfig(workers=2, files_per_batch=4, stream_over=30.0, block_seconds=20.0, progress=False)
    summary = run_ray_batch(rec, [inputs["list"]], out, cfg)
    t = read_results(out)
    rows = t.to_pylist()
    assert len({r["file"] for r in rows}) == len(rows), "a file was recorded twice"
    return summary, {r["file"]: r for r in rows}, out


@pytest.fixture(scope="module")
def local(rec, inputs) -> dict:
    """Single-process ``predict`` (emolens.batch) on the same files: file -> record."""
    from emolens.batch import BatchConfig, iter_file_results

    res = {}
    for r in iter_file_results(rec, inputs["files"], BatchConfig(workers=1, files_per_batch=8)):
        res[str(r.path)] = r.analysis.as_dict() if r.analysis is not None else {"error": r.error}
    return res


# --------------------------------------------------------------------------- without Ray running
def test_collect_inputs_reads_folders_lists_and_manifests(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.wav", "a/b/y.flac", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert collect_inputs([tmp_path / "a"]) == [tmp_path / "a/b/y.flac", tmp_path / "a/x.wav"]
    (tmp_path / "m.csv").write_text("path,label\na/x.wav,sad\n/abs/z.wav,happy\n")
    assert collect_inputs([tmp_path / "m.csv"]) == [tmp_path / "a/x.wav", Path("/abs/z.wav")]
    pq.write_table(pa.table({"file": ["a/b/y.flac", "a/x.wav"]}), tmp_path / "m.parquet")
    (tmp_path / "l.txt").write_text("# list\na/x.wav\n\n")
    # duplicates across inputs are dropped, order kept
    assert collect_inputs([tmp_path / "m.parquet", tmp_path / "l.txt"]) == [tmp_path / "a/b/y.flac", tmp_path / "a/x.wav"]
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(EmolensError, match="'path'"):
        collect_inputs([tmp_path / "bad.csv"])


def test_config_is_validated():
    with pytest.raises(EmolensError, match="--workers"):
        RayBatchConfig(workers=0)
    with pytest.raises(EmolensError, match="--format"):
        RayBatchConfig(format="csv")


# --------------------------------------------------------------------------- one Ray job
@pytest.mark.slow
def test_ray_results_equal_single_process_predict(job, local, inputs, rec):
    summary, rows, _ = job
    assert summary.files == len(inputs["files"]) == 15 and summary.skipped == 0 and summary.classified == 15
    assert set(rows) == {str(f) for f in inputs["files"]}
    good = [f for f, r in local.items() if "error" not in r]
    assert len(good) == 13
    for f in good:
        a, b = local[f], rows[f]
        assert b["error"] is None, b["error"]
        for k in ("label", "emotion", "speech", "probabilities_meaningful", "patches", "patches_kept", "patches_voting",
                  "duration_s", "notes", "speech_fraction", "uncertain", "adapted"):
            assert b[k] == a[k], (f, k, a[k], b[k])
        # the 70-s file is decoded in 20-s blocks here (stream_over=30 s): its patches are bit-identical to
        # predict's whole-file ones, but a prosody head's descriptors are computed block by block (each
        # block's voicing floor, pitch at block edges), which moves its probabilities by about 1e-3
        tol = 5e-3 if getattr(rec, "needs_prosody", False) and f == str(inputs["long"]) else 1e-5
        np.testing.assert_allclose([b["probabilities"][c] for c in a["probabilities"]], list(a["probabilities"].values()),
                                   atol=tol, rtol=0)
        assert abs(b["probability"] - a["probability"]) <= tol
        assert b["size_bytes"] == os.path.getsize(f) and b["id"] == file_id(f)[0]
    # the 12 clips are short: no segments; the 70-s recording has them
    assert all(rows[str(f)]["segments"] is None for f in inputs["files"][:12])
    assert rows[str(inputs["long"])]["duration_s"] == 70.0


@pytest.mark.slow
def test_corrupt_and_missing_files_are_error_rows_with_predicts_message(job, local, inputs):
    _, rows, _ = job
    for name in ("corrupt.wav", "missing.flac"):
        f = str(inputs["dir"] / name)
        r = rows[f]
        assert r["label"] is None and r["probabilities"] is None
        assert r["error"] == local[f]["error"] and "\n" not in r["error"], r["error"]
    assert "cannot decode" in rows[str(inputs["dir"] / "corrupt.wav")]["error"]
    assert "no such file" in rows[str(inputs["dir"] / "missing.flac")]["error"]
    assert job[0].errors == 2


@pytest.mark.slow
def test_long_recording_gets_the_timeline_segments(job, rec, inputs):
    from emolens.timeline import TimelineConfig, compute_timeline

    segs = job[1][str(inputs["long"])]["segments"]
    tl = compute_timeline(rec, inputs["long"], TimelineConfig(block_seconds=20.0))
    want = [s.as_dict(rec.classes) for s in tl.segments]
    assert len(segs) == len(want) > 3
    assert [s["label"] for s in segs] == [s["label"] for s in want]
    assert [s["patches"] for s in segs] == [s["patches"] for s in want]
    np.testing.assert_allclose([(s["start_s"], s["end_s"]) for s in segs], [(s["start_s"], s["end_s"]) for s in want], atol=1e-3)
    np.testing.assert_allclose([list(s["probabilities"].values()) for s in segs],
                               [list(s["probabilities"].values()) for s in want], atol=1e-5)
    assert segs[0]["start_s"] == 0.0 and abs(segs[-1]["end_s"] - 70.0) < 1e-3


@pytest.mark.slow
def test_rerun_with_the_same_output_skips_everything(job, rec, inputs):
    summary, rows, out = job
    again = run_ray_batch(rec, [inputs["list"]], out, RayBatchConfig(workers=2, files_per_batch=4, stream_over=30.0,
                                                                   block_seconds=20.0, progress=False))
    assert (again.files, again.skipped, again.classified) == (15, 15, 0)
    assert read_results(out).num_rows == 15


@pytest.mark.slow
def test_output_folder_is_tied_to_one_format(job, rec, inputs):
    with pytest.raises(EmolensError, match="another model or format"):
        run_ray_batch(rec, [inputs["list"]], job[2], RayBatchConfig(format="jsonl", progress=False))


@pytest.mark.slow
def test_jsonl_shards_hold_the_same_records(ray_session, rec, inputs, job, tmp_path):
    files = [inputs["files"][0], inputs["files"][9], inputs["dir"] / "corrupt.wav"]
    s = run_ray_batch(rec, files, tmp_path / "j", RayBatchConfig(format="jsonl", files_per_batch=2, progress=False))
    assert (s.classified, s.errors) == (3, 1)
    recs = [json.loads(ln) for f in sorted((tmp_path / "j").glob("*.jsonl")) for ln in f.read_text().splitlines()]
    assert sorted(r["file"] for r in recs) == sorted(str(f) for f in files)
    for r in recs:
        want = {k: v for k, v in job[1][r["file"]].items() if v is not None}
        assert r == want
    bad = next(r for r in recs if r["file"].endswith("corrupt.wav"))
    assert set(bad) == {"id", "file", "error", "size_bytes", "mtime_ns"}


# --------------------------------------------------------------------------- kill and resume
def _shards(out: Path) -> list[Path]:
    return sorted(out.glob("*.parquet"))


@pytest.mark.slow
def test_killed_job_resumes_and_records_every_file_once(ray_session, rec, tmp_path):
    """The CLI in a subprocess is killed (SIGKILL, its whole process group: driver and
    local Ray) after some shards are written; the re-run records every file once."""
    files = _clips(12, 12)
    lst = tmp_path / "files.txt"
    lst.write_text("\n".join(map(str, files)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "emolens.cli.main", "predict", "--engine", "ray", str(lst), "--out", str(out),
           "--batch-files", "2", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    deadline = time.time() + 240
    try:  # kill once two shards are committed (a third may be half-written)
        while len(_checkpoint(out)[0]) < 4 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the job ended before it could be killed: " + proc.stdout.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before, _ = _checkpoint(out)
    assert 4 <= len(before) < len(files), len(before)
    # re-run through the entry point (in-process, on the module's Ray session)
    from emolens.cli.main import main

    assert main(["predict", "--engine", "ray", str(lst), "--out", str(out), "--batch-files", "4", "--quiet", "--json"]) == 0
    after = read_results(out)
    ids = after.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(files), (len(ids), len(set(ids)))
    assert set(after.column("file").to_pylist()) == {str(f) for f in files}
    assert before <= set(ids)
    assert all(e is None for e in after.column("error").to_pylist())


@pytest.mark.slow
def test_a_shard_whose_commit_was_cut_short_is_redone_once(ray_session, rec, tmp_path):
    """Two-phase commit: a shard written but not committed (killed in between; here its
    checkpoint is turned back into a pending one and the shard truncated) is deleted by
    the re-run and its files classified again, each recorded once."""
    files = _clips(3, 3)
    out = tmp_path / "out"
    cfg = RayBatchConfig(files_per_batch=2, files_per_task=2, progress=False)
    assert run_ray_batch(rec, files, out, cfg).classified == 6
    ckpt = sorted((out / "_emolens" / "checkpoint").glob("*.parquet"))
    assert len(ckpt) == len(_shards(out)) == 3
    victim = ckpt[1]
    lost = set(pq.read_table(victim).column("id").to_pylist())
    victim.rename(victim.with_name(victim.stem + ".pending.parquet"))
    shard = next(f for f in _shards(out) if f.name.startswith(victim.stem))
    shard.write_bytes(shard.read_bytes()[:100])  # half-written
    s = run_ray_batch(rec, files, out, cfg)
    assert (s.skipped, s.classified, s.errors) == (6 - len(lost), len(lost), 0)
    t = read_results(out)
    ids = t.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 6
    assert not list((out / "_emolens" / "checkpoint").glob("*.pending.parquet"))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_dedupe_shards_keeps_one_row_per_id(tmp_path, fmt):
    """A file recorded in two shards (a retried write, a missed pending shard) is kept once,
    in the first shard; a shard left empty is deleted; a rewrite cut short is cleaned up and
    never read as a shard."""
    import pyarrow as pa

    from emolens.distributed.ray_batch import dedupe_shards

    shards = {"a": ["f1", "f2"], "b": ["f2", "f3", "f4"], "c": ["f1", "f4"]}
    for name, ids in shards.items():
        rows = [{"id": i, "label": f"{name}-{i}"} for i in ids]
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"{name}.parquet")
        else:
            (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / f"_dedupe-b.{fmt}").write_text("half written")  # a kill during an earlier rewrite
    assert dedupe_shards(tmp_path, fmt) == 3
    t = read_results(tmp_path, fmt)
    got = dict(zip(t.column("id").to_pylist(), t.column("label").to_pylist()))
    assert t.num_rows == 4 and got == {"f1": "a-f1", "f2": "a-f2", "f3": "b-f3", "f4": "b-f4"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a.{fmt}", f"b.{fmt}"]  # c held only repeats
    assert dedupe_shards(tmp_path, fmt) == 0  # idempotent
