import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from problems import duffing_dataset

from engine import load_model
from engine.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    duffing_dataset(4, n_times=41, seed=0).save(root / "train.npz")
    duffing_dataset(2, n_times=41, seed=1).save(root / "test.h5")
    return root


@pytest.fixture(scope="module")
def trained(files):
    out = files / "model"
    code = main(["train", str(files / "train.npz"), "--out", str(out), "--steps", "30",
                 "--window", "16", "--latent-dim", "2", "--set", "drift_hidden=[16]",
                 "--set", "log_every=10", "--val", str(files / "test.h5"), "--val-samples", "4"])
    assert code == 0
    return out


def test_train_writes_a_loadable_model(trained):
    model = load_model(trained)
    assert model.training_["steps"] == 30 and model.get_params()["drift_hidden"] == [16]
    assert "rel_l2_mean" in model.metrics_
    assert (trained / "checkpoint.safetensors").is_file()


def test_resume_continues_to_more_steps(files, trained):
    out = files / "resumed"
    code = main(["train", str(files / "train.npz"), "--out", str(out), "--steps", "40",
                 "--window", "16", "--latent-dim", "2", "--set", "drift_hidden=[16]",
                 "--set", "log_every=10", "--resume", str(trained / "checkpoint.safetensors")])
    assert code == 0
    assert load_model(out).training_["resumed_from_step"] == 30


def test_train_selects_on_validation(files, capsys):
    out = files / "selected"
    code = main(["train", str(files / "train.npz"), "--out", str(out), "--steps", "30",
                 "--window", "16", "--latent-dim", "2", "--set", "drift_hidden=[16]",
                 "--set", "log_every=10", "--val", str(files / "test.h5"),
                 "--select-every", "10", "--select-samples", "4", "--val-samples", "4"])
    assert code == 0
    selection = load_model(out).training_["selection"]
    assert [s for s, _ in selection["scores"]] == [10, 20, 30]
    assert f"kept the parameters of step {selection['best_step']}" in capsys.readouterr().err
    fixed = files / "selected_fixed"
    assert main(["train", str(files / "train.npz"), "--out", str(fixed), "--steps", "20",
                 "--window", "16", "--latent-dim", "2", "--set", "drift_hidden=[16]",
                 "--set", "log_every=10", "--val", str(files / "test.h5"), "--select-every", "10",
                 "--select-samples", "4", "--val-samples", "4", "--select-substeps", "2"]) == 0
    assert load_model(fixed).training_["selection"]["substeps"] == [2, 2]
    # without selection the option means nothing: one line, not a silent no-op
    assert main(["train", str(files / "train.npz"), "--out", str(fixed), "--steps", "20",
                 "--select-substeps", "2"]) != 0
    assert "--select-substeps needs --select-every" in capsys.readouterr().err


