"""The Explore view and the served app (app/views/explore.py, app/main.py), without a browser."""

from __future__ import annotations

import numpy as np
import pytest

pn = pytest.importorskip("panel")

import param  # noqa: E402
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: E402,F401 - shared fixture

from app.state import catalog  # noqa: E402
from app.state.explore import ExploreState  # noqa: E402
from app.views.controls import label_of  # noqa: E402
from app.views.explore import NO_MODEL_HELP, ExploreView  # noqa: E402


@pytest.fixture
def view(tiny_model_dir) -> ExploreView:  # noqa: F811
    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreView(state=ExploreState(models=entries, n_paths=16))


def _release(slider, value, view: ExploreView | None = None) -> None:
    """What a browser does when a slider is let go: value, then value_throttled; with
    ``view``, wait until its background prediction has landed."""
    slider.value = value
    with param.edit_constant(slider):
        slider.value_throttled = value
    if view is not None:
        _settle(view)


def _settle(view: ExploreView) -> None:
    """Wait for the view's background prediction (applied in the worker without a server)."""
    assert view.state.wait(60), "the background prediction did not finish"
    assert not view.state.busy and not view._spinner.value


def test_view_builds_a_bokeh_root(view):
    root = pn.panel(view).get_root()
    assert root is not None
    assert {"qoi", "forcing", "mean_map", "std_map", "latent", "phase", "error"} <= set(view._plots)
    assert len(view._plots["qoi"].source.data["t"]) == view.state.result.t.size
    assert not view._warning.visible and not view._error.visible


def test_model_info_says_how_predictions_are_integrated(view):
    model = view.state.model
    method, substeps = model.integration_settings()
    text = view._model_info.object
    assert f"integrator: {method}, {substeps} step" in text
    if model.substeps is None and model.integration_:
        assert "checked: halving it changes the rollout by" in text


def test_the_held_out_line_shows_the_metric_that_fits_the_truth():
    from app.views.explore import _held_out_line

    plain = {"rel_l2_mean": 0.0512, "coverage_90": 0.9}
    assert _held_out_line(plain).startswith("held-out relative L2 error 0.0512")
    random = {**plain, "ensemble": {"rel_l2_vs_ensemble_mean": 0.062, "n_realisations": 64,
                                    "coverage_90": 0.96}}
    line = _held_out_line(random)
    assert "0.062 against the mean of 64 truth realisations" in line and "96 %" in line
    chaotic = {**plain, "ensemble": {**random["ensemble"], "valid_lyapunov_times": 0.33,
                                     "persistence_valid_lyapunov_times": 0.04,
                                     "vpt_threshold": 0.3}}
    assert _held_out_line(chaotic).startswith("valid prediction time 0.33 Lyapunov times")
    assert _held_out_line({}) == ""
    # where the truth passes zero the relative error is meaningless (the heat card's 5e7):
    # the error scaled by the truth's RMS size, else the RMSE with its units
    heat = {"rel_l2_mean": 5.08e7, "rmse": 0.0213, "coverage_90": 0.9}
    assert _held_out_line(heat).startswith("held-out RMSE 0.0213 (state units)")
    scaled = {**heat, "scaled_l2_mean": 0.071}
    assert _held_out_line(scaled).startswith("held-out error 0.071 of the truth's RMS size")


def test_the_error_against_the_simulator_stays_finite_where_the_truth_is_zero():
    from engine.metrics import relative_l2, scaled_l2

    t = np.linspace(0, 1, 11)
    truth = np.stack([np.sin(np.pi * t), np.zeros_like(t)], -1)[None]  # zero at t = 0 and 1
    mean = truth + 0.01
    assert relative_l2(mean, truth)[0, 0] > 1e9  # what the plot showed before
    scaled = scaled_l2(mean, truth)[0]
    rms = np.sqrt(np.mean(np.sum(truth[0] ** 2, -1)))
    np.testing.assert_allclose(scaled, np.sqrt(2) * 0.01 / rms)


