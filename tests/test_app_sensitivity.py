"""Probe sensitivity (app/state/sensitivity.py, app/views/sensitivity.py).

Exact checks run on a stub model whose sample paths are a known function of μ and f(t); the
known physical response (a stronger heat source makes the peak temperature higher) is checked
on the shipped heat model; the tab itself on the tiny Burgers model of test_app_state.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_app_state import tiny_model_dir  # noqa: F401 - shared fixture

from app.state import catalog
from app.state.explore import ExploreState
from app.state.sensitivity import (
    Conditions,
    SensitivityState,
    SweepInput,
    rank_inputs,
    statistic_values,
    sweep_1d,
    sweep_2d,
    sweep_inputs,
)
from engine.forcing import make_forcing

HEAT = Path(__file__).resolve().parents[1] / "pretrained" / "heat"


class StubModel:
    """``x[b, i, k, s] = a_b · t_k + 10 · b_b + f_b(t_k) + s + 0.1 · (i − (n − 1)/2)``."""

    state_shape_ = (3,)
    n_win = 1
    dt_ = 0.25
    param_names_ = ["a", "b"]
    forcing_names_ = ["f"]

    def __init__(self):
        self.calls: list[dict] = []

    def predict(self, x0, mu, t, f, n_samples, seed, return_samples, substeps):
        self.calls.append({"cases": len(mu), "t": np.array(t), "seed": seed})
        assert x0.shape == (len(mu), 3) and f.shape == (len(mu), len(t), 1)
        i = np.arange(n_samples) - (n_samples - 1) / 2
        x = (mu[:, 0, None, None] * t + 10 * mu[:, 1, None, None] + f[:, None, :, 0]
             + 0.1 * i[None, :, None])
        samples = x[..., None] + np.arange(3.0)
        return SimpleNamespace(samples=samples)


class StubSystem:
    def simulate(self, mu, forcings, t, seed=0):
        return np.zeros((len(t), 3))


def stub_conditions(statistic="probe", t_index=-1, max_elements=10**9) -> Conditions:
    t = np.linspace(0.0, 2.0, 9)
    return Conditions(
        model=StubModel(), system=StubSystem(), t=t, substeps=1, mu=np.array([0.5, 0.2]),
        param_names=("a", "b"), forcing_family="sine",
        forcing_params={"amplitude": 0.0, "frequency": 1.0, "phase": 0.0, "offset": 1.0},
        other_forcings=(), seed=3, n_paths=5, statistic=statistic, probe=1,
        t_index=t_index % len(t), max_elements=max_elements)


A = SweepInput("mu:a", "a", "a", (0.0, 1.0), 0.5)
B = SweepInput("mu:b", "b", "b", (0.0, 1.0), 0.2)
OFFSET = SweepInput("forcing:offset", "offset", "forcing offset", (0.0, 3.0), 1.0)


def test_statistics_of_sample_paths():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((4, 6, 7, 2, 3))  # (B, n, T, *S): a 2-D field
    flat = samples.reshape(4, 6, 7, 6)
    np.testing.assert_allclose(statistic_values(samples, "probe", 2, 5), flat[:, :, 2, 5])
    np.testing.assert_allclose(statistic_values(samples, "energy", 3, 0),
                               (flat[:, :, 3] ** 2).mean(-1))
    np.testing.assert_allclose(statistic_values(samples, "time_mean", 0, 4),
                               flat[:, :, :, 4].mean(-1))
    np.testing.assert_allclose(statistic_values(samples, "time_max", 0, 4),
                               flat[:, :, :, 4].max(-1))
    with pytest.raises(ValueError, match="statistic must be one of"):
        statistic_values(samples, "median", 0, 0)


def test_a_sweep_is_one_batched_call_with_exact_values():
    cond = stub_conditions(t_index=4)  # t = 1
    r = sweep_1d(cond, A, n_points=5)
    assert len(cond.model.calls) == 1 and cond.model.calls[0]["cases"] == 5
    assert cond.model.calls[0]["t"].size == 5  # stops at the statistic's time
    np.testing.assert_allclose(r.values, np.linspace(0, 1, 5))
    assert r.stats.shape == (5, 5) and r.mean.shape == r.std.shape == (5,)
    # x = a·1 + 10·0.2 + f(1) + probe 1; f = offset 1 (amplitude 0)
    np.testing.assert_allclose(r.mean, r.values + 2.0 + 1.0 + 1.0)
    np.testing.assert_allclose(r.quantile(0.95) - r.quantile(0.05), 0.1 * 4 * 0.9)
    assert r.label == "x[1] at t = 1"


def test_forcing_inputs_change_the_forcing_and_chunks_bound_memory():
    cond = stub_conditions(statistic="time_mean", max_elements=5 * 9 * 3 * 2)  # 2 cases a call
    seen = []
    r = sweep_1d(cond, OFFSET, n_points=5, progress=lambda done, total: seen.append((done, total)))
    assert [c["cases"] for c in cond.model.calls] == [2, 2, 1]
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert all(c["t"].size == 9 for c in cond.model.calls)  # a time average needs every time
    t = cond.t
    np.testing.assert_allclose(r.mean, 0.5 * t.mean() + 2.0 + r.values + 1.0)


def test_a_grid_has_mean_and_std_maps():
    cond = stub_conditions()
    g = sweep_2d(cond, A, B, n=3)
    assert g.stats.shape == (3, 3, 5) and g.mean.shape == g.std.shape == (3, 3)
    va, vb = g.values
    np.testing.assert_allclose(g.mean, va[:, None] * 2.0 + 10 * vb[None, :] + 1.0 + 1.0)
    np.testing.assert_allclose(g.std, np.std(0.1 * np.arange(5)))
    with pytest.raises(ValueError, match="two different inputs"):
        sweep_2d(cond, A, A)


def test_tornado_sorts_inputs_by_swing():
    cond = stub_conditions()  # t = 2: swing of a is 2, of b 10, of the offset 3
    r = rank_inputs(cond, [A, B, OFFSET])
    assert len(cond.model.calls) == 1 and cond.model.calls[0]["cases"] == 7
    assert [i.key for i in r.inputs] == ["mu:b", "forcing:offset", "mu:a"]
    np.testing.assert_allclose(r.swing, [10.0, 3.0, 2.0])
    nominal = 0.5 * 2 + 10 * 0.2 + 1.0 + 1.0
    assert r.nominal == pytest.approx(nominal)
    np.testing.assert_allclose(r.low, [nominal - 2.0, nominal - 1.0, nominal - 1.0])
    np.testing.assert_allclose(r.high, [nominal + 8.0, nominal + 2.0, nominal + 1.0])
    assert r.low_band.shape == r.high_band.shape == (2, 3)
    assert np.all(r.low_band[0] < r.low) and np.all(r.low < r.low_band[1])


@pytest.fixture(scope="module")
def heat_state() -> ExploreState:
    if not (HEAT / "config.json").exists():
        pytest.skip("the pretrained heat model is not in this checkout")
    return ExploreState(models=catalog.discover_models([("pretrained", HEAT.parent)]),
                        model_path=str(HEAT), n_paths=8)


def test_heat_peak_temperature_grows_with_the_source_amplitude(heat_state):
    keys = [i.key for i in sweep_inputs(heat_state)]
    assert keys == ["mu:kappa", "forcing:amplitude", "forcing:frequency", "forcing:phase"]
    amplitude = sweep_inputs(heat_state)[1]
    assert amplitude.trained == (0.5, 1.5) and amplitude.nominal == 1.0
    # the probe sits at x ≈ 0.3, the centre of the heat source g(x)
    cond = Conditions.from_explore(heat_state, "time_max", probe=19, n_paths=32)
    r = sweep_1d(cond, amplitude, n_points=6)
    assert r.stats.shape == (6, 32)
    assert np.all(np.diff(r.mean) > 0), r.mean
    assert r.mean[-1] > 1.8 * r.mean[0]
    assert np.all(r.quantile(0.05) <= r.quantile(0.25))
    assert np.all(r.quantile(0.75) <= r.quantile(0.95))


def test_state_runs_in_the_background_and_the_newest_run_wins(heat_state):
    delivered = []
    s = SensitivityState(heat_state, background=True, n_paths=8, n_points=4)
    s.dispatch = delivered.append  # a stand-in for the session's event loop
    s.param.update(parameter="forcing:amplitude", statistic="energy")
    s.run("sweep")
    assert s.busy
    s.parameter2 = "mu:kappa"
    s.n_grid = 3
    s.run("sweep")  # supersedes the first run
    assert s.wait(60)
    for apply in delivered:  # run on the "session thread": stale deliveries are dropped
        apply()
    assert s.sweep is None and s.grid is not None and s.grid.mean.shape == (3, 3)
    assert not s.busy and s.progress == 1.0 and s.error == ""
    s.dispatch = None  # apply in the worker thread
    s.run("tornado")
    assert s.wait(60) and s.tornado is not None and len(s.tornado.inputs) == 4
    s.parameter2 = None
    s.probe = 10_000
    s.run("sweep")
    assert "probe must be a flat state index" in s.error and not s.busy


def test_the_tab_runs_a_sweep_into_its_figure(tiny_model_dir):  # noqa: F811
    pn = pytest.importorskip("panel")
    hv = pytest.importorskip("holoviews")
    from app.views.sensitivity import SensitivityView

    explore = ExploreState(models=catalog.discover_models([("user", tiny_model_dir)]), n_paths=8)
    view = SensitivityView(explore)
    pn.panel(view).get_root()
    assert view._input.value == "mu:nu" and "forcing amplitude" in view._input.options
    view._paths.value = 8
    view._points.value = 4
    view._run.clicks += 1
    assert view.state.wait(60)
    r = view.state.sweep
    assert view.state.error == "" and view._sweep_box.visible and not view._progress.visible
    # the pane draws engine.plotting's sweep of the result: its mean, bands and context
    sweep = view.sweep_plot.element()
    (mean,) = [e for e in sweep if type(e) is hv.Curve]
    np.testing.assert_allclose(mean.dimension_values(0), r.values)
    np.testing.assert_allclose(mean.dimension_values(1), r.mean)
    bands = [e for e in sweep if isinstance(e, hv.Area)]
    np.testing.assert_allclose(bands[0].dimension_values(2), r.quantile(0.95))
    (nominal,) = [e for e in sweep if isinstance(e, hv.VLine)]
    assert nominal.data == pytest.approx(r.input.nominal)
    (trained,) = [e for e in sweep if isinstance(e, hv.VSpan)]
    assert tuple(trained.data) == pytest.approx(r.input.trained)
    figure = view.sweep_plot.pane.get_root().select_one({"name": "sweep-figure"})
    assert figure is not None and figure.height == 320
    view._input2.value = "forcing:amplitude"
    view._grid_points.value = 3
    view._rank.clicks += 1
    assert view.state.wait(60) and view._tornado_box.visible
    ranking = view.state.tornado
    low, high, _ = view.tornado_plot.element()
    # one bar per input, from the nominal statistic to its value at each end
    np.testing.assert_allclose(low.dimension_values(4), ranking.low)
    np.testing.assert_allclose(high.dimension_values(4), ranking.high)
    assert list(low.dimension_values("input")) == [i.label for i in ranking.inputs]
    assert len(ranking.inputs) == len(view.state.inputs())
    view._run.clicks += 1
    assert view.state.wait(60) and view._grid_box.visible and not view._sweep_box.visible
    grid = view.state.grid
    for plot, values in ((view.mean_map, grid.mean), (view.std_map, grid.std)):
        mesh = plot.element()  # rows: the second input; columns: the first
        np.testing.assert_allclose(mesh.dimension_values(2, flat=False), values.T)
    explore.forcing_family = "ramp"  # other forcing inputs: the tab starts afresh
    assert "forcing amplitude" not in view._input.options and view.state.sweep is None
    assert make_forcing("ramp").family == "ramp"


def test_the_tab_follows_a_model_switch(tiny_model_dir):  # noqa: F811
    """A model switch changes μ, the forcing and the model in one batch: every watcher of
    the tab takes them together (a one-event watcher raised a TypeError here)."""
    pn = pytest.importorskip("panel")
    from app.views.sensitivity import SensitivityView

    if not (HEAT / "config.json").exists():
        pytest.skip("the pretrained heat model is not in this checkout")
    entries = catalog.discover_models([("user", tiny_model_dir), ("pretrained", HEAT.parent)])
    explore = ExploreState(models=entries, n_paths=8)
    view = SensitivityView(explore)
    pn.panel(view).get_root()
    assert view._input.value == "mu:nu"
    explore.model_path = str(HEAT)
    assert explore.error == "" and explore.model.system_ == "heat"
    assert "mu:nu" not in view._input.options and view.state.sweep is None


def test_a_model_of_the_users_own_data_sweeps_from_its_kept_state(tmp_path):
    """No built-in simulator (issue 17, item 1): every case starts from the training state
    the Explore tab chose, and the forcing inputs span the values the training forcing took."""
    from own_data import train_own_data_model

    model_dir = train_own_data_model(tmp_path)
    explore = ExploreState(models=catalog.discover_models([("user", model_dir.parent)]),
                           n_paths=8)
    assert explore.system is None and explore.error == "", explore.error
    explore.set_case(2)
    sens = SensitivityState(explore, n_paths=8, n_points=3)
    cond = sens.conditions()
    np.testing.assert_array_equal(cond.x0, explore.model.initial_states_.x0[2, 0])
    keys = [i.key for i in sens.inputs()]
    assert keys[0] == "mu:stiffness" and any(k.startswith("forcing:") for k in keys)
    sens.run("sweep")
    assert sens.error == "" and sens.sweep.mean.shape == (3,), sens.error
    assert np.isfinite(sens.sweep.stderr).all()
    sens.run("tornado")
    assert sens.error == "" and len(sens.tornado.inputs) == len(keys)
