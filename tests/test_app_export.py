"""Downloads of a prediction (app/state/export.py): npz round trip, CSV rows, PNG bytes.

The results are made by hand (no model), so every exported number can be checked exactly.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from app.state import export
from app.state.explore import QUANTILE_LEVELS, ExploreResult


def make_result(state_shape=(12,), n_t=9, k=3, d=2, truth=False) -> ExploreResult:
    """A result whose quantile at level q is ``mean + q`` (so each level is recognisable)."""
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 2.0, n_t)
    mean = rng.standard_normal((n_t, *state_shape))
    levels = np.asarray(QUANTILE_LEVELS)
    latent_mean = rng.standard_normal((n_t, d))
    r = ExploreResult(
        t=t, mean=mean, std=np.abs(mean) + 0.1, levels=levels,
        quantiles=np.stack([mean + q for q in levels]),
        samples=rng.standard_normal((k, n_t, *state_shape)), latent_mean=latent_mean,
        latent_quantiles=np.stack([latent_mean - q for q in levels]),
        latent_samples=rng.standard_normal((k, n_t, d)), forcing=np.sin(t)[:, None],
        mu=np.array([0.03]), seconds=0.01, n_paths=48,
        inputs={"model_path": "/m/burgers", "system": "burgers", "mu": {"nu": 0.03},
                "forcing": {"u_left": {"family": "sine", "amplitude": 2.0, "frequency": 1.0,
                                       "phase": 0.0, "offset": 2.5}},
                "n_paths": 48, "seed": 0, "horizon": 2.0, "substeps": 3})
    if truth:
        r.truth = mean + 0.5
        r.rel_error = np.full(n_t, 0.1)
        r.inside_band = np.full(n_t, 0.9)
        r.coverage = 0.9
    return r


def test_npz_round_trip_has_every_array_with_its_shape():
    r = make_result(truth=True)
    data = np.load(io.BytesIO(export.prediction_npz(r, {"probe": 4})), allow_pickle=False)
    n_t, n_x, levels = 9, 12, len(export.EXPORT_LEVELS)
    assert data["t"].shape == (n_t,) and data["mean"].shape == data["std"].shape == (n_t, n_x)
    np.testing.assert_allclose(data["quantile_levels"], [0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975])
    assert data["quantiles"].shape == (levels, n_t, n_x)
    for i, q in enumerate(export.EXPORT_LEVELS):  # each level is the one asked for
        np.testing.assert_allclose(data["quantiles"][i], r.mean + q)
        np.testing.assert_allclose(data["latent_quantiles"][i], r.latent_mean - q)
    assert data["samples"].shape == (3, n_t, n_x) and data["latent_samples"].shape == (3, n_t, 2)
    assert data["latent_mean"].shape == (n_t, 2) and data["forcing"].shape == (n_t, 1)
    assert data["param_names"].tolist() == ["nu"] and data["forcing_names"].tolist() == ["u_left"]
    np.testing.assert_allclose(data["mu"], [0.03])
    assert data["truth"].shape == (n_t, n_x) and data["rel_error"].shape == (n_t,)
    info = json.loads(str(data["description"]))
    assert info["mu"] == {"nu": 0.03} and info["forcing"]["u_left"]["family"] == "sine"
    assert info["n_paths"] == 48 and info["seed"] == 0 and info["probe"] == 4
    assert info["quantile_levels"] == list(export.EXPORT_LEVELS) and info["preview"] is False


def test_npz_without_truth_or_parameters():
    r = make_result(state_shape=(2, 4, 5))
    r.inputs = {}
    data = np.load(io.BytesIO(export.prediction_npz(r)), allow_pickle=False)
    assert "truth" not in data.files and data["param_names"].shape == (0,)
    assert data["quantiles"].shape == (7, 9, 2, 4, 5)


def test_csv_has_a_header_and_one_row_per_time():
    r = make_result(truth=True)
    text = export.qoi_csv(r, probe=5).decode()
    lines = text.splitlines()
    assert lines[0] == "t,mean,std,q02_5,q05,q25,q50,q75,q95,q97_5,truth" and len(lines) == 10
    table = np.genfromtxt(io.StringIO(text), delimiter=",", names=True)
    assert table.dtype.names == ("t", "mean", "std", "q02_5", "q05", "q25", "q50", "q75", "q95",
                                 "q97_5", "truth")
    assert table.shape == (9,)
    np.testing.assert_allclose(table["t"], r.t)
    np.testing.assert_allclose(table["mean"], r.mean[:, 5], rtol=1e-8)
    np.testing.assert_allclose(table["q95"], r.mean[:, 5] + 0.95, rtol=1e-8)
    np.testing.assert_allclose(table["q97_5"], r.mean[:, 5] + 0.975, rtol=1e-8)
    np.testing.assert_allclose(table["truth"], r.truth[:, 5], rtol=1e-8)


def test_csv_of_a_2d_field_uses_the_flat_index_and_checks_it():
    r = make_result(state_shape=(2, 3, 4))
    table = np.genfromtxt(io.BytesIO(export.qoi_csv(r, probe=13)), delimiter=",", names=True)
    np.testing.assert_allclose(table["mean"], r.mean.reshape(9, -1)[:, 13], rtol=1e-8)
    assert "truth" not in table.dtype.names
    with pytest.raises(ValueError, match=r"probe must be a flat state index in \[0, 23\]"):
        export.qoi_csv(r, probe=24)


@pytest.mark.parametrize("shape, kind", [((12,), "field1d"), ((3,), "vector"),
                                         ((2, 6, 5), "field2d")])
def test_png_is_a_png_for_every_kind_of_state(shape, kind):
    r = make_result(state_shape=shape, truth=True)
    assert export.field_kind(shape) == kind
    png = export.prediction_png(r, probe=1, frame=4, title="test", dpi=40)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2_000


def test_every_drawn_band_can_be_rebuilt_from_an_export_and_the_quoted_band_is_drawn():
    from app.state.explore import BANDS, COVERAGE_BAND

    r = make_result()
    data = np.load(io.BytesIO(export.prediction_npz(r)), allow_pickle=False)
    levels = list(data["quantile_levels"])
    for lo, hi in BANDS:  # each band on screen from the exported quantiles
        np.testing.assert_allclose(data["quantiles"][levels.index(lo)], r.quantile(lo))
        np.testing.assert_allclose(data["quantiles"][levels.index(hi)], r.quantile(hi))
    assert tuple(COVERAGE_BAND) in BANDS  # the coverage quoted is of a band that is drawn


def test_the_figure_title_names_mu_values_and_the_forcing():
    title = export.title(make_result())
    assert title.startswith("burgers · μ: nu = 0.03 · u_left: sine(")
    assert "amplitude=2" in title and "frequency=1" in title and title.endswith("48 paths")
    assert "['nu']" not in title
