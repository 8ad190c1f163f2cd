import os

import numpy as np
import pytest
import torch
from problems import duffing_dataset

from engine import RecordingCallback, StochasticROM, StopFlag
from engine.train import CheckpointError, read_checkpoint


def model(**kw):
    params = dict(latent_dim=2, steps=60, window=16, windows_per_step=2, drift_hidden=(16,),
                  log_every=10, seed=3)
    params.update(kw)
    return StochasticROM(**params)


@pytest.fixture(scope="module")
def data():
    return duffing_dataset(4, n_times=41)


def state(m):
    return {k: v.clone() for k, v in m.module_.state_dict().items()}


class StopAt(RecordingCallback):
    def __init__(self, flag, step):
        super().__init__()
        self.flag, self.step = flag, step

    def on_log(self, step, metrics):
        super().on_log(step, metrics)
        if step >= self.step:
            self.flag.set()


def test_training_is_reproducible(data):
    a, b = state(model().fit(data)), state(model().fit(data))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("average_steps", [0, 7])
def test_resume_equals_an_uninterrupted_run(tmp_path, data, average_steps):
    full = model(average_steps=average_steps).fit(data)
    flag = StopFlag()
    ckpt = tmp_path / "ckpt.safetensors"
    part = model(average_steps=average_steps).fit(data, stop_flag=flag, callback=StopAt(flag, 30),
                                                  checkpoint=ckpt)
    assert part.training_["status"] == "stopped" and part.training_["steps"] == 30
    assert any(k.startswith("average.") for k in read_checkpoint(ckpt)[0]) == bool(average_steps)
    resumed = model(average_steps=average_steps).fit(data, resume_from=ckpt)
    assert resumed.training_["resumed_from_step"] == 30
    a, b = state(full), state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in full.training_["history"]] == [h["loss"] for h in resumed.training_["history"]]


def test_callbacks_receive_start_logs_and_end(data):
    rec = RecordingCallback()
    model(steps=25).fit(data, callback=rec)
    assert rec.started == (25, 0)
    assert [s for s, _ in rec.logs] == [10, 20, 25]
    assert {"loss", "ell", "residual", "kl", "beta", "lr"} <= set(rec.logs[0][1])
    assert rec.ended[:2] == (25, "completed")


class Poison(RecordingCallback):
    """Corrupts a weight after a log, as a diverging optimizer would."""

    def __init__(self, module_holder, at):
        super().__init__()
        self.holder, self.at = module_holder, at

    def on_log(self, step, metrics):
        super().on_log(step, metrics)
        if step == self.at:
            self.good = {k: v.clone() for k, v in self.holder.module_.state_dict().items()}
            with torch.no_grad():
                next(self.holder.module_.drift.parameters()).fill_(float("nan"))


def test_non_finite_loss_stops_and_keeps_last_good_parameters(data):
    m = model(average_steps=0)  # the callback's poison reaches the trained parameters
    poison = Poison(m, 20)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        m.fit(data, callback=poison)
    assert m.training_["status"] == "diverged" and m.training_["steps"] == 20
    now = m.module_.state_dict()
    assert all(torch.equal(now[k], poison.good[k]) for k in now)
    assert all(torch.isfinite(v).all() for v in now.values())
    pred = m.predict(data.x[0, 0], data.mu[0], data.t, data.f[0], n_samples=2)
    assert np.all(np.isfinite(pred.mean))


def test_divergence_with_averaging_returns_the_average_of_the_last_good_log(data, monkeypatch):
    import engine.train as train_module

    m = model(average_steps=7)
    kept = {}

    class Keep(RecordingCallback):
        def on_log(self, step, metrics):  # what callbacks see: the average
            kept[step] = {k: v.clone() for k, v in m.module_.state_dict().items()}

    original = train_module.Trainer._compute_and_update

    def diverging(self):  # the optimizer blows up after step 25
        if int(self.step_tensor) == 25:
            with torch.no_grad():
                self.params[0].fill_(float("nan"))
        original(self)

    monkeypatch.setattr(train_module.Trainer, "_compute_and_update", diverging)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        m.fit(data, callback=Keep())
    assert m.training_["status"] == "diverged" and m.training_["steps"] == 20
    assert m.training_["average_steps"] == 7
    now = m.module_.state_dict()
    assert all(torch.equal(now[k], kept[20][k]) for k in now)
    assert all(torch.isfinite(v).all() for v in now.values())


def test_averaging_by_default_only_for_the_data_size_schedule():
    assert model(steps=None)._resolve_average_steps(4000) == 500
    assert model(steps=None)._resolve_average_steps(2000) == 250
    assert model()._resolve_average_steps(60) == 0  # a schedule the user gave
    assert model(average_steps=9)._resolve_average_steps(60) == 9
    with pytest.raises(ValueError, match="average_steps"):
        model(average_steps=-1).fit(duffing_dataset(2, n_times=21))


