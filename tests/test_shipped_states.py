"""Initial states shipped with the pretrained cylinder models (scripts/simulator_states.py):
the dashboard's first prediction finds them instead of spinning up the lattice-Boltzmann
solver (about two minutes on a 2-core CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from app.state import catalog, simulate
from app.state.explore import ExploreState
from engine.state_cache import SHIPPED_DIR, load_state

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("simulator_states",
                                              ROOT / "scripts" / "simulator_states.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


@pytest.mark.parametrize("name", script.DEFAULT_MODELS)
def test_the_nominal_state_is_shipped(name):
    model_dir = ROOT / "pretrained" / name
    model, _, key, *_ = script.nominal_case(model_dir)
    x0 = load_state(key, model_dir / SHIPPED_DIR, shape=tuple(model.state_shape_))
    assert x0 is not None, f"run: python scripts/simulator_states.py --only {name}"
    assert np.isfinite(x0).all() and float(np.abs(x0[0]).max()) > 0.5  # a flow, not zeros


def test_the_dashboard_predicts_a_cylinder_model_without_the_simulator(monkeypatch):
    from engine.systems.cylinder import CylinderSystem

    def no_simulation(self, *args, **kwargs):
        raise AssertionError("the simulator ran: the shipped initial state was not found")

    monkeypatch.setattr(CylinderSystem, "simulate", no_simulation)
    simulate.clear_cache()
    name = "cylinder_paper_d8"
    entries = [e for e in catalog.discover_models() if Path(e.path).name == name]
    state = ExploreState(models=entries, n_paths=4)
    assert state.error == "" and state.result is not None, state.error
    assert state.result.mean.shape[1:] == tuple(state.model.state_shape_)
    assert "amplitude" in state.forcing_params
    state.set_forcing_param("amplitude", 0.001)  # another forcing: the same x0 (t = 0)
    assert state.error == "", state.error
