"""The method registry on tiny CNNs with known answers (see conftest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emolens.explain.methods import (DEFAULT_METHOD, MEASURED_AS, METHODS, measured_faithfulness, region_note, region_spec,
                                     run_method, scored)


def _opts(name, model):
    layer = {"layer": model.act2 if hasattr(model, "act2") else model.features}
    return {
        "gradcam": layer, "hirescam": layer, "gradcampp": layer,
        "lime": {"n_samples": 40}, "kernelshap": {"n_samples": 40}, "ig": {"n_steps": 4},
    }.get(name, {})


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_returns_finite_maps_on_the_input_grid(small_cnn, name):
    x = torch.randn(3, 1, 96, 64, generator=torch.Generator().manual_seed(0))
    opts = _opts(name, small_cnn)
    if name == "hirescam":
        opts["relu"] = False  # its positive part happens to be empty for this random net
    att = run_method(name, small_cnn, x, 2, **opts)
    assert att.maps.shape == (3, 96, 64) and att.maps.dtype == np.float32
    assert np.isfinite(att.maps).all() and np.abs(att.maps).max() > 0


@pytest.mark.parametrize("name", ["gradcam", "hirescam", "gradcampp", "ig", "gxi", "occlusion", "kernelshap"])
def test_methods_find_the_region_the_score_depends_on(region_net, make_region_patches, region_mask, name):
    x = make_region_patches(2)
    opts = _opts(name, region_net)
    if name in ("gradcam", "hirescam", "gradcampp", "ig", "gxi"):
        opts["score"] = "logit"  # 2 classes [s, -s]: log-softmax would also see class 1
    if name == "kernelshap":
        opts["n_samples"] = 200
    if name == "occlusion":  # windows aligned with the region's edges: no leak past them
        opts.update(window=(8, 8), stride=(8, 8))
    m = np.abs(run_method(name, region_net, x, 0, **opts).maps)
    assert m[:, region_mask].sum() / m.sum() > 0.9


def _hooked(model, layer, x, target):
    store = {}

    def hook(_m, _i, out):
        out.retain_grad()
        store["a"] = out

    h = layer.register_forward_hook(hook)
    try:
        model(x)[:, target].sum().backward()
    finally:
        h.remove()
    return store["a"].detach(), store["a"].grad.detach()


def test_hirescam_is_the_channel_sum_of_gradient_times_activation(small_cnn):
    x = torch.randn(4, 1, 96, 64, generator=torch.Generator().manual_seed(3))
    a, g = _hooked(small_cnn, small_cnn.act2, x, 2)
    ref = F.interpolate(torch.relu((a * g).sum(1, keepdim=True)), size=(96, 64), mode="bilinear")[:, 0].numpy()
    got = run_method("hirescam", small_cnn, x, 2, layer=small_cnn.act2, score="logit").maps
    assert ref.max() > 0
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    # with a global-average-pool + linear head the gradient is constant over cells,
    # so Grad-CAM and HiResCAM coincide (Draelos & Fan 2020)
    gc = run_method("gradcam", small_cnn, x, 2, layer=small_cnn.act2, score="logit").maps
    np.testing.assert_allclose(gc, got, rtol=1e-4, atol=1e-6)


def test_gradcampp_matches_its_closed_form(small_cnn):
    x = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(4))
    a, g = _hooked(small_cnn, small_cnn.act2, x, 0)
    # constant gradient per channel (GAP head): alpha = 1 / (2 + sum_ij A * g) per channel
    alpha = g**2 / (2 * g**2 + a.sum((2, 3), keepdim=True) * g**3)
    alpha = torch.nan_to_num(alpha)
    w = (alpha * torch.relu(g)).sum((2, 3), keepdim=True)
    ref = F.interpolate(torch.relu((w * a).sum(1, keepdim=True)), size=(96, 64), mode="bilinear")[:, 0].numpy()
    got = run_method("gradcampp", small_cnn, x, 0, layer=small_cnn.act2, score="logit").maps
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-7)


def test_integrated_gradients_completeness(small_cnn):
    # attributions sum to score(x) - score(patch-mean baseline)
    x = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(5))
    att = run_method("ig", small_cnn, x, 1, n_steps=64)
    f = scored(small_cnn, "log_softmax")
    with torch.no_grad():
        base = x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
        delta = (f(x)[:, 1] - f(base)[:, 1]).numpy()
    np.testing.assert_allclose(att.maps.sum(axis=(1, 2)), delta, rtol=0.02, atol=1e-3)


def test_gradient_x_input_of_a_linear_model_is_weight_times_centred_input():
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(96 * 64, 2))
    x = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(6))
    att = run_method("gxi", lin, x, 1, score="logit")
    w = lin[1].weight[1].detach().reshape(96, 64).numpy()
    ref = w[None] * (x[:, 0] - x.mean(dim=(1, 2, 3))[:, None, None]).numpy()
    np.testing.assert_allclose(att.maps, ref, rtol=1e-5, atol=1e-7)


def test_scored_log_softmax_and_unknown_method(small_cnn):
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        np.testing.assert_allclose(scored(small_cnn, "log_softmax")(x).exp().sum(1).numpy(), 1.0, rtol=1e-5)
        assert scored(small_cnn, "logit") is small_cnn
    with pytest.raises(ValueError, match="unknown method"):
        run_method("saliency-magic", small_cnn, x, 0)
    with pytest.raises(ValueError, match="score"):
        scored(small_cnn, "energy")


def test_default_method_is_registered_and_was_measured():
    assert DEFAULT_METHOD in METHODS
    meas = measured_faithfulness()
    assert meas, "faithfulness.json must ship with the package"
    row = {c: r["table"][MEASURED_AS[DEFAULT_METHOD]] for c, r in meas["corpora"].items()}
    for corpus, e in row.items():
        assert 0 <= e["cell_beats_random"] <= 1
        assert e["cell_deletion"] < meas["corpora"][corpus]["table"]["random"]["cell_deletion"]


def test_shipped_faithfulness_describes_the_shipped_model_and_its_default():
    """faithfulness.json is keyed by the weight hash: regenerate it with
    `python benchmarks/faithfulness.py --ship` whenever the shipped model changes."""
    import json
    import re

    from emolens.explain.region_attribution import DEFAULT_REGION_METHOD
    from emolens.explain.regions import DEFAULT_REGIONS
    from emolens.models.weights import sha256_file
    from emolens.resources import default_model_dir

    meas = measured_faithfulness()
    assert meas["model_sha256"] == sha256_file(default_model_dir() / "model.safetensors"), (
        "faithfulness.json describes another model: run `python benchmarks/faithfulness.py --ship`")
    text = json.dumps(meas)
    assert not re.search(r'"(/|[A-Za-z]:\\\\)[^"]*"', text), "faithfulness.json must not record local paths"
    assert set(meas["corpora"]) == {"emodb-original", "ravdess", "ased", "nemo", "turev", "casia"}
    spec = region_spec(DEFAULT_REGION_METHOD, DEFAULT_REGIONS)
    assert meas["default_spec"] == spec  # the shipped default is the one the table chose
    grid = DEFAULT_REGIONS.time_unit  # the benchmark's name of the grid the spec was scored on
    if ":" in spec:
        opts = dict(kv.split("=") for kv in spec.split(":", 1)[1].split(";"))
        grid += f":block={opts.get('block')};bands={opts.get('bands')}"
    for corpus, res in meas["corpora"].items():
        e = res["table"][spec]
        rand = res["table"][f"random@{grid}"]
        assert 0 <= e["region_beats_random"] <= 1 and e["region_deletion"] < rand["region_deletion"], corpus
    assert region_note(DEFAULT_REGION_METHOD, DEFAULT_REGIONS).count("%") == 6
    assert region_spec("occlusion", "syllable") == "r.occlusion@syllable"


def test_every_method_has_a_faithfulness_note():
    from emolens.explain.methods import faithfulness_note

    measured = {n for n in METHODS if any(MEASURED_AS.get(n, n) in r["table"] for r in measured_faithfulness()["corpora"].values())}
    assert {DEFAULT_METHOD, "gradcam"} <= measured
    for name in METHODS:
        note = faithfulness_note(name)
        assert note.startswith(METHODS[name].title), name
        if name in measured:
            assert "% of clips" in note and "sanity" in note and "shipped model" in note, name
        else:
            assert "not measured on the shipped model" in note, name
    assert faithfulness_note("not-a-method") == ""


def test_a_model_folder_gets_only_its_own_measurement(tmp_path):
    """measured_faithfulness(DIR): the folder's own file, else the default's, each only for the
    weights it was measured on; the notes say whose figures they quote."""
    import json
    import shutil

    from emolens.explain.methods import faithfulness_note
    from emolens.models.weights import sha256_file
    from emolens.resources import default_model_dir

    shipped = measured_faithfulness()
    default = tmp_path / "default"
    shutil.copytree(default_model_dir(), default)
    assert measured_faithfulness(default) == shipped  # the same weights: the package's figures
    assert "measured on this model" in faithfulness_note(DEFAULT_METHOD, default)
    assert "measured on the shipped model" in faithfulness_note(DEFAULT_METHOD)

    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    assert measured_faithfulness(other) == {}  # never the default's figures for other weights
    assert faithfulness_note(DEFAULT_METHOD, other).endswith(
        "not measured on this model (benchmarks/faithfulness.py --ship --model DIR measures it)")
    assert region_note("occlusion", "fixed", other) == ""
    assert measured_faithfulness(tmp_path / "missing") == {}

    own = dict(shipped, model_sha256=sha256_file(other / "model.safetensors"))
    spec = MEASURED_AS[DEFAULT_METHOD]
    for r in own["corpora"].values():
        r["table"] = {spec: dict(r["table"][spec], cell_beats_random=0.5)}
    (other / "faithfulness.json").write_text(json.dumps(own))
    assert measured_faithfulness(other)["model_sha256"] == own["model_sha256"]
    note = faithfulness_note(DEFAULT_METHOD, other)
    assert note.count("50%") == len(own["corpora"]) and "measured on this model" in note

    (other / "model.safetensors").write_bytes(b"retrained weights")  # its old figures no longer apply
    assert measured_faithfulness(other) == {}