def test_slider_release_pushes_new_data_into_the_same_figures(view):
    pn.panel(view).get_root()
    qoi, mean_map = view._plots["qoi"], view._plots["mean_map"]
    figure, source = qoi.figure, qoi.source
    before_mean = np.array(source.data["mean"])
    before_map = np.array(mean_map.source.data["image"][0])
    lo, hi = view.state.mu_specs[0].trained
    _release(view._mu_controls["nu"].slider, lo + 0.95 * (hi - lo), view)
    assert view.state.mu["nu"] == pytest.approx(lo + 0.95 * (hi - lo))
    assert view._plots["qoi"].figure is figure and view._plots["qoi"].source is source
    assert not np.allclose(source.data["mean"], before_mean)
    assert not np.allclose(mean_map.source.data["image"][0], before_map)
    assert view.render_seconds < 1.0


def test_a_preview_refreshes_the_probe_curve_and_the_full_result_everything(view):
    pn.panel(view).get_root()
    s, p = view.state, view._plots
    images = lambda: (p["mean_map"].source.data["image"][0].copy(),  # noqa: E731
                      np.asarray(p["latent"].source.data["m0"]).copy())
    before = (np.asarray(p["qoi"].source.data["mean"]).copy(), *images())
    forcing = p["forcing"].source.data
    s.param.update(background=True, preview_paths=4, preview_above_ms=0.0)
    seen = []
    s.param.watch(lambda e: seen.append((e.new.preview, np.asarray(
        p["qoi"].source.data["mean"]).copy(), *images())), "result")
    lo, hi = s.mu_specs[0].trained
    _release(view._mu_controls["nu"].slider, lo + 0.9 * (hi - lo), view)
    (was_preview, qoi, mean_map, latent), final = seen[0], seen[-1]
    assert was_preview and not final[0] and len(seen) == 2
    assert not np.allclose(qoi, before[0])  # the preview moved the probe curve ...
    assert np.array_equal(mean_map, before[1]) and np.array_equal(latent, before[2])  # only
    assert not np.allclose(final[2], before[1]) and not np.allclose(final[3], before[2])
    assert p["forcing"].source.data is forcing  # μ moved, f did not: not re-sent


def test_extrapolation_shows_a_warning_banner(view):
    lo, hi = view.state.mu_specs[0].trained
    control = view._mu_controls["nu"]
    _release(control.slider, hi + 0.4 * (hi - lo), view)
    assert view._warning.visible and "extrapolating" in view._warning.object
    assert "extrapolating" in control.bar.object
    _release(control.slider, 0.5 * (lo + hi), view)
    assert not view._warning.visible


def test_bad_input_shows_an_error_and_the_view_keeps_working(view):
    root = pn.panel(view).get_root()
    error_figure = view._plots["error"].figure
    assert error_figure not in root.references()  # hidden: not on the page until shown
    view._family.value = "ramp"
    _settle(view)
    names = [label_of(w) for w in view._forcing_box]
    assert names == ["start", "end", "change", "offset"]
    end = view._forcing_box[1]
    _release(end, -0.5, view)  # end before start: the forcing is invalid
    assert view._error.visible and "end must be greater than start" in view._error.object
    _release(end, 0.8, view)
    assert not view._error.visible
    view._truth.value = True
    _settle(view)
    assert view._error_pane.visible and "inside the 90 % band" in view._status.object
    assert error_figure in root.references()
    assert not np.all(np.isnan(view._plots["qoi"].source.data["truth"]))


def test_probe_and_phase_axes_change_only_the_plots(view):
    result = view.state.result
    view._probe.value = 5
    assert view.state.result is result
    assert np.allclose(view._plots["qoi"].source.data["mean"],
                       result.mean[:, 5][: len(view._plots["qoi"].source.data["mean"])])
    view._phase_j.value = 2
    assert view._plots["phase"].figure.yaxis[0].axis_label == "z3"


def test_without_models_the_view_explains_how_to_train_one():
    view = ExploreView(state=ExploreState(models=[]))
    pn.panel(view).get_root()
    assert view._plot_box[0].object == NO_MODEL_HELP
    assert "srom train" in NO_MODEL_HELP and "srom generate" in NO_MODEL_HELP


