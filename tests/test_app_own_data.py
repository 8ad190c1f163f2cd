"""A model of the user's own data (no built-in simulator) in the Explore state
(issue 17, item 1): initial states from the model's training data, sliders over the trained
ranges of μ and of the forcing, no simulator comparison, nothing raised."""

from __future__ import annotations

import numpy as np
import pytest
from own_data import own_data_npz, train_own_data_model

from app.state import catalog
from app.state.explore import ExploreState, data_initial_state
from app.state.specs import data_forcing_ranges, forcing_value_range


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory):
    return train_own_data_model(tmp_path_factory.mktemp("own-models")).parent


@pytest.fixture
def state(own_dir) -> ExploreState:
    entries = catalog.discover_models([("user", own_dir)])
    assert [e.system for e in entries] == [None]
    return ExploreState(models=entries, n_paths=8)


def test_a_prediction_starts_from_a_training_case_with_its_mu(state):
    model = state.model
    cases = model.initial_states_
    assert state.system is None and state.error == "", state.error
    r = state.result
    assert r is not None and np.isfinite(r.mean).all() and r.mean.shape == (r.t.size, 2)
    assert state.mu == {"stiffness": pytest.approx(float(cases.mu[0, 0]))}
    # the state the prediction started from is the kept training state
    assert r.inputs["initial_state"] == {"training_trajectory": int(cases.index[0])}
    x0, mu, note = data_initial_state(model, 3)
    np.testing.assert_array_equal(x0, cases.x0[3, 0])
    assert mu[0] == cases.mu[3, 0] and note == ""
    state.set_case(3)
    assert state.error == "" and state.case == 3
    assert state.mu["stiffness"] == pytest.approx(float(cases.mu[3, 0]))
    assert state.result.inputs["initial_state"]["training_trajectory"] == int(cases.index[3])
    assert list(state.case_labels().values()) == list(range(cases.n_cases))
    assert all(label.startswith("trajectory ") and "stiffness = " in label
               for label in state.case_labels())


def test_sliders_cover_the_trained_ranges_of_mu_and_of_the_forcing(state):
    model = state.model
    (spec,) = state.mu_specs
    lo, hi = model.param_ranges_[0]
    assert spec.trained == (lo, hi) and spec.bounds[0] < lo and spec.bounds[1] > hi
    f_lo, f_hi = forcing_value_range(model)
    assert (f_lo, f_hi) == tuple(model.initial_states_.f_range[0])
    # the default forcing is a constant at the middle of the values the training forcing took
    assert state.forcing_family == "step"
    f = state.result.forcing[:, 0]
    np.testing.assert_allclose(f, 0.5 * (f_lo + f_hi))
    assert state.trained_forcing_ranges("sine") == data_forcing_ranges(model, "sine")
    assert state.trained_forcing_ranges("sine")["offset"] == (f_lo, f_hi)
    state.param.update(forcing_family="sine")
    assert state.error == "" and state.forcing_params["offset"] == pytest.approx(0.5 * (f_lo + f_hi))
    assert state.warning == ""  # no "family not seen in training": it is not known


def test_the_simulator_comparison_is_never_run(state):
    state.show_truth = True
    assert state.error == "" and state.result.truth is None and state.result.coverage is None


def test_a_bad_training_case_is_an_error_not_an_exception(state):
    good = state.result
    state.case = 99
    assert "kept training case in 0.." in state.error and state.result is good
    state.case = 0
    assert state.error == ""


def test_a_model_saved_without_training_states_starts_from_its_mean(state):
    model = state.model
    kept = model.initial_states_
    try:
        model.initial_states_ = None
        x0, mu, note = data_initial_state(model, 0)
        assert mu is None and "mean state" in note
        np.testing.assert_allclose(x0, np.broadcast_to(model.normalization_.x_mean, (2,)))
        lo, hi = forcing_value_range(model)
        norm = model.normalization_
        assert lo == pytest.approx(norm.f_mean[0] - 2 * norm.f_std[0])
        state.refresh()
        assert state.error == "" and "mean state" in state.warning
        assert state.case_labels() == {}
    finally:
        model.initial_states_ = kept


