"""The card's --adapt note: what each method did on balanced and steady voices, in words."""

from __future__ import annotations

from emolens.training.default_model import adaptation_note

BASE = {"single": 0.50, "one_single": 0.52, "mean": 0.55, "one_mean": 0.40, "enrol_single": 0.49, "enrol": 0.51,
        "one_enrol_single": 0.50, "one_enrol": 0.52}


def test_verdicts_follow_the_issue_s_rule() -> None:
    note = adaptation_note({**BASE, "gated": 0.518, "one_gated": 0.518, "nap": 0.47, "one_nap": 0.45}, 3)
    assert "emotion: +0.018 balanced, -0.002 one emotion, helps on balanced voices and keeps steady ones within 1 pt." in note
    assert "nap: -0.030 balanced, -0.070 one emotion, does not help on both: it stays opt-in" in note
    assert "(+0.020), and with one emotion per speaker among them (+0.020): helps on both." in note
    assert "mean of 3 draws" in note and "loses 0.120 when a speaker shows one emotion" in note
    lost = adaptation_note({**BASE, "gated": 0.518, "one_gated": 0.505, "nap": 0.47, "one_nap": 0.45}, 3)
    assert "-0.015 one emotion, does not help on both: it stays opt-in" in lost  # more than 1 pt on steady voices
    both = adaptation_note({**BASE, "gated": 0.518, "one_gated": 0.53, "nap": 0.47, "one_nap": 0.45}, 3)
    assert "+0.010 one emotion, helps on both." in both


def test_two_emotion_figure_names_the_corpus_that_loses_most() -> None:
    m = {**BASE, "gated": 0.518, "one_gated": 0.518, "nap": 0.47, "one_nap": 0.45, "two_single": 0.486,
         "two_gated": 0.489}
    per = {"emodb": {"two_single": 0.664, "two_gated": 0.685}, "turev": {"two_single": 0.418, "two_gated": 0.384},
           "ased": {"two_single": 0.468, "two_gated": 0.494}}
    note = adaptation_note(m, 3, per)
    assert "stretch of one caller): +0.003; most lost on turev: -0.034. Before stop 23" in note
    gains = {c: {"two_single": 0.4, "two_gated": 0.45} for c in per}
    assert "one caller): +0.003. Before" in adaptation_note(m, 3, gains)  # nobody lost: no corpus named
    assert "two emotions" not in adaptation_note({**BASE, "gated": 0.518, "one_gated": 0.518, "nap": 0.47,
                                                  "one_nap": 0.45}, 3)  # tables measured before stop 24