def test_training_returns_the_average_of_its_iterates(data, monkeypatch):
    from engine.param_average import ParameterAverage

    last_iterate = {}
    original = ParameterAverage.copy_to_params

    def copy_to_params(self):
        last_iterate["params"] = [p.detach().clone() for p in self.params]
        last_iterate["average"] = [a.clone() for a in self.average]
        original(self)

    monkeypatch.setattr(ParameterAverage, "copy_to_params", copy_to_params)
    averaged = model(average_steps=20).fit(data)
    plain = model(average_steps=0).fit(data)
    assert averaged.training_["average_steps"] == 20 and plain.training_["average_steps"] == 0
    trained = [p.detach() for p in plain.module_.parameters() if p.requires_grad]
    returned = [p.detach() for p in averaged.module_.parameters() if p.requires_grad]
    # the same optimisation either way (the average never feeds back) ...
    assert all(torch.equal(a, b) for a, b in zip(last_iterate["params"], trained))
    # ... and what is returned is the average, not the last iterate
    assert all(torch.equal(a, b) for a, b in zip(returned, last_iterate["average"]))
    assert not all(torch.equal(a, b) for a, b in zip(returned, trained))


def test_checkpoints_are_atomic(tmp_path, data, monkeypatch):
    ckpt = tmp_path / "ckpt.safetensors"
    model(steps=20, checkpoint_every=10).fit(data, checkpoint=ckpt)
    tensors, info = read_checkpoint(ckpt)
    assert info["step"] == 20 and "rng.cpu" in tensors
    before = ckpt.read_bytes()

    import engine.train as train_module

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(train_module, "save_file", broken_save)
    # a failed checkpoint write warns and the training goes on (its weights are in memory)
    with pytest.warns(RuntimeWarning, match="disk full"):
        trained = model(steps=20, checkpoint_every=10).fit(data, checkpoint=ckpt)
    assert trained.training_["status"] == "completed"
    assert ckpt.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_bad_checkpoint_is_reported(tmp_path, data):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    with pytest.raises(CheckpointError, match="not a readable srom checkpoint"):
        model().fit(data, resume_from=bad)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        model().fit(data, resume_from=tmp_path / "missing.safetensors")
    ckpt = tmp_path / "c.safetensors"
    model(steps=10).fit(data, checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="does not match"):
        model(drift_hidden=(8,)).fit(data, resume_from=ckpt)
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
    assert os.path.getsize(ckpt) > 0


