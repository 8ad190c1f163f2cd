"""The cylinder-with-jets lattice-Boltzmann system (small preset, CPU)."""

import json

import numpy as np
import pytest

from engine.data import Dataset
from engine.forcing import make_forcing
from engine.systems.cylinder import CylinderSystem


@pytest.fixture(scope="module")
def small():
    return CylinderSystem.from_preset("small")


@pytest.fixture(scope="module")
def symmetric_runs():
    """Zero jets vs. nonzero jets in a symmetric channel (cylinder on the centre line)."""
    system = CylinderSystem.from_preset("small", cylinder_y=0.205, lattice_dtype="float64")
    off = system.run([40.0], [make_forcing("none")])
    on = system.run([40.0], [make_forcing("sine", amplitude=0.01, frequency=5.0)])
    return system, off, on


def _asymmetry(field):
    """Relative deviation of (u, v, p) from mirror symmetry about the channel centre line."""
    u, v, p = field
    dev = (np.abs(u - u[::-1]).max() + np.abs(v + v[::-1]).max() + np.abs(p - p[::-1]).max())
    return dev / np.abs(field).max()


def test_small_preset_dataset(small):
    data = small.generate(2, split="train", seed=1)
    assert isinstance(data, Dataset)
    t = small.time_grid()
    assert data.x.shape == (2, t.size) + small.state_shape == (2, 11, 3, 16, 88)
    assert data.mu.shape == (2, 1) and data.f.shape == (2, t.size, 1)
    assert data.param_names == ["Re"] and data.forcing_names == ["jet"]
    assert np.all(np.isfinite(data.x))
    assert np.all((data.mu >= 30.0) & (data.mu <= 50.0))
    assert data.attrs["forcings"][0][0]["family"] == "smooth_random"
    json.dumps(data.attrs)
    grid = small.grid()
    assert grid["y"].shape == (16,) and grid["x"].shape == (88,)
    # a plausible flow: mean streamwise velocity near Ū = 1, zero inside the cylinder
    u = data.x[:, -1, 0]
    assert 0.7 < u.mean() < 1.3
    iy, ix = np.argmin(np.abs(grid["y"] - 0.2)), np.argmin(np.abs(grid["x"] - 0.2))
    assert np.all(data.x[:, :, :, iy, ix] == 0.0)


def test_default_and_paper_declarations():
    default = CylinderSystem.from_preset("default")
    assert default.param_specs() == [] and default.state_shape == (3, 40, 220)
    paper = CylinderSystem.from_preset("paper")
    assert paper.state_shape == (3, 80, 440) and paper.time_grid().size == 134
    assert paper.lattice_info()["ny_fluid"] == 82
    (spec,) = paper.forcing_specs()
    assert spec.default_family == "smooth_random"
    json.dumps(paper.describe())
    with pytest.raises(ValueError):
        CylinderSystem.from_preset("small").simulate(mu=[-1.0])


def test_seeded_reproducibility(small):
    a = small.generate(1, split="train", seed=3)
    b = small.generate(1, split="train", seed=3)
    c = small.generate(1, split="val", seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.f, b.f)
    assert not np.array_equal(a.x, c.x)


def test_zero_jets_symmetric_nonzero_jets_break_symmetry(symmetric_runs):
    _, off, on = symmetric_runs
    assert _asymmetry(off["x"][0, -1]) < 1e-8
    assert np.abs(off["cl"]).max() < 1e-8
    assert _asymmetry(on["x"][0, -1]) > 0.05
    assert np.abs(on["cl"]).max() > 0.1
    diff = np.abs(on["x"][0, -1] - off["x"][0, -1]).max() / np.abs(off["x"][0, -1]).max()
    assert diff > 0.05


def test_mass_conserved(symmetric_runs):
    _, off, on = symmetric_runs
    # total mass changes by < 2 % during the start-up (the pressure field builds up) ...
    assert np.all(np.abs(off["mass"] / off["mass"][:, :1] - 1) < 0.02)
    # ... and the jets add no net mass: the jets-on/off difference is far below what a
    # single jet injects in total
    one_jet = np.abs(on["jet_mass"][0, :, 0]).sum()
    assert one_jet > 1.0
    # (the zero-gradient outlet lets the pressure level float, hence a few per cent)
    assert np.abs(on["mass"] - off["mass"]).max() < 0.05 * one_jet


def test_jets_net_flux_zero(symmetric_runs):
    system, _, on = symmetric_runs
    jm = on["jet_mass"][0]  # (S, 2) top, bottom
    lat = system.lattice()
    expected = on["jet_flow"][0] * lat.dt / lat.dx**2
    np.testing.assert_allclose(jm[:, 0], expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(jm[:, 1], -expected, rtol=1e-10, atol=1e-14)
    assert np.abs(jm.sum(axis=1)).max() < 1e-12 * max(np.abs(jm).max(), 1.0)
    assert np.abs(expected).max() > 0


def test_forces_returned(small):
    x, diag = small.simulate(return_forces=True)
    assert x.shape == (11,) + small.state_shape
    s = diag["t_steps"].size
    assert diag["cd"].shape == (s,) and diag["cl"].shape == (s,)
    assert np.all(np.isfinite(diag["cd"])) and np.all(np.isfinite(diag["cl"]))
    # after the impulsive start the drag is positive and of order one to ten
    assert 0.5 < diag["cd"][s // 2:].mean() < 20
