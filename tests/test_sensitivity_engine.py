"""Probe sensitivity in the engine (engine/sensitivity.py), without the dashboard.

Exact checks on a stub model whose sample paths are a known function of μ and f(t); the
model-data path (no simulator: initial states kept with the model) on a tiny fitted model.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from problems import duffing_dataset

from engine import StochasticROM
from engine.sensitivity import (
    SUMMARY_LEVELS,
    Conditions,
    SweepInput,
    model_system,
    rank_inputs,
    sweep_1d,
    sweep_2d,
    sweep_inputs,
    sweep_inputs_for,
)


class StubModel:
    """``x[b, i, k, s] = a_b · t_k + 10 · b_b + f_b(t_k) + s + σ_i`` with fixed offsets σ."""

    state_shape_ = (3,)
    n_win = 1
    dt_ = 0.25
    t_range_ = (0.0, 2.0)
    param_names_ = ["a", "b"]
    param_ranges_ = [(0.0, 1.0), (0.0, 1.0)]
    forcing_names_ = ["f"]
    OFFSETS = np.array([-0.3, 0.1, 0.0, 0.5, -0.2])

    def __init__(self):
        self.x0s: list[np.ndarray] = []

    def integration_settings(self):
        return "heun", 2

    def predict(self, x0, mu, t, f, n_samples, seed, return_samples, substeps):
        self.x0s.append(np.array(x0))
        x = (mu[:, 0, None, None] * t + 10 * mu[:, 1, None, None] + f[:, None, :, 0]
             + self.OFFSETS[:n_samples, None])
        return SimpleNamespace(samples=x[..., None] + np.arange(3.0))


def stub(statistic="probe", **kw) -> Conditions:
    args = {"probe": 1, "n_paths": 5, "x0": np.array([7.0, 8.0, 9.0]), **kw}
    return Conditions.for_model(
        StubModel(), None, forcing_family="sine",
        forcing_params={"amplitude": 0.0, "frequency": 1.0, "phase": 0.0, "offset": 1.0},
        statistic=statistic, **args)


A = SweepInput("mu:a", "a", "a", (0.0, 1.0), 0.5)
OFFSET = SweepInput("forcing:offset", "offset", "forcing offset", (0.0, 3.0), 1.0)


def test_for_model_builds_nominal_conditions_and_checks_them():
    cond = stub()
    np.testing.assert_allclose(cond.t, np.arange(9) * 0.25)
    np.testing.assert_allclose(cond.mu, [0.5, 0.5])  # the middle of the trained ranges
    assert cond.substeps == 2 and cond.t_index == 8 and cond.stat_time == 2.0
    assert stub(time=1.1).t_index == 4
    for kw, match in [({"statistic": "mean"}, "statistic"), ({"probe": 3}, "probe"),
                      ({"horizon": 100.0}, "horizon"), ({"n_paths": 1}, "n_paths"),
                      ({"mu": {"c": 1.0}}, "unknown μ"), ({"time": 5.0}, "time"),
                      ({"seed": -1}, "seed")]:
        with pytest.raises(ValueError, match=match):
            stub(**kw)
    with pytest.raises(ValueError, match="x0 must have shape"):
        Conditions.for_model(StubModel(), None, x0=np.zeros(4))


def test_a_sweep_has_exact_means_and_monte_carlo_errors():
    cond = stub()
    result = sweep_1d(cond, A, n_points=3)
    # probe 1 at t = 2: 2a + 10·0.5 + offset 1 + 1 + σ
    np.testing.assert_allclose(result.mean, 2 * result.values + 7 + StubModel.OFFSETS.mean())
    se = StubModel.OFFSETS.std(ddof=1) / np.sqrt(5)
    np.testing.assert_allclose(result.stderr, [se] * 3)
    assert result.quantiles.shape == (len(SUMMARY_LEVELS), 3)
    rows = result.rows()
    assert [r["a"] for r in rows] == [0.0, 0.5, 1.0]
    assert set(rows[0]) == {"a", "mean", "stderr", "std", "q5", "q25", "q50", "q75", "q95"}
    x0s = np.concatenate(cond.model.x0s)
    np.testing.assert_array_equal(x0s, np.tile([7.0, 8.0, 9.0], (3, 1)))  # the given x0
    with pytest.raises(ValueError, match="n_points"):
        sweep_1d(cond, A, n_points=1)
    with pytest.raises(ValueError, match="n_points"):
        sweep_1d(cond, A, n_points=10**6)


def test_a_grid_and_the_tornado_with_error_bars():
    cond = stub("time_mean")
    grid = sweep_2d(cond, A, OFFSET, n=3)
    assert grid.mean.shape == grid.stderr.shape == (3, 3)
    # time mean of a·t over t in [0, 2] is a: the grid is linear in both inputs
    np.testing.assert_allclose(np.diff(grid.mean, axis=0), 0.5)
    np.testing.assert_allclose(np.diff(grid.mean, axis=1), 1.5)
    with pytest.raises(ValueError, match="two different"):
        sweep_2d(cond, A, A)
    tornado = rank_inputs(cond, [A, OFFSET])
    assert [i.key for i in tornado.inputs] == ["forcing:offset", "mu:a"]
    np.testing.assert_allclose(tornado.swing, [3.0, 1.0])
    se = StubModel.OFFSETS.std(ddof=1) / np.sqrt(5)
    np.testing.assert_allclose(tornado.swing_se, [np.hypot(se, se)] * 2)
    assert tornado.nominal_se == pytest.approx(se)
    assert [r["input"] for r in tornado.rows()] == ["forcing:offset", "mu:a"]
    with pytest.raises(ValueError, match="no input"):
        rank_inputs(cond, [])


def test_sweep_inputs_take_trained_ranges_and_skip_scalar_forcing_settings():
    model = StubModel()
    inputs = sweep_inputs(model, {"a": 0.2}, "sine", {"amplitude": 1.0},
                          {"amplitude": (0.5, 1.5), "offset": 0.0, "phase": (1.0, 1.0)},
                          units={"a": "m"})
    assert [i.key for i in inputs] == ["mu:a", "mu:b", "forcing:amplitude"]
    assert inputs[0].label == "a [m]" and inputs[0].nominal == 0.2 and inputs[1].nominal == 0.5
    assert inputs[2].trained == (0.5, 1.5)


@pytest.fixture(scope="module")
def data_model():
    """A tiny model of 'the user's own data' (no built-in simulator)."""
    return StochasticROM(latent_dim=2, steps=4, window=8, windows_per_step=2,
                         drift_hidden=(8,), log_every=4).fit(duffing_dataset(6, n_times=21))


