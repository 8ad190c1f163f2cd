"""The cylinder-with-jets lattice-Boltzmann system (small preset, CPU)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

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


# --------------------------------------------------------------- lattice kernels, jets

@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny lattices: one thread is faster and immune to oversubscribed CPUs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _lattice(**kw):
    system = CylinderSystem.from_preset("small", device="cpu", lattice_dtype="float64", **kw)
    lat = system.lattice()
    wp, wm = system._omegas(lat, [40.0])
    return system, lat, wp, wm


def _steps(lat, f, wp, wm, q, n):
    forces = []
    for _ in range(n):
        f, force = lat.step(f, wp, wm, torch.full((f.shape[0],), q, dtype=f.dtype))
        forces.append(force)
    return f, torch.stack(forces, 1)


@pytest.mark.parametrize("kw", [{}, {"collision": "trt", "outflow": "pressure"},
                                {"bounce_back": "simple", "equilibrium": "standard"}])
def test_streaming_by_gather_equals_shifted_copies(kw):
    _, lat, wp, wm = _lattice(**kw)
    f0 = lat.initial(2)
    lat.gather = True
    a, fa = _steps(lat, f0, wp, wm, 1e-3, 30)
    lat.gather = False
    b, fb = _steps(lat, f0, wp, wm, 1e-3, 30)
    fluid = ~lat.solid
    assert torch.equal(a[:, :, fluid], b[:, :, fluid]) and torch.equal(fa, fb)
    # solid nodes stay at rest (to rounding: the gather path collides them too)
    rest = lat.w.view(1, 9, 1).expand(2, 9, int(lat.solid.sum()))
    torch.testing.assert_close(a[:, :, lat.solid], rest, rtol=0, atol=1e-15)
    torch.testing.assert_close(b[:, :, lat.solid], rest, rtol=0, atol=0)


@pytest.mark.parametrize("equilibrium", ["incompressible", "standard"])
def test_equilibrium_moments(equilibrium):
    _, lat, _, _ = _lattice(equilibrium=equilibrium)
    gen = torch.Generator().manual_seed(0)
    rho = 1 + 0.05 * torch.rand(3, 1, 7, generator=gen, dtype=torch.float64)
    ux, uy = (0.1 * torch.randn(3, 1, 7, generator=gen, dtype=torch.float64) for _ in "xy")
    feq = lat.feq(rho, ux, uy)
    c = lat.c.view(1, 9, 2, 1)
    momentum = (feq.unsqueeze(2) * c).sum(1)  # (3, 2, 7)
    scale = 1.0 if equilibrium == "incompressible" else rho[:, 0]
    torch.testing.assert_close(feq.sum(1), rho[:, 0])
    torch.testing.assert_close(momentum[:, 0], scale * ux[:, 0])
    torch.testing.assert_close(momentum[:, 1], scale * uy[:, 0])
    r2, u2, v2 = lat.moments(feq)
    torch.testing.assert_close((r2, u2, v2), (rho, ux, uy))


def test_forces_do_not_depend_on_the_density_level():
    """The root cause of the old +9 % drag: a floating density level scaled the forces."""
    _, lat, wp, wm = _lattice()
    f0, _ = _steps(lat, lat.initial(1), wp, wm, 0.0, 40)
    shift = 0.05 * lat.w.view(1, 9, 1, 1) * lat.fluid_f  # ρ → ρ + 0.05 in the fluid
    a, fa = _steps(lat, f0, wp, wm, 2e-3, 40)
    b, fb = _steps(lat, f0 + shift, wp, wm, 2e-3, 40)
    torch.testing.assert_close(fb, fa, rtol=0, atol=1e-12)  # incompressible: exactly neutral
    torch.testing.assert_close(b - a, shift.expand_as(a), rtol=0, atol=1e-12)
    _, lat, wp, wm = _lattice(equilibrium="standard")
    _, fa = _steps(lat, f0, wp, wm, 0.0, 40)
    _, fb = _steps(lat, 1.05 * f0, wp, wm, 0.0, 40)
    torch.testing.assert_close(fb, 1.05 * fa)  # standard: forces scale with the level


def test_jet_limit_clips_and_net_flux_stays_zero():
    system = CylinderSystem.from_preset("small", t_end=0.1, n_t=3, lattice_dtype="float64")
    limit = system.jet_limit
    out = system.run([40.0], [make_forcing("sine", amplitude=3 * limit, frequency=5.0)])
    s = out["jet_flow"][0]
    assert np.abs(s).max() == pytest.approx(limit) and np.mean(np.abs(s) == limit) > 0.3
    lat = system.lattice()
    jm = out["jet_mass"][0]
    np.testing.assert_allclose(jm[:, 0], s * lat.dt / lat.dx**2, rtol=1e-12)
    assert np.abs(jm.sum(axis=1)).max() < 1e-15
    with pytest.raises(ValueError):
        CylinderSystem.from_preset("small", jet_limit=-1.0)


def test_block_replay_bookkeeping_matches_eager(monkeypatch):
    """The CUDA-graph path's static buffers and block splitting, emulated on the CPU."""
    import engine.systems.cylinder as cyl

    captured = set()

    class Emulated(cyl._Stepper):
        def __init__(self, lat, wp, wm, n, use_graph):
            super().__init__(lat, wp, wm, n, False)
            self.use_graph = True
            self._static_buffers()

        def _graph(self, length):
            captured.add(length)
            return SimpleNamespace(replay=lambda: self._static_steps(length))

    system = CylinderSystem.from_preset("small", t_end=0.2, n_t=4, spinup=0.02)
    t = np.array([0.0, 0.011, 0.1, 0.2])  # uneven snapshot gaps: pieces of 64 ... 1
    jets = [make_forcing("sine", amplitude=0.01, frequency=5.0), make_forcing("none")]
    eager = system.run([[40.0], [45.0]], jets, t)
    cyl._SPINUP_CACHE.clear()
    monkeypatch.setattr(cyl, "_Stepper", Emulated)
    replay = system.run([[40.0], [45.0]], jets, t)
    assert {1, 2, 64} <= captured
    for key in ("x", "cd", "cl", "mass"):
        np.testing.assert_allclose(replay[key], eager[key], rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_and_eager_agree():
    jets = [make_forcing("smooth_random", amplitude=0.005, length_scale=0.05, seed=1),
            make_forcing("none")]
    kw = {"device": "cuda", "spinup": 0.05, "t_end": 0.3, "n_t": 7}
    graph = CylinderSystem.from_preset("small", cuda_graph=True, **kw).run([[40.0], [45.0]], jets)
    eager = CylinderSystem.from_preset("small", cuda_graph=False, **kw).run([[40.0], [45.0]], jets)
    for key in ("x", "cd", "cl", "mass"):
        np.testing.assert_allclose(graph[key], eager[key], rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_in_float64():
    jets = [make_forcing("sine", amplitude=0.01, frequency=5.0)]
    kw = {"spinup": 0.05, "t_end": 0.2, "n_t": 5, "lattice_dtype": "float64"}
    gpu = CylinderSystem.from_preset("small", device="cuda", **kw).run([40.0], jets)
    cpu = CylinderSystem.from_preset("small", device="cpu", **kw).run([40.0], jets)
    for key in ("x", "cd", "cl", "mass"):
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-9, atol=1e-11)


def test_wake_figure_script(tmp_path):
    pytest.importorskip("matplotlib")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "cylinder_wake_figure.py"
    spec = importlib.util.spec_from_file_location("cylinder_wake_figure", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    report = script.main(["--device", "cpu", "--resolution", "8", "--spinup", "0.3",
                          "--t-end", "0.4", "--png", str(tmp_path / "wake.png"),
                          "--json", str(tmp_path / "wake.json")])
    assert (tmp_path / "wake.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "wake.json").read_text()) == json.loads(json.dumps(report))
    assert report["jets_off"]["cd_mean"] > 0.5
    assert report["jet_flow_abs_mean"] <= report["jet_limit"]
    assert abs(report["on_minus_off"]["cl_rms"]) > 0.05  # the jets change the lift
    summary = (tmp_path / "wake.md").read_text()
    assert f"{report['jets_off']['cd_mean']:.4g}" in summary
    assert f"{100 * report['relative_change']['cd_mean']:+.1f} %" in summary


def _script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_validation_table_marks_runs_in_and_out_of_range(tmp_path, monkeypatch):
    from pathlib import Path

    table = _script("cylinder_validation_table")
    results = Path(table.RESULTS)
    for name in ("cylinder_validation_r20.json", "cylinder_validation_r40_u0p05.json"):
        (tmp_path / name).write_text((results / name).read_text())
    monkeypatch.setattr(table, "RESULTS", tmp_path)
    table.main()
    text = (tmp_path / "cylinder_validation.md").read_text()
    runs = {n: json.loads((tmp_path / n).read_text()) for n in
            ("cylinder_validation_r20.json", "cylinder_validation_r40_u0p05.json")}
    assert not all(runs["cylinder_validation_r20.json"]["pass"].values())
    assert all(runs["cylinder_validation_r40_u0p05.json"]["pass"].values())
    assert text.strip().splitlines()[-1] == \
        "Runs with all three quantities in range: 40 cells/D at U_max = 0.05."
    assert "| 20 | 0.1 (0.17) |" in text