def test_evaluate_json(files, trained, capsys):
    assert main(["evaluate", str(trained), str(files / "test.h5"), "--n-samples", "8", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"rel_l2_mean", "rel_l2_std", "rmse", "crps", "coverage_90"} <= set(metrics)


def test_predict_from_dataset_and_from_new_inputs(files, trained):
    out = files / "pred.npz"
    assert main(["predict", str(trained), "--data", str(files / "test.h5"), "--index", "1",
                 "--n-samples", "5", "--out", str(out)]) == 0
    with np.load(out) as pred:
        assert pred["mean"].shape == (1, 41, 2) and pred["samples"].shape == (1, 5, 41, 2)
        assert pred["quantiles"].shape[0] == 5
    assert main(["predict", str(trained), "--x0-from", str(files / "test.h5"), "--mu", "0.3",
                 "--n-samples", "3", "--out", str(out)]) == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "missing.npz", "--out", "x"], "no such dataset file"),
    (["train", "data.csv", "--out", "x"], "unknown dataset file type"),
    (["evaluate", "no_model_dir", "data.npz"], "no such model directory"),
    (["train", "{train}", "--out", "{tmp}/m", "--steps", "0"], "steps must be a positive integer"),
    (["train", "{train}", "--out", "{tmp}/m", "--set", "hidden=5"], "hidden must be a list"),
    (["train", "{train}", "--out", "{train}"], "is a file: give a directory"),
    (["train", "{train}", "--out", "{tmp}/m", "--val", "{train}", "--val-samples", "0"],
     "--val-samples must be a positive integer"),
    (["evaluate", "{model}", "{train}", "--n-samples", "0"], "--n-samples must be a positive"),
    (["evaluate", "{model}", "{train}", "--device", "tpu"], "device must be 'auto', 'cpu'"),
    (["calibrate", "{model}", "{train}", "--n-samples", "0"], "--n-samples must be a positive"),
    (["tune-step", "{model}", "{train}", "--max-substeps", "0"], "--max-substeps must be"),
    (["train", "{train}", "--out", "{tmp}/m", "--set", "nonsense=1"], "bad hyperparameter"),
    (["train", "{train}", "--out", "{tmp}/m", "--select-every", "10"], "--select-every needs --val"),
    (["predict", "{model}", "--data", "{train}", "--index", "99", "--out", "{tmp}/p.npz"], "--index 99"),
    (["predict", "{model}", "--out", "{tmp}/p.npz"], "give --data"),
    (["predict", "{model}", "--data", "{train}", "--t-end", "3", "--forcing",
      "smooth_random:n_features=20000000", "--out", "{tmp}/p.npz"], "n_features must be in 1..4096"),
    (["predict", "{model}", "--data", "{train}", "--t-end", "3", "--forcing",
      "sum_of_sines:amplitudes=[1,2", "--out", "{tmp}/p.npz"], "unbalanced '['"),
    (["predict", "{model}", "--data", "{train}", "--n-samples", "100000000", "--out",
      "{tmp}/p.npz"], "this prediction is too large"),
    # found by tests/test_properties.py: tracebacks (allocator errors, TypeError, MemoryError,
    # RecursionError) or hours of work before these
    (["predict", "{model}", "--data", "{train}", "--n-samples", "1000000000000", "--out",
      "{tmp}/p.npz"], "this prediction is too large"),
    (["predict", "{model}", "--data", "{train}", "--t-end", "3", "--n-times", "1000000000000",
      "--forcing", "sine:", "--out", "{tmp}/p.npz"], "this prediction is too large"),
    (["predict", "{model}", "--data", "{train}", "--t-end", "3", "--forcing",
      "sine:amplitude=" + "[" * 5000 + "]" * 5000, "--out", "{tmp}/p.npz"], "nested too deeply"),
    (["evaluate", "{model}", "{train}", "--seed", "-1"], "--seed must be in 0..2**63 - 1"),
    (["train", "{train}", "--out", "{tmp}/m", "--latent-dim", "1000000000000"],
     "latent_dim must be None or an integer in 1..65536"),
    (["train", "{train}", "--out", "{tmp}/m", "--n-quad", "1000000000000"],
     "this model is too large to train"),
    (["train", "{train}", "--out", "{tmp}/m", "--windows-per-step", "1000000000000"],
     "this model is too large to train"),
    (["train", "{train}", "--out", "{tmp}/m", "--set", "conv_channels=1000000000000",
      "--architecture", "conv1d"], "this model is too large to train"),
    (["train", "{train}", "--out", "{tmp}/m", "--set", "decoder_log_var_prior=5"],
     "decoder_log_var_prior must be a (mean, std) pair"),
    (["train", "{train}", "--out", "{tmp}/m", "--drift", "library", "--set",
      "library_degree=1000000000000"], "monomials; at most"),
    (["tune-step", "{model}", "{train}", "--max-substeps", "1000000000000"],
     "max_substeps must be an integer in 1..4096"),
    (["generate", "oscillator", "--n", "1000000000000", "--out", "{tmp}/g.npz"],
     "over the limit of 8 GiB"),
    (["systems", "--bogus"], "unrecognized arguments: --bogus"),  # argparse: returned, not raised
])
def test_user_errors_print_one_line(files, trained, tmp_path, capsys, argv, message):
    argv = [a.replace("{train}", str(files / "train.npz")).replace("{tmp}", str(tmp_path))
            .replace("{model}", str(trained)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("srom: error:")


def test_predict_takes_a_multi_term_forcing_on_the_command_line(files, trained):
    out = files / "sines.npz"
    assert main(["predict", str(trained), "--data", str(files / "test.h5"), "--t-end", "3",
                 "--n-times", "31", "--forcing",
                 "sum_of_sines:amplitudes=[1,0.5],frequencies=[0.2,1],phases=[0,1]",
                 "--n-samples", "3", "--out", str(out)]) == 0
    with np.load(out) as pred:
        t, f = pred["t"], pred["f"][0, :, 0]
    expected = np.sin(2 * np.pi * 0.2 * t) + 0.5 * np.sin(2 * np.pi * t + 1)
    np.testing.assert_allclose(f, expected, atol=1e-12)


def test_console_script_runs(files):
    result = subprocess.run([sys.executable, "-m", "engine.cli", "evaluate", "nowhere", "x.npz"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_generate_and_systems_commands(tmp_path, capsys):
    assert main(["systems"]) == 0
    assert "burgers" in capsys.readouterr().out.split()
    out = tmp_path / "heat.h5"
    assert main(["generate", "heat", "--n", "2", "--seed", "1", "--out", str(out)]) == 0
    from engine import load_dataset

    assert load_dataset(out).system == "heat"
    assert main(["generate", "no_such_system", "--out", str(out)]) == 2
    assert "unknown system" in capsys.readouterr().err


def test_demo_runs_end_to_end(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "20", "--device", "cpu"]) == 0
    for name in ("train.npz", "test.npz", "prediction.npz", "model/config.json"):
        assert (tmp_path / "demo" / name).is_file(), name


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(files, tmp_path):
    import signal
    import time

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "train", str(files / "train.npz"), "--out", str(out),
         "--steps", "100000", "--window", "16", "--latent-dim", "2", "--set", "log_every=5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not out.exists() and proc.poll() is None:
        time.sleep(0.2)  # the output folder appears just before training starts
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (out / "checkpoint.safetensors").is_file() and (out / "config.json").is_file()
    assert load_model(out).training_["status"] == "interrupted"


def test_serve_listens_on_loopback_unless_told_and_then_asks_for_a_password(tmp_path):
    from engine.cli import UserError, build_parser, serve_command

    def command(*argv):
        return serve_command(build_parser().parse_args(["serve", *argv]), tmp_path / "main.py")

    cmd = command()
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1" and "--basic-auth" not in cmd
    with pytest.raises(UserError, match="--basic-auth"):
        command("--address", "0.0.0.0")
    with pytest.raises(UserError, match="--allow-websocket-origin"):
        command("--address", "0.0.0.0", "--basic-auth", "pw")
    cmd = command("--address", "0.0.0.0", "--basic-auth", "pw",
                  "--allow-websocket-origin", "10.0.0.5:5006")
    assert cmd[cmd.index("--basic-auth") + 1] == "pw"
    secret = cmd[cmd.index("--cookie-secret") + 1]
    assert len(secret) >= 32 and secret != command(
        "--address", "0.0.0.0", "--basic-auth", "pw",
        "--allow-websocket-origin", "10.0.0.5:5006")[cmd.index("--cookie-secret") + 1]
    assert cmd[cmd.index("--allow-websocket-origin") + 1] == "10.0.0.5:5006"
    open_cmd = command("--address", "0.0.0.0", "--no-auth", "--allow-websocket-origin", "h:1")
    assert "--basic-auth" not in open_cmd
    with pytest.raises(UserError, match="--port"):
        command("--port", "0")


def test_serve_passes_the_admins_caps_to_the_app(monkeypatch):
    from engine.cli import UserError, build_parser, serve_environment

    monkeypatch.delenv("SROM_MAX_TRAINING_STEPS", raising=False)
    env = serve_environment(build_parser().parse_args(
        ["serve", "--max-queued-trainings", "3", "--max-training-steps", "5000"]))
    assert env["SROM_MAX_QUEUED_TRAININGS"] == "3" and env["SROM_MAX_TRAINING_STEPS"] == "5000"
    assert "SROM_MAX_GENERATED_TRAJECTORIES" not in env
    with pytest.raises(UserError, match="--max-training-steps must be a positive"):
        serve_environment(build_parser().parse_args(["serve", "--max-training-steps", "0"]))


def test_a_diverging_run_never_overwrites_a_model_already_there(files, tmp_path, capsys):
    out = tmp_path / "model"
    common = ["train", str(files / "train.npz"), "--out", str(out), "--window", "16",
              "--latent-dim", "2", "--set", "log_every=10"]
    assert main([*common, "--steps", "20"]) == 0
    weights = (out / "model.safetensors").read_bytes()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert main([*common, "--steps", "200", "--lr", "1e6"]) == 1
    assert (out / "model.safetensors").read_bytes() == weights
    assert (tmp_path / "model-diverged" / "model.safetensors").is_file()
    assert "left as it was" in capsys.readouterr().err


def _refuse_saving_to(monkeypatch, refused):
    """``StochasticROM.save`` fails with a full disk for every folder in ``refused``."""
    import errno

    from engine.model import StochasticROM

    real = StochasticROM.save

    def save(self, directory, *args, **kwargs):
        if any(str(directory).startswith(str(r)) for r in refused):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, directory, *args, **kwargs)

    monkeypatch.setattr(StochasticROM, "save", save)


TRAIN_ARGS = ["--steps", "20", "--window", "16", "--latent-dim", "2", "--set", "drift_hidden=[16]",
              "--set", "log_every=10"]


def test_a_full_disk_at_the_final_save_loses_nothing(files, tmp_path, monkeypatch, capsys):
    out = tmp_path / "full"
    _refuse_saving_to(monkeypatch, [out])
    assert main(["train", str(files / "train.npz"), "--out", str(out), *TRAIN_ARGS]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    rescue = Path(err.split("it was saved to ")[1].split(" instead")[0])
    assert load_model(rescue).training_["steps"] == 20
    import shutil

    shutil.rmtree(rescue)
    import tempfile

    _refuse_saving_to(monkeypatch, [out, tempfile.gettempdir()])
    assert main(["train", str(files / "train.npz"), "--out", str(out), *TRAIN_ARGS]) == 2
    err = capsys.readouterr().err
    assert f"the last checkpoint is {out / 'checkpoint.safetensors'}" in err
    assert err.strip().splitlines()[-1].startswith("srom: error:")


def test_a_checkpoint_that_cannot_be_written_does_not_end_the_training(files, monkeypatch):
    import errno

    from engine import StochasticROM, load_dataset
    from engine.train import Trainer

    def refuse(self, path, step):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Trainer, "save_checkpoint", refuse)
    model = StochasticROM(steps=20, window=16, latent_dim=2, drift_hidden=[16], log_every=10,
                          checkpoint_every=10)
    with pytest.warns(RuntimeWarning, match="Read-only file system"):
        model.fit(load_dataset(files / "train.npz"), checkpoint=files / "ro" / "c.safetensors")
    assert model.training_["status"] == "completed" and model.training_["steps"] == 20
    assert "Read-only file system" in model.training_["checkpoint_error"]


def test_python_dash_m_srom_is_the_cli():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "srom", "systems"], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "burgers" in out.stdout