def _edited_checkpoint(source, target, record=None, tensors=None):
    """A copy of the checkpoint ``source`` with its record and tensors edited."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(source), "pt") as handle:
        meta = dict(handle.metadata())
    info = json.loads(meta["srom_checkpoint"])
    save_file((tensors or (lambda t: t))(load_file(str(source))), str(target),
              {**meta, "srom_checkpoint": json.dumps(record(info) if record else info)})
    return target


@pytest.mark.parametrize("record, tensors, match", [
    # found by tests/test_properties.py: TypeError, OverflowError, KeyError and RuntimeError
    # at the first step instead of CheckpointError
    (lambda info: [1], None, "not an srom checkpoint"),
    (lambda info: {**info, "step": 10**30}, None, "step must be a whole number"),
    (None, lambda t: {k: v for k, v in t.items() if k != "optim.0.exp_avg_sq"},
     "lacks \\['exp_avg_sq'\\]"),
    (None, lambda t: {**t, "optim.0.step": torch.zeros(3)}, "'optim.0.step' has shape"),
    (None, lambda t: {**t, "optim.0.step": torch.tensor(-1e30)}, "must be a step count"),
    (None, lambda t: {**t, "optim.0.exp_avg": torch.zeros(7)}, "'optim.0.exp_avg' has shape"),
    (lambda info: {**info, "normalization": {**info["normalization"], "mu_mean": []}}, None,
     "'mu_mean' has shape"),
])
def test_an_edited_checkpoint_is_reported(tmp_path, data, record, tensors, match):
    ckpt = tmp_path / "c.safetensors"
    model(steps=10).fit(data, checkpoint=ckpt)
    edited = _edited_checkpoint(ckpt, tmp_path / "e.safetensors", record, tensors)
    with pytest.raises(ValueError, match=match):
        model(steps=20).fit(data, resume_from=edited)


def test_time_budget_ends_training_at_a_log_and_saves(tmp_path, data):
    ckpt = tmp_path / "ckpt.safetensors"
    m = model(steps=10_000).fit(data, max_seconds=0.0, checkpoint=ckpt)
    assert m.training_["status"] == "budget"
    assert m.training_["steps"] == 10  # the first log (log_every=10)
    assert "time budget" in m.training_["message"]
    assert read_checkpoint(ckpt)[1]["step"] == 10
    # a budget that is never reached changes nothing
    assert model(steps=20).fit(data, max_seconds=3600).training_["status"] == "completed"


def test_selection_on_validation_keeps_the_best_scored_parameters(data):
    val = duffing_dataset(2, n_times=41, seed=11)
    plain = model(steps=60).fit(data)
    chosen = model(steps=60).fit(data, validation=val, select_every=20, select_samples=8)
    sel = chosen.training_["selection"]
    steps = [s for s, _ in sel["scores"]]
    assert steps == [20, 40, 60]
    assert [h["step"] for h in chosen.training_["history"] if "val_rel_l2" in h] == [20, 40, 60]
    # every score integrated with the substeps the step check chose for those parameters
    assert len(sel["substeps"]) == 3 and all(n >= 1 for n in sel["substeps"])
    best_step, best = min(sel["scores"], key=lambda sv: sv[1])
    assert sel["best_step"] == best_step and sel["best_val_rel_l2"] == best
    # scoring draws from its own generator: the training run itself is unchanged
    assert [h["loss"] for h in plain.training_["history"]] == \
        [h["loss"] for h in chosen.training_["history"]]
    # the restored parameters are those that scored best
    again = chosen.evaluate(val, n_samples=8, seed=chosen.seed)["rel_l2_mean"]
    assert again == pytest.approx(best, rel=1e-6)
    if best_step == 60:
        a, b = state(plain), state(chosen)
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:
        assert not all(torch.equal(a, b) for a, b in zip(state(plain).values(), state(chosen).values()))


def test_a_resumed_selection_keeps_the_best_parameters_and_scores(tmp_path, data):
    """The checkpoint carries the selection's best parameters and scores: a training cut
    in two calls selects as one run does (the long reaction–diffusion schedule)."""
    val = duffing_dataset(2, n_times=41, seed=11)
    kw = dict(validation=val, select_every=10, select_samples=4, select_substeps=1)
    whole = model(steps=40).fit(data, **kw)
    flag, ckpt = StopFlag(), tmp_path / "c.safetensors"
    model(steps=40).fit(data, stop_flag=flag, callback=StopAt(flag, 20), checkpoint=ckpt, **kw)
    tensors, info = read_checkpoint(ckpt)
    assert [s for s, _ in info["state"]["scores"]] == [10, 20]
    assert any(k.startswith("state.") for k in tensors) and info["state"]["best_step"] in (10, 20)
    resumed = model(steps=40).fit(data, resume_from=ckpt, **kw)
    a, b = whole.training_["selection"], resumed.training_["selection"]
    assert a["scores"] == b["scores"] and a["best_step"] == b["best_step"]
    assert all(torch.equal(x, y) for x, y in zip(state(whole).values(), state(resumed).values()))
    # a record or tensors that do not fit are reported, not loaded
    for record, edit, match in (
            (lambda i: {**i, "state": {**i["state"], "scores": [[1, "x"]]}}, None, "scores"),
            (lambda i: {**i, "state": {**i["state"], "best_score": None}}, None, "best step"),
            (None, lambda t: {k: v for k, v in t.items() if not k.startswith("state.drift")},
             "do not fit")):
        edited = _edited_checkpoint(ckpt, tmp_path / "e.safetensors", record, edit)
        with pytest.raises(CheckpointError, match=match):
            model(steps=40).fit(data, resume_from=edited, **kw)


def test_selection_with_fixed_substeps_skips_the_step_check(data, monkeypatch):
    import engine.selection as selection

    def no_check(*args, **kwargs):
        raise AssertionError("the step check ran although the substeps were fixed")

    monkeypatch.setattr(selection, "choose_substeps", no_check)
    val = duffing_dataset(2, n_times=41, seed=11)
    m = model(steps=40).fit(data, validation=val, select_every=20, select_samples=4,
                            select_substeps=3)
    sel = m.training_["selection"]
    assert sel["substeps"] == [3, 3]
    # the kept score is the evaluation of the kept parameters at those substeps
    assert m.evaluate(val, n_samples=4, seed=m.seed, substeps=3)["rel_l2_mean"] == \
        pytest.approx(sel["best_val_rel_l2"], rel=1e-6)
    with pytest.raises(ValueError, match="substeps"):
        model(steps=20).fit(data, validation=val, select_every=10, select_substeps=0)


def test_selection_scores_the_end_of_a_stopped_run(data):
    val = duffing_dataset(2, n_times=41, seed=11)
    flag = StopFlag()
    m = model(steps=60).fit(data, validation=val, select_every=20, stop_flag=flag,
                            callback=StopAt(flag, 30))
    assert m.training_["status"] == "stopped"
    assert [s for s, _ in m.training_["selection"]["scores"]] == [20, 30]


def test_selection_needs_both_validation_and_an_interval(data):
    with pytest.raises(ValueError, match="select_every"):
        model().fit(data, validation=duffing_dataset(1, n_times=41))
    with pytest.raises(ValueError, match="select_every"):
        model().fit(data, select_every=10)


def test_resume_from_a_checkpoint_without_an_average_starts_one(tmp_path, data):
    flag = StopFlag()
    ckpt = tmp_path / "ckpt.safetensors"
    model(average_steps=0).fit(data, stop_flag=flag, callback=StopAt(flag, 30), checkpoint=ckpt)
    resumed = model(average_steps=7).fit(data, resume_from=ckpt)
    assert resumed.training_["status"] == "completed" and resumed.training_["steps"] == 60
    assert all(torch.isfinite(v).all() for v in resumed.module_.state_dict().values())
