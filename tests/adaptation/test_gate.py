"""Method ``gated``: the spread gate that tells a voice heard in several emotions from a steady one."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.adaptation.store import fit_from_corpora, gate_from_work
from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter, SpreadGate

D = 12
MEANS = np.zeros((4, D))
MEANS[np.arange(4), np.arange(4)] = 3.0  # emotion k moves a voice 3 units along axis k


def _clips(rng, n_voices: int, per: int, name: str, base: float = 0.0):
    """Clip rows ``(N, D)`` of voices with large random offsets, each heard ``per`` times per emotion."""
    rows, y, v = [], [], []
    for s in range(n_voices):
        off = base + rng.normal(0, 5.0, D)
        for k in range(4):
            rows.append(off + MEANS[k] + rng.normal(0, 1.0, (per, D)))
            y += [k] * per
            v += [f"{name}/{s}"] * per
    return np.concatenate(rows), np.array(y), np.array(v)


def _one_emotion(y, v, rng):
    return np.concatenate([np.flatnonzero((v == s) & (y == rng.choice(4))) for s in np.unique(v)])


def test_gate_fires_on_a_new_corpus_s_voices_in_four_emotions_and_not_on_steady_ones() -> None:
    rng = np.random.default_rng(0)
    gate = SpreadGate.fit([_clips(rng, 10, 5, f"c{i}") for i in range(3)])
    assert gate.directions.shape == (D, 3)
    rows, y, v = _clips(rng, 8, 5, "new", base=10.0)  # a new corpus, every voice moved by 10
    assert all(gate.fires(rows[v == s]) for s in np.unique(v))
    k = _one_emotion(y, v, rng)
    assert not any(gate.fires(rows[k][v[k] == s]) for s in np.unique(v))
    assert gate.probability(rows[:1]) == 0.0  # one clip: no spread to read


def test_directions_are_in_units_of_one_emotion_s_spread() -> None:
    from emolens.adaptation.transform import _centred, _emotion_space

    rows, y, v = _clips(np.random.default_rng(1), 10, 5, "c")
    d = _emotion_space(rows, y, v)
    t = _centred(rows, v) @ d
    cells = np.char.add(v, y.astype(str))
    assert np.isclose((_centred(t, cells) ** 2).sum(1).mean(), 1.0)
    assert (np.linalg.norm(d[:4], axis=0) / np.linalg.norm(d, axis=0)).min() > 0.9  # the emotion axes, not the voices'


def test_two_emotion_draw_keeps_all_clips_of_two_emotions_per_voice() -> None:
    from emolens.adaptation.transform import two_emotion_draw

    y = np.array([0, 0, 1, 1, 2, 3, 3, 0, 1, 2, 2, 2])
    v = np.array(["a"] * 7 + ["b"] * 3 + ["c"] * 2)  # c was heard in one emotion only
    for seed in range(5):
        k = two_emotion_draw(y, v, np.random.default_rng(seed))
        assert np.all(np.diff(k) > 0) and len(np.unique(k)) == len(k)
        for s in ("a", "b"):
            kept = set(y[k][v[k] == s])
            assert len(kept) == 2
            assert np.sum(v[k] == s) == np.isin(y[v == s], list(kept)).sum()  # every clip of the two emotions
        assert set(y[k][v[k] == "c"]) == {2} and np.sum(v[k] == "c") == 2


def test_a_gate_that_learns_two_emotion_voices_as_negatives_holds_them_back() -> None:
    """``negatives=("one", "two")`` (measured and dropped): on a new corpus the default gate opens for
    voices heard in two emotions, the stricter one does not; it also opens less on four-emotion voices."""
    from emolens.adaptation.transform import two_emotion_draw

    rng = np.random.default_rng(0)
    parts = [_clips(rng, 10, 5, f"c{i}") for i in range(3)]
    loose, strict = SpreadGate.fit(parts), SpreadGate.fit(parts, negatives=("one", "two"))
    rows, y, v = _clips(rng, 8, 5, "new", base=10.0)
    k = two_emotion_draw(y, v, rng)
    opened = lambda g, r, vv: np.mean([g.fires(r[vv == s]) for s in np.unique(vv)])  # noqa: E731
    assert opened(loose, rows[k], v[k]) == 1.0 and opened(strict, rows[k], v[k]) == 0.0
    assert opened(loose, rows, v) == 1.0 and opened(strict, rows, v) < 0.5


def test_gate_needs_two_corpora() -> None:
    with pytest.raises(ValueError, match="two or more training corpora"):
        SpreadGate.fit([_clips(np.random.default_rng(2), 4, 3, "c")])
    parts = [_clips(np.random.default_rng(3), 4, 3, f"c{i}") for i in range(2)]
    with pytest.raises(ValueError, match="use one or more of one, two"):
        SpreadGate.fit(parts, negatives=("three",))


class _Corpus:
    """What fit_from_corpora reads: patch features of one stream, 2 patches per clip."""

    def __init__(self, rows, y, v, name):
        self.name, self.classes = name, ["a", "b", "c", "d"]
        self.feats = {"s": np.repeat(rows, 2, 0).astype(np.float32)}
        self.utt = np.repeat(np.arange(len(rows)), 2)
        self.speech = np.ones(len(self.utt), bool)
        self.y, self.speakers = y, np.array([s.split("/")[1] for s in v])


def test_gated_offsets_shift_only_the_voices_the_gate_lets_through_and_survive_storage() -> None:
    rng = np.random.default_rng(3)
    corpora = [_Corpus(*_clips(rng, 8, 4, f"c{i}"), f"c{i}") for i in range(3)]
    adapter = fit_from_corpora(corpora, ["s"], AdaptConfig(method="gated", shrink_seconds=0.0))
    assert adapter.gate is not None
    rows, y, v = _clips(rng, 2, 4, "t", base=10.0)
    k = np.concatenate([np.flatnonzero(v == "t/0"), np.flatnonzero((v == "t/1") & (y == 2))])  # voice 1: one emotion
    rows, v = rows[k], v[k]
    feats = {"s": np.repeat(rows, 2, 0)}
    clips = np.repeat(np.arange(len(rows)), 2)
    groups = np.repeat((v == "t/1").astype(int), 2)
    voting, secs = np.ones(len(clips), bool), np.array([10.0, 10.0])
    assert list(adapter.gate_fires(feats, groups, voting, clips)) == [True, False]
    off = adapter.offsets(feats, groups, voting, secs, clips=clips)["s"]
    np.testing.assert_allclose(off[0], rows[v == "t/0"].mean(0) - adapter.streams["s"].mean, atol=1e-4)
    assert np.all(off[1] == 0)  # the steady voice keeps its emotion
    with pytest.raises(ValueError, match="needs the clip of every patch"):
        adapter.offsets(feats, groups, voting, secs)
    back = SpeakerAdapter.from_arrays(adapter.to_arrays(), adapter.config)
    np.testing.assert_array_equal(back.gate.directions, adapter.gate.directions)
    assert back.gate.threshold == adapter.gate.threshold and list(back.streams) == ["s"]
    np.testing.assert_allclose(back.offsets(feats, groups, voting, secs, clips=clips)["s"], off)
    back.gate = None
    with pytest.raises(ValueError, match="no spread gate"):
        back.offsets(feats, groups, voting, secs, clips=clips)


def test_gate_from_one_corpus_holds_out_thirds_of_its_speakers() -> None:
    rng = np.random.default_rng(4)
    c = _Corpus(*_clips(rng, 9, 4, "c"), "c")
    adapter = SpeakerAdapter.fit(c.feats, c.utt, c.speech, c.speakers, c.y, np.arange(len(c.y)), AdaptConfig())
    gate = gate_from_work(adapter, c.feats, c.utt, c.speech, c.y, c.speakers, np.full(len(c.y), "c"))
    rows, y, v = _clips(rng, 4, 4, "new")
    assert all(gate.fires(rows[v == s]) for s in np.unique(v))
    with pytest.raises(ValueError, match="three or more speakers"):
        one = c.speakers == c.speakers[0]
        gate_from_work(adapter, {"s": c.feats["s"][np.repeat(one, 2)]}, np.repeat(np.arange(one.sum()), 2),
                       np.ones(2 * one.sum(), bool), c.y[one], c.speakers[one], np.full(one.sum(), "c"))


def test_adapt_refuses_gated_statistics_without_a_gate_in_one_line() -> None:
    from types import SimpleNamespace

    from emolens.adaptation.runtime import require_adapter
    from emolens.errors import ModelError

    rec = SimpleNamespace(adapter=SpeakerAdapter(AdaptConfig(method="gated")), normalize="none", model_dir="m")
    with pytest.raises(ModelError, match=r"^m's adaptation statistics have no spread gate .*fit_for_model\(WORK, MODEL\)"):
        require_adapter(rec)
    assert require_adapter(rec, unlabelled=False) is rec.adapter  # --neutral enrolment needs no gate
    rec.adapter.config = AdaptConfig(method="nap")
    assert require_adapter(rec) is rec.adapter
