"""The Explore view and the served app (app/explore.py, app/main.py), without a browser."""

from __future__ import annotations

import numpy as np
import pytest

pn = pytest.importorskip("panel")

import param  # noqa: E402

from app import catalog  # noqa: E402
from app.controls import label_of  # noqa: E402
from app.explore import NO_MODEL_HELP, ExploreView  # noqa: E402
from app.state import ExploreState  # noqa: E402
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: E402,F401 - shared fixture


@pytest.fixture
def view(tiny_model_dir) -> ExploreView:  # noqa: F811
    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreView(state=ExploreState(models=entries, n_paths=16))


def _release(slider, value) -> None:
    """What a browser does when a slider is let go: value, then value_throttled."""
    slider.value = value
    with param.edit_constant(slider):
        slider.value_throttled = value


def test_view_builds_a_bokeh_root(view):
    root = pn.panel(view).get_root()
    assert root is not None
    assert {"qoi", "forcing", "mean_map", "std_map", "latent", "phase", "error"} <= set(view._plots)
    assert len(view._plots["qoi"].source.data["t"]) == view.state.result.t.size
    assert not view._warning.visible and not view._error.visible


def test_slider_release_pushes_new_data_into_the_same_figures(view):
    pn.panel(view).get_root()
    qoi, mean_map = view._plots["qoi"], view._plots["mean_map"]
    figure, source = qoi.figure, qoi.source
    before_mean = np.array(source.data["mean"])
    before_map = np.array(mean_map.source.data["image"][0])
    lo, hi = view.state.mu_specs[0].trained
    _release(view._mu_controls["nu"].slider, lo + 0.95 * (hi - lo))
    assert view.state.mu["nu"] == pytest.approx(lo + 0.95 * (hi - lo))
    assert view._plots["qoi"].figure is figure and view._plots["qoi"].source is source
    assert not np.allclose(source.data["mean"], before_mean)
    assert not np.allclose(mean_map.source.data["image"][0], before_map)
    assert view.render_seconds < 1.0


def test_extrapolation_shows_a_warning_banner(view):
    lo, hi = view.state.mu_specs[0].trained
    control = view._mu_controls["nu"]
    _release(control.slider, hi + 0.4 * (hi - lo))
    assert view._warning.visible and "extrapolating" in view._warning.object
    assert "extrapolating" in control.bar.object
    _release(control.slider, 0.5 * (lo + hi))
    assert not view._warning.visible


def test_bad_input_shows_an_error_and_the_view_keeps_working(view):
    pn.panel(view).get_root()
    view._family.value = "ramp"
    names = [label_of(w) for w in view._forcing_box]
    assert names == ["start", "end", "change", "offset"]
    end = view._forcing_box[1]
    _release(end, -0.5)  # end before start: the forcing is invalid
    assert view._error.visible and "end must be greater than start" in view._error.object
    _release(end, 0.8)
    assert not view._error.visible
    view._truth.value = True
    assert view._error_pane.visible and "inside the 90 % band" in view._status.object
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
    assert [name for name in tabs._names] == ["Explore", "About"]
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