def test_the_app_template_has_explore_and_about_tabs(tiny_model_dir):  # noqa: F811
    from app.main import create_app

    entries = catalog.discover_models([("user", tiny_model_dir)])
    template = create_app(ExploreState(models=entries, n_paths=8))
    tabs = template.main[0]
    names = list(tabs._names)
    assert names[0] == "Explore" and names[-1] == "About" and "Sensitivity" in names
    assert template.explore_view.state.result is not None


@pytest.mark.parametrize("system, kind", [("oscillator", "vector"),
                                          ("reaction_diffusion", "field2d")])
def test_vector_and_2d_states_get_their_own_plots(system, kind, tmp_path_factory):
    path = train_tiny_model(tmp_path_factory.mktemp(system), system)
    view = ExploreView(state=ExploreState(models=catalog.discover_models([("user", path.parent)]),
                                          n_paths=8))
    pn.panel(view).get_root()
    assert view.state.error == "" and view._kind == kind
    qoi = view._plots["qoi"].source
    before = np.array(qoi.data["mean"])
    view._probe.value = 1
    assert not np.allclose(qoi.data["mean"], before)
    if kind == "field2d":
        image = np.array(view._plots["mean_map"].source.data["image"][0])
        view._frame.value = view._frame.end
        assert not np.allclose(view._plots["mean_map"].source.data["image"][0], image)
    else:
        assert "mean_map" not in view._plots


def test_the_spinner_shows_while_a_prediction_is_pending(view):
    delivered = []
    view.state.dispatch = delivered.append  # a stand-in for the session's event loop
    before = view.state.result
    view._seed.value = 7
    assert view._spinner.value and view.state.busy
    assert view.state.wait(60) and view.state.result is before  # computed, not yet applied
    for apply in delivered:
        apply()
    assert view.state.result is not before and not view._spinner.value


def test_download_buttons_send_the_shown_prediction(view):
    import base64
    import io
    import json

    view._probe.value = 5
    npz = view._downloads["npz"]
    assert npz.filename == "srom-burgers-prediction.npz"
    npz._clicks += 1  # what a click in the browser does
    data = np.load(io.BytesIO(base64.b64decode(npz.data.split(",", 1)[1])), allow_pickle=False)
    np.testing.assert_allclose(data["mean"], view.state.result.mean)
    assert json.loads(str(data["description"]))["probe"] == 5
    table = np.genfromtxt(view._csv_bytes(), delimiter=",", names=True)
    np.testing.assert_allclose(table["mean"], view.state.result.mean[:, 5], rtol=1e-6)
    assert view._png_bytes().getvalue()[:4] == b"\x89PNG"


def test_download_buttons_are_off_until_there_is_a_prediction(view):
    assert view.state.result is not None
    assert not any(b.disabled for b in view._downloads.values())
    view.state.result = None  # e.g. a model switch before its first prediction lands
    assert all(b.disabled for b in view._downloads.values())
    view.state.refresh()
    _settle(view)
    assert view.state.result is not None
    assert not any(b.disabled for b in view._downloads.values())


def test_a_model_switch_clears_the_comparison_and_the_status_line(view):
    view._truth.value = True  # "Compare with the simulator"
    _settle(view)
    assert view.state.show_truth and view._status.object
    path = view.state.model_path
    view.state.load(path)  # a switch (here to the same model: a fresh load all the same)
    assert not view.state.show_truth and not view._truth.value
    _settle(view)
    assert view.state.result is not None and view.state.result.truth is None


def test_the_model_picker_sends_keys_not_server_folders(view, tiny_model_dir):  # noqa: F811
    """A select sends its values to the page: they are opaque keys, and picking one loads
    the folder it stands for on the server."""
    root = view._model_select.get_root()
    values = [value for value, _text in root.options]
    assert values and not any(str(tiny_model_dir) in v or v.startswith("/") for v in values)
    assert str(tiny_model_dir) not in str(root.value) and str(root.value).startswith("user/")
    first = view.state.models[0]
    view._model_select.value = catalog.model_key(first)
    assert view.state.model_path == first.path
    view._model_select.value = "user/../../etc"  # a forged value changes nothing
    assert view.state.model_path == first.path