def test_windowed_models_get_a_window_of_their_data(tmp_path):
    directory = train_own_data_model(tmp_path, name="own-win", steps=4, n_win=3)
    model = catalog.load_cached(directory)
    x0, _, _ = data_initial_state(model, 1)
    assert x0.shape == (1, 3, 2)
    np.testing.assert_array_equal(x0[0], model.initial_states_.x0[1])
    state = ExploreState(models=catalog.discover_models([("user", tmp_path)]), n_paths=8)
    assert state.error == "" and state.result is not None
    assert state.result.mean.shape[1:] == (2,)


# ------------------------------------------------------------------- the view
def _settle(view) -> None:
    assert view.state.wait(60), "the background prediction did not finish"


def test_the_view_predicts_and_offers_the_training_states_not_the_simulator(own_dir):
    pn = pytest.importorskip("panel")
    from app.views.controls import label_of
    from app.views.explore import NO_SIMULATOR_NOTE, ExploreView

    view = ExploreView(state=ExploreState(models=catalog.discover_models([("user", own_dir)]),
                                          n_paths=8))
    pn.panel(view).get_root()
    _settle(view)
    s = view.state
    assert s.error == "" and not view._error.visible and s.result is not None
    assert np.isfinite(view._plots["qoi"].source.data["mean"]).all()
    assert view._truth.disabled and view._truth_note.visible
    assert view._truth_note.object == NO_SIMULATOR_NOTE
    assert "no simulator: predictions start from 6 states of its training data" in \
        view._model_info.object
    assert view._case.visible and list(view._case.options.values()) == list(range(6))
    view._case.value = 4  # another training trajectory: its state and its μ
    _settle(view)
    cases = s.model.initial_states_
    assert s.case == 4 and s.error == ""
    assert s.result.inputs["initial_state"]["training_trajectory"] == int(cases.index[4])
    slider = view._mu_controls["stiffness"].slider
    assert slider.value == pytest.approx(float(cases.mu[4, 0]))
    assert label_of(slider).startswith("stiffness")
    assert [label_of(w) for w in view._forcing_box] == ["time", "level", "before"]


def test_an_error_replaces_the_status_line(own_dir):
    pytest.importorskip("panel")
    from app.views.explore import STALE_STATUS, ExploreView

    view = ExploreView(state=ExploreState(models=catalog.discover_models([("user", own_dir)]),
                                          n_paths=8))
    _settle(view)
    assert "predicted in" in view._status.object
    view.state.horizon = -5.0  # before the start: refused
    _settle(view)
    assert view._error.visible and view._status.object == STALE_STATUS
    view.state.horizon = float(view.state.model.t_range_[1])
    _settle(view)
    assert not view._error.visible and "predicted in" in view._status.object


def test_upload_train_save_then_explore(tmp_path, monkeypatch):
    """The path of issue 17, item 1: Train tab → own .npz → train → save → Explore."""
    import time

    from app.state.training import TrainingState
    from app.state.worker import TrainingWorker

    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path / "models"))
    data = own_data_npz(tmp_path / "mine.npz").read_bytes()
    worker = TrainingWorker()
    try:
        train = TrainingState(worker=worker, steps=4, validate_every=2, latent_dim=2,
                              device="cpu", options={"hidden": (16, 16), "window": 8,
                                                     "drift_hidden": (16,), "n_quad": 4,
                                                     "windows_per_step": 2})
        assert train.add_upload("mine.npz", data), train.upload_error
        assert train.start()
        start = time.monotonic()
        while train.active:
            assert time.monotonic() - start < 120, train.message
            time.sleep(0.05)
            train.poll()
        assert train.status == "completed", train.error
        assert train.save("mine") and train.error == ""
    finally:
        worker.shutdown()
    entries = catalog.discover_models([("user", tmp_path / "models")])
    assert [e.system for e in entries] == [None]
    state = ExploreState(models=entries, n_paths=8)
    assert state.error == "" and state.result is not None and state.system is None
    assert np.isfinite(state.result.mean).all()
    assert state.model.initial_states_ is not None and state.warning == ""
