"""The Explore and Sensitivity tabs' tools for engineers (issue 17): a pinned reference in
the probe plot (app/views/pinning.py), the model's cost (app/state/model_cost.py), the 'Copy as CLI /
Python' card and the sensitivity CSV buttons."""

from __future__ import annotations

import csv
import io
import json
import struct

import numpy as np
import pytest
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: F401 - shared fixture

from app.state import catalog, model_cost
from app.state.explore import QUANTILE_LEVELS, ExploreResult, ExploreState
from app.views.pinning import Pin, settings_text

pn = pytest.importorskip("panel")


def _result(shape=(4,), n_t=6, preview=False) -> ExploreResult:
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(n_t, *shape))
    levels = np.array(QUANTILE_LEVELS)
    quantiles = mean[None] + (levels - 0.5)[(...,) + (None,) * (1 + len(shape))]
    return ExploreResult(
        t=np.linspace(0, 1, n_t), mean=mean, std=np.ones_like(mean), levels=levels,
        quantiles=quantiles, samples=mean[None], latent_mean=np.zeros((n_t, 2)),
        latent_quantiles=np.zeros((len(levels), n_t, 2)), latent_samples=np.zeros((1, n_t, 2)),
        forcing=np.zeros((n_t, 1)), mu=np.array([0.03]), seconds=0.01, preview=preview,
        inputs={"model_path": "/m", "mu": {"nu": 0.03},
                "forcing": {"u_left": {"family": "sine", "amplitude": 2.0}}})


def test_a_pin_keeps_the_mean_and_the_90_percent_band():
    r = _result()
    pin = Pin.of(r, probe=2)
    t, mean, lo, hi = pin.series(3)
    np.testing.assert_array_equal(t, r.t)
    np.testing.assert_allclose(mean, r.mean[:, 3], rtol=1e-6)
    np.testing.assert_allclose(lo, r.quantile(0.05)[:, 3], rtol=1e-6)
    np.testing.assert_allclose(hi, r.quantile(0.95)[:, 3], rtol=1e-6)
    assert pin.label == "nu = 0.03 · u_left: sine(amplitude=2)" == settings_text(r.inputs)
    assert pin.series(4) is None


def test_a_large_field_keeps_only_the_pinned_probe():
    r = _result(shape=(3, 5), n_t=4)
    pin = Pin.of(r, probe=7, max_values=10)
    assert pin.probe == 7 and pin.mean.shape == (4, 1)
    np.testing.assert_allclose(pin.series(7)[1], r.mean.reshape(4, -1)[:, 7], rtol=1e-6)
    assert pin.series(6) is None


def test_a_preview_or_a_bad_probe_is_not_pinned():
    with pytest.raises(ValueError, match="preview"):
        Pin.of(_result(preview=True), 0)
    with pytest.raises(ValueError, match="probe must be 0..3"):
        Pin.of(_result(), 4)


@pytest.fixture
def view(tiny_model_dir):  # noqa: F811
    from app.views.explore import ExploreView

    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreView(state=ExploreState(models=entries, n_paths=16), background=False)


def test_the_pinned_prediction_stays_while_the_inputs_move(view):
    s, overlay_of = view.state, lambda: view._pinning.overlay
    assert s.result is not None and not view._pinning._pin_button.disabled
    assert view._pinning._clear_button.disabled and not overlay_of().item.visible
    view._pinning._pin_button.clicks += 1
    pinned = dict(overlay_of().source.data)
    k = view.probe_index()
    np.testing.assert_allclose(pinned["mean"], s.result.mean.reshape(len(s.result.t), -1)[:, k],
                               rtol=1e-6)
    assert overlay_of().item.visible and overlay_of().item.label.value.startswith("pinned: nu = ")
    assert "Pinned" in view._pinning.text.object and not view._pinning._clear_button.disabled
    lo, hi = s.mu_specs[0].trained
    s.set_mu("nu", hi if s.mu["nu"] != hi else lo)  # a new prediction: the pin stays
    assert not np.allclose(view._plots["qoi"].source.data["mean"], pinned["mean"])
    np.testing.assert_array_equal(overlay_of().source.data["mean"], pinned["mean"])
    view._probe.value = k + 3  # another probe: the pinned series of that probe
    np.testing.assert_allclose(overlay_of().source.data["mean"],
                               view._pinning.pin.series(k + 3)[1])
    view._pinning._clear_button.clicks += 1
    assert len(overlay_of().source.data["t"]) == 0 and not overlay_of().item.visible
    assert view._pinning.text.object == "" and view._pinning._clear_button.disabled


def test_a_model_switch_clears_the_pin(view):
    view._pinning.pin_current()
    assert view._pinning.pin is not None
    view.state.load(view.state.model_path)  # a (re)load: the pin belonged to the old view
    assert view._pinning.pin is None and not view._pinning.overlay.item.visible


def test_the_snippet_card_fills_when_opened(view):
    card = view._snippets
    assert card.cli.value == ""  # closed: nothing built on the hot path
    card.panel.collapsed = False
    assert card.cli.value.splitlines()[-1].startswith("srom predict ")
    assert "model.predict(" in card.python.value
    view.state.seed = 9
    assert "--seed 9 " in card.cli.value.splitlines()[-1]


def test_the_weight_count_comes_from_the_safetensors_header(tiny_model_dir, tmp_path):  # noqa: F811
    from safetensors.numpy import load_file

    model_dir = tiny_model_dir / "burgers-tiny"
    tensors = load_file(str(model_dir / "model.safetensors"))
    assert model_cost.weight_count(model_dir) == sum(v.size for v in tensors.values()) > 0
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    assert model_cost.weight_count(tmp_path) is None  # an absurd header length
    header = json.dumps({"w": {"dtype": "F32", "shape": [-3], "data_offsets": [0, 0]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    model_cost._weights.clear()
    assert model_cost.weight_count(tmp_path) is None  # a negative dimension
    assert model_cost.weight_count(tmp_path / "missing") is None


def test_the_cost_line_shows_the_time_measured_here(view):
    model_cost.clear()
    s = view.state
    s.seed = 1  # a full prediction, recorded
    per_path, n = model_cost.measured(s.model_path, "cpu")
    r = s.result
    assert n == 1 and per_path == pytest.approx(r.seconds / r.n_paths * 100 / len(r.t))
    s.load(s.model_path)  # a model (re)load rebuilds the line
    text = view._cost.pane.object
    assert "weights" in text and "measured here" in text and "trained 30 steps" in text


def test_the_sensitivity_csv_buttons_send_the_shown_results(tiny_model_dir):  # noqa: F811
    from app.views.sensitivity import SensitivityView

    explore = ExploreState(models=catalog.discover_models([("user", tiny_model_dir)]), n_paths=8)
    view = SensitivityView(explore)
    assert view._sweep_csv.disabled and view._tornado_csv.disabled
    view._paths.value = 8
    view._points.value = 4
    view._run.clicks += 1
    assert view.state.wait(60) and view.state.error == ""
    assert not view._sweep_csv.disabled and view._tornado_csv.disabled
    rows = list(csv.DictReader(io.StringIO(view._sweep_csv_bytes().getvalue().decode())))
    assert [float(r["nu"]) for r in rows] == view.state.sweep.values.tolist()
    view._rank.clicks += 1
    assert view.state.wait(60) and not view._tornado_csv.disabled
    rows = list(csv.DictReader(io.StringIO(view._tornado_csv_bytes().getvalue().decode())))
    assert [r["input"] for r in rows] == [i.key for i in view.state.tornado.inputs]