def test_a_model_without_a_simulator_sweeps_from_its_kept_initial_state(data_model):
    assert model_system(data_model) is None
    cond = Conditions.for_model(data_model, None, forcing_family="sine",
                                forcing_params={"amplitude": 0.5}, n_paths=4, horizon=2.0)
    kept = getattr(data_model, "initial_states_", None)
    if kept is not None:
        np.testing.assert_array_equal(cond.x0, kept.x0[0, 0])
    else:
        np.testing.assert_allclose(cond.x0, data_model.normalization_.x_mean.reshape(-1))
    inputs = sweep_inputs_for(cond)
    assert [i.key for i in inputs] == ["mu:damping"]
    result = sweep_1d(cond, inputs[0], n_points=3)
    assert result.mean.shape == (3,) and np.isfinite(result.mean).all()
    assert np.all(result.stderr > 0)


def test_model_system_rebuilds_the_training_simulator():
    from pathlib import Path

    from engine import load_model

    model = load_model(Path(__file__).resolve().parents[1] / "pretrained" / "heat")
    system = model_system(model)
    assert system.system_name == "heat" and tuple(system.state_shape) == model.state_shape_
    assert system.param_names == model.param_names_


def test_sweep_and_tornado_as_holoviews_elements():
    hv = pytest.importorskip("holoviews")
    from engine import plotting

    cond = stub("time_mean")
    result = sweep_1d(cond, A, n_points=3)
    overlay = plotting.sweep(result)
    areas = [e for e in overlay if isinstance(e, hv.Area)]
    (curve,) = [e for e in overlay if type(e) is hv.Curve]  # an Area is a Curve too
    (errors,) = [e for e in overlay if isinstance(e, hv.ErrorBars)]
    np.testing.assert_allclose(curve.dimension_values(1), result.mean)
    np.testing.assert_allclose(errors.dimension_values(2), 2 * result.stderr)
    np.testing.assert_allclose(areas[0].dimension_values(1), result.quantile(0.05))
    np.testing.assert_allclose(areas[0].dimension_values(2), result.quantile(0.95))
    tornado = rank_inputs(cond, [A, OFFSET])
    element = plotting.tornado(tornado)
    (bars,) = [e for e in element if isinstance(e, hv.Bars)]
    # the largest swing is drawn last (at the top of the inverted axes)
    assert list(bars.dimension_values(0)) == [A.label, OFFSET.label]
    np.testing.assert_allclose(bars.dimension_values(1), tornado.swing[::-1])


def test_the_sweep_element_marks_the_trained_range_and_the_nominal_value():
    hv = pytest.importorskip("holoviews")
    from engine import plotting

    result = sweep_1d(stub("time_mean"), A, n_points=3)
    overlay = plotting.sweep(result)
    (span,) = [e for e in overlay if isinstance(e, hv.VSpan)]
    (line,) = [e for e in overlay if isinstance(e, hv.VLine)]
    assert tuple(span.data) == pytest.approx(A.trained) and line.data == pytest.approx(A.nominal)
    (dots,) = [e for e in overlay if isinstance(e, hv.Scatter)]
    np.testing.assert_allclose(dots.dimension_values(1), result.mean)
    bare = plotting.sweep(result, context=False)
    assert not [e for e in bare if isinstance(e, (hv.VSpan, hv.VLine))]


def test_grid_and_tornado_ends_elements_hold_the_results():
    hv = pytest.importorskip("holoviews")
    from engine import plotting

    cond = stub("time_mean")
    g = sweep_2d(cond, A, OFFSET, 3)
    mesh = plotting.grid(g, "std")
    assert [d.name for d in mesh.kdims] == [A.label, OFFSET.label]
    np.testing.assert_allclose(mesh.dimension_values(2, flat=False), g.std.T)
    with pytest.raises(ValueError, match="'mean' or 'std'"):
        plotting.grid(g, "median")
    ranking = rank_inputs(cond, [A, OFFSET])
    low, high, nominal = plotting.tornado_ends(ranking)
    assert isinstance(nominal, hv.VLine) and nominal.data == pytest.approx(ranking.nominal)
    for bars, values, end in ((low, ranking.low, 0), (high, ranking.high, 1)):
        # each bar spans the nominal statistic and the statistic at that end of the range
        np.testing.assert_allclose(bars.dimension_values("x0"), np.minimum(values, ranking.nominal))
        np.testing.assert_allclose(bars.dimension_values("x1"), np.maximum(values, ranking.nominal))
        np.testing.assert_allclose(bars.dimension_values("input value"),
                                   [i.trained[end] for i in ranking.inputs])
        assert list(bars.dimension_values("input")) == [i.label for i in ranking.inputs]
    # the largest swing at the top
    assert low.dimension_values("y0")[0] == max(low.dimension_values("y0"))
