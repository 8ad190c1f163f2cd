"""The competitor benchmark: each method's training step, the drift counter, the smoke run.

Tiny problems on the CPU (a few trajectories of the small Burgers preset, cut short), so
the whole file runs in seconds.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _harness  # noqa: E402
import _solvers  # noqa: E402

from engine import Dataset  # noqa: E402
from engine.solvers import get_scheme  # noqa: E402

pytest.importorskip("torchsde")
pytest.importorskip("torchdiffeq")


def _tiny_forced(n_traj: int = 4, n_times: int = 21, n_x: int = 16, seed: int = 0) -> Dataset:
    """Travelling bumps whose speed is μ, plus a sine forcing channel that moves them."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 0.4, n_times)
    x = np.linspace(0.0, 1.0, n_x)
    speed = rng.uniform(0.5, 1.0, n_traj)
    f = np.sin(2 * np.pi * rng.uniform(0.5, 1.5, n_traj)[:, None] * t[None])[..., None]
    centre = 0.2 + speed[:, None] * t[None] + 0.05 * f[..., 0]
    u = np.exp(-((x[None, None] - centre[..., None]) ** 2) / 0.02)
    return Dataset(t, u, mu=speed[:, None], f=f, param_names=["speed"], forcing_names=["f"])


PARAMS = dict(latent_dim=2, hidden=(16,), drift_hidden=(16,), window=8, windows_per_step=2,
              n_quad=8, lr=1e-2, device="cpu", seed=0, architecture="mlp")


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return _tiny_forced()


@pytest.mark.parametrize("method", list(_solvers.METHODS))
def test_solver_step_lowers_loss_and_counts_drift(tiny, method):
    model = _harness.prepare_model(PARAMS, tiny)
    data = _harness.DeviceData.of(model, tiny)
    # the whole dataset in every step, so that the loss is comparable across steps
    trainer = _solvers.SolverTrainer(model, data, method, traj_per_step=4, solver_dt=0.05)
    torch.manual_seed(1)
    first = trainer.loss().item()
    for _ in range(4):
        trainer.step()
    assert trainer.steps == 4
    torch.manual_seed(1)
    after = trainer.loss().item()
    assert math.isfinite(first) and after < first, (method, first, after)
    calls, rows = trainer.drift_counts()
    assert calls >= 4 and rows == calls * 4  # 4 trajectories per batched call
    if method == "em_graph":  # fixed steps: 0.4 / 0.05 = 8 drift calls per step (+ the 2 loss calls)
        assert calls == 4 * 8 + 2 * 8


def test_same_initial_modules_as_ours(tiny):
    from engine import StochasticROM

    # one step at a negligible learning rate: the weights stay those fit() built
    ours = StochasticROM(**{**PARAMS, "lr": 1e-12}, steps=1).fit(tiny).module_.state_dict()
    theirs = _harness.prepare_model(PARAMS, tiny).module_.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], atol=1e-8), key


def test_ours_counter_matches_rows_per_step(tiny):
    from engine import StochasticROM
    from engine.progress import NullCallback

    # substeps fixed, as model_params sets them: no step check after the training
    model = StochasticROM(**PARAMS, steps=5, log_every=5, substeps=1)

    class Install(NullCallback):
        def on_start(self, total, start):
            self.counter = _harness.install_counter(model)

    cb = Install()
    model.fit(tiny, callback=cb)
    assert cb.counter.calls == 5
    assert cb.counter.rows == 5 * PARAMS["windows_per_step"] * PARAMS["n_quad"]


def test_evaluate_protocol(tiny):
    model = _harness.prepare_model(PARAMS, tiny)
    sde = _harness.evaluate(model, tiny, n_paths=4, stochastic=True)
    ode = _harness.evaluate(model, tiny, n_paths=4, stochastic=False)
    for r in (sde, ode):
        assert r["finite"] and 0 < r["rel_l2_mean"] < 10


def test_evaluate_records_calibration_of_the_predictive_distribution(tiny, monkeypatch):
    model = _harness.prepare_model(PARAMS, tiny)
    for stochastic in (True, False):
        r = _harness.evaluate(model, tiny, n_paths=8, stochastic=stochastic)
        assert r["predictive"] == _harness.PREDICTIVE[stochastic]
        assert 0 <= r["coverage_50"] <= r["coverage_90"] <= 1 and r["crps"] > 0
    # the latent ODE's spread is the decoder noise alone: none covers (almost) nothing,
    # a huge one covers (almost) everything and costs CRPS
    variance = model.module_.decoder_variance
    base = variance.point().detach()
    monkeypatch.setattr(variance, "point", lambda: torch.full_like(base, 1e-12))
    narrow = _harness.evaluate(model, tiny, n_paths=8, stochastic=False)
    monkeypatch.setattr(variance, "point", lambda: torch.full_like(base, 1e4))
    wide = _harness.evaluate(model, tiny, n_paths=8, stochastic=False)
    assert narrow["coverage_90"] < 0.05 and wide["coverage_90"] > 0.9
    assert wide["crps"] > 10 * narrow["crps"]
    assert narrow["rel_l2_mean"] == wide["rel_l2_mean"]  # the mean has no decoder noise


def _use_tiny_problem(monkeypatch, competitors, tiny) -> None:
    """The competitor benchmark's small Burgers problem replaced by the tiny one."""
    monkeypatch.setitem(_harness.PROBLEMS, ("burgers", "small"), _harness.Problem(
        "burgers", "tiny", 4, 2, 2, {k: v for k, v in PARAMS.items() if k not in ("device", "seed")}, 0.08))
    monkeypatch.setattr(competitors, "load_problem",
                        lambda system, size: (_harness.PROBLEMS[("burgers", "small")],
                                              tiny, _tiny_forced(2, seed=1), _tiny_forced(2, seed=2)))


def test_cpu_smoke_run_writes_valid_json(tmp_path, monkeypatch, tiny):
    import competitors

    _use_tiny_problem(monkeypatch, competitors, tiny)
    result = competitors.main(["--device", "cpu", "--size", "small", "--methods",
                               "ours,em_graph,pod_dmdc", "--budgets", "0.2,0.4",
                               "--eval-paths", "2", "--n-checkpoints", "2", "--out", str(tmp_path),
                               "--solver-dt", "0.05"])
    stem = tmp_path / "competitors_cpu_burgers"
    data = json.loads(stem.with_suffix(".json").read_text())  # strict JSON: no NaN
    assert {r["method"] for r in data["runs"]} == {"ours", "em_graph"}
    for run in data["runs"]:
        assert run["steps"] > 0 and run["checkpoints"]
        assert [c["nominal_s"] for c in run["checkpoints"]][-1] == 0.4
        assert run["checkpoints"][0]["step"] == 0  # the untrained model, at t = 0
        assert run["drift_calls_per_step"] >= 1
    assert len(data["classical"]) == 1
    md = stem.with_suffix(".md").read_text()
    assert "| `ours`" in md and "rel. L2 @ 0.4 s" in md
    assert all(c["val_rel_l2"] > 0 for r in data["runs"] for c in r["checkpoints"])
    assert "| `ours` | " in md[md.index("Model selection on validation"):]
    assert result["runs"]
    for run in data["runs"]:  # calibration recorded at every checkpoint
        for c in run["checkpoints"]:
            assert 0 <= c["coverage_50"] <= c["coverage_90"] <= 1 and c["crps"] > 0
    calibration = md[md.index("Calibration at the final budget (0.4 s)"):]
    assert "| `em_graph` | latent SDE paths + decoder noise |" in calibration
    if "skipped" not in data["classical"][0]:  # opinf is a benchmark extra, not in CI
        assert "| `pod_dmdc` | not stochastic" in calibration
    # results recorded before calibration was measured still load and show —
    for run in data["runs"]:
        for c in run["checkpoints"]:
            for key in ("coverage_50", "coverage_90", "crps", "predictive"):
                del c[key]
    competitors.write_report(data, tmp_path / "old")
    old_md = (tmp_path / "old" / "competitors_cpu_burgers.md").read_text()
    assert "| `ours` | — (recorded before calibration was measured) | — | — | — |" in old_md


def test_selection_keeps_the_checkpoint_best_on_validation_not_on_test():
    import competitors

    marks = [{"time_s": 0.0, "rel_l2_mean": 1.0, "val_rel_l2": 1.0},
             {"time_s": 5.0, "rel_l2_mean": 0.05, "val_rel_l2": 0.30},  # best on test only
             {"time_s": 10.0, "rel_l2_mean": 0.09, "val_rel_l2": 0.10},
             {"time_s": 20.0, "rel_l2_mean": 0.40, "val_rel_l2": 0.50}]  # a late swing
    assert competitors.selected_at_time(marks, 20.0)["time_s"] == 10.0
    assert competitors.selected_at_time(marks, 6.0)["time_s"] == 5.0
    assert competitors.at_time(marks, 20.0)["time_s"] == 20.0  # the last one, unselected
    # at 5 s the kept checkpoint (best on validation so far) is the 5 s one: 0.05 on test
    assert competitors.selected_time_to_target(marks, 0.08) == 5.0
    assert competitors.selected_time_to_target(marks, 0.06) == 5.0
    assert competitors.selected_time_to_target(marks[:1] + marks[2:], 0.08) is None
    old = [{k: v for k, v in c.items() if k != "val_rel_l2"} for c in marks]
    assert competitors.selected_at_time(old, 20.0) is None  # records from before selection


def test_a_training_that_completes_early_is_scored_for_every_budget_left():
    import competitors

    clock = _harness.Clock(torch.device("cpu"))
    clock.start()
    scores = iter([0.9, 0.5, 0.2])
    marks = competitors._Checkpoints(clock, [0.0, 1.0, 5.0, 10.0],
                                     lambda: {"rel_l2_mean": next(scores)},
                                     lambda: {"rel_l2_mean": 0.3})
    marks.record(0.0, 0, None, (0, 0))
    marks.record(1.2, 100, 1.0, (100, 100))
    marks.finish(3.0, 250, None, (250, 250))  # all steps done at 3 s
    assert [c["nominal_s"] for c in marks.records] == [0.0, 1.0, 5.0, 10.0]
    final = competitors.at_time(marks.records, 10.0)
    assert final["time_s"] == 3.0 and final["rel_l2_mean"] == 0.2 and final["final"]
    assert final["val_rel_l2"] == 0.3
    marks.finish(4.0, 300, None, (300, 300))  # nothing pending: no new evaluation
    assert len(marks.records) == 4


def test_the_pilots_step_rate_leaves_out_the_warm_up():
    import competitors

    times = competitors._StepTimes()
    assert times.rate() is None
    times.marks = [(100, 5.0), (200, 5.5), (400, 6.5)]  # 5 s of set-up before step 100
    assert times.rate() == pytest.approx(200.0)


def test_every_seed_of_a_method_trains_on_the_first_seeds_schedule(tmp_path, monkeypatch, tiny):
    import competitors

    _use_tiny_problem(monkeypatch, competitors, tiny)
    pilots = []
    measure = competitors.ours_schedule
    monkeypatch.setattr(competitors, "ours_schedule",
                        lambda *a: pilots.append(a[3]) or measure(*a))
    common = ["--device", "cpu", "--size", "small", "--methods", "ours,em_graph", "--budgets",
              "0.2", "--eval-paths", "2", "--n-checkpoints", "1", "--out", str(tmp_path),
              "--solver-dt", "0.05"]
    competitors.main([*common, "--seeds", "0,1"])
    competitors.main([*common, "--seeds", "2"])  # a later run merged into the same file
    data = json.loads((tmp_path / "competitors_cpu_burgers.json").read_text())
    assert pilots == [0]  # one pilot, by the first seed
    for method in ("ours", "em_graph"):
        runs = [r for r in data["runs"] if r["method"] == method]
        assert sorted(r["seed"] for r in runs) == [0, 1, 2]
        assert all(r["schedule"] == data["schedules"][method] for r in runs), runs
        assert data["schedules"][method]["pilot_seed"] == 0


# ------------------------------------------------------------------ inference latency
def test_inference_cpu_smoke_run_writes_json_and_skips_with_reasons(tmp_path, monkeypatch):
    import inference

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the plot is optional
    result = inference.main(["--device", "cpu", "--paths", "1,2,4", "--point-s", "0.01",
                             "--max-call-s", "0", "--agreement-paths", "256",
                             "--out", str(tmp_path)])
    path = tmp_path / "inference_cpu.json"
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["steps"] == 300 and data["device"] == "cpu"
    for variant in inference.VARIANTS:
        rows = {r["paths"]: r for r in data["rows"] if r["variant"] == variant}
        assert sorted(rows) == [1, 2, 4]
        first = rows[1]
        assert first["status"] == "ok" and 0 < first["p50_ms"] <= first["p95_ms"]
        assert first["repeats"] >= 3 and len(first["all_ms"]) == first["repeats"]
        for n in (2, 4):  # a zero cap per call skips every point after the first
            assert rows[n]["status"] == "skipped" and "cap per call" in rows[n]["reason"]
    agreement = data["agreement"]
    assert agreement["paths"] == 256 and agreement["same_z0"] and agreement["agree"]
    # torchsde's scheme of the same name: its drift calls per step, + sdeint's shape check
    per_step = get_scheme(data["integrator"]).drift_evaluations
    assert data["torchsde_drift_calls"] == 300 * per_step + 1
    md = (tmp_path / "inference_cpu.md").read_text()
    assert "| 1 |" in md and "skipped" in md and "4 standard errors" in md
    assert not (tmp_path / "inference_cpu.png").exists()
    assert result["rows"] == data["rows"]

    monkeypatch.undo()  # matplotlib importable again
    pytest.importorskip("matplotlib")
    (tmp_path / "inference_cpu.md").unlink()
    inference.main(["--replot", str(path)])
    assert (tmp_path / "inference_cpu.png").stat().st_size > 1000
    assert (tmp_path / "inference_cpu.md").read_text() == md


def test_inference_extrapolation_is_affine_and_never_below_the_last_point():
    import inference

    assert inference._extrapolate([(4, 2.0)], 16) == 2.0
    assert inference._extrapolate([(4, 2.0), (16, 5.0)], 64) == pytest.approx(17.0)
    assert inference._extrapolate([(4, 3.0), (16, 2.0)], 64) == 2.0


# ------------------------------------------------------------------ Lorenz horizons
def test_lorenz_horizon_sweep_writes_its_table(tmp_path):
    import lorenz_horizons

    result = lorenz_horizons.main(["--horizons", "0.2,0.4", "--steps", "20", "--rtol", "1e-4",
                                   "--atol", "1e-6", "--out", str(tmp_path)])
    rows = result["horizons"]
    assert [r["T"] for r in rows] == [0.2, 0.4]
    for row in rows:
        assert set(row["ours"]["learned"]) == {"sigma", "rho", "beta"}
        assert row["adjoint"]["status"] == "ok" and row["adjoint"]["drift_calls_total"] > 0
        assert row["adjoint_at_truth"]["grad_norm"] > 0
    saved = json.loads((tmp_path / "lorenz_horizons.json").read_text())
    assert saved["horizons"][1]["n_times"] == rows[1]["n_times"]
    md = (tmp_path / "lorenz_horizons.md").read_text()
    assert "| 0.4 |" in md and "Summary:" in md


def test_summary_reads_every_target_from_the_result_files(tmp_path, monkeypatch):
    import summary

    results = Path(summary.RESULTS)
    for name in ("engine_perf_cuda.json", "inference_cuda.json", "cost_independence_cuda.json",
                 "competitors_cuda_burgers.json", "competitors_cuda_lotka_volterra.json"):
        (tmp_path / name).write_text((results / name).read_text())
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    text = summary.main().read_text()
    ms = json.loads((tmp_path / "engine_perf_cuda.json").read_text())["train_graph"]["ms_per_step"]
    step_row = next(line for line in text.splitlines() if "training step" in line)
    assert f"{ms:.3g} ms" in step_row and ("| met |" in step_row) == (ms <= 2.5)
    assert text.count("flat step cost") == 3
    # a missing file is reported, not invented
    (tmp_path / "inference_cuda.json").unlink()
    text = summary.main().read_text()
    assert "no result file `inference_cuda.json`" in text


def test_ui_server_compute_times_the_workers_job_and_judges_only_a_gpu(tmp_path, monkeypatch):
    pytest.importorskip("param")
    import ui_server_compute as bench

    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    result = bench.main(["--device", "cpu", "--moves", "3", "--warmup", "1", "--tag", "t"])
    data = json.loads((tmp_path / "ui_server_compute_t.json").read_text())
    assert data["config"]["device"] == "cpu" and len(data["moves"]) == 3
    # the CPU's full prediction is slower than preview_above_ms: every move has a preview
    assert data["summary"]["previews"] == 3 and data["config"]["preview"]["n_paths"] == 12
    for move in data["moves"]:
        assert 0 < move["preview_ms"] < move["full_ms"]
        assert move["predict_ms"] == pytest.approx(move["preview_ms"] + move["full_ms"])
    md = (tmp_path / "ui_server_compute_t.md").read_text()
    assert "not judged here" in md and result["summary"] == data["summary"]

    # a GPU run without Panel: judged on its predictions plus the CPU run's pushes
    gpu = {**data, "config": {**data["config"], "device": "cuda", "view_measured": False},
           "machine": {**data["machine"], "gpu": "a GPU"}}
    gpu["target"] = {**data["target"], "value": 20.0}
    gpu["summary"] = {**data["summary"], "previews": 0}
    (tmp_path / "ui_server_compute_cpu.json").write_text(json.dumps(data))
    push = data["summary"]["apply_full_ms"]["median"] if "apply_full_ms" in data["summary"] else 0
    text = bench.markdown(gpu)
    assert f"{20.0 + push:.1f} ms" in text and ("**met**" in text) == (20.0 + push <= 30.0)


def test_ui_speed_report_during_a_training_says_so():
    import ui_speed

    result = json.loads((BENCH / "results" / "ui_speed_cpu_training.json").read_text())
    md = ui_speed.markdown(result)
    assert md == (BENCH / "results" / "ui_speed_cpu_training.md").read_text()
    assert result["config"]["during_training"] and "another session trains" in md


def test_ui_speed_report_lists_each_run_and_judges_pooled_moves():
    import ui_speed

    result = json.loads((BENCH / "results" / "ui_speed_cpu.json").read_text())
    md = ui_speed.markdown(result)
    assert md == (BENCH / "results" / "ui_speed_cpu.md").read_text()  # the committed report
    assert "another session trains" not in md
    pooled = result["summary"]["first_update_ms"]
    assert pooled["n"] == len(result["moves"]) == result["config"]["runs"] * result["config"]["moves"]
    assert pooled["median"] == pytest.approx(np.median([m["first_update_ms"] for m in result["moves"]]))
    assert md.count("\n| 1 |") == 1 and f"| {result['config']['runs']} |" in md
    verdicts = {(t["measure"], t["statistic"]): t["met"] for t in result["targets"]}
    assert verdicts[("first_update_ms", "median")] == (pooled["median"] <= 200.0)


def test_work_precision_smoke_run_writes_its_tables(tmp_path, monkeypatch):
    import work_precision

    monkeypatch.setattr(work_precision, "SUBSTEPS", {"euler": [1, 2], "heun": [1], "sra1": [1]})
    model = Path(__file__).resolve().parent.parent / "pretrained" / "oscillator"
    result = work_precision.main(["--device", "cpu", "--model", str(model), "--n-test", "2",
                                  "--paths", "4", "--reference-substeps", "8", "--repeats", "1",
                                  "--budget-s", "0", "--decode", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "work_precision_cpu.json").read_text())
    assert [(r["integrator"], r["substeps"]) for r in data["rows"]] == [
        ("euler", 1), ("euler", 2), ("heun", 1), ("sra1", 1)]
    rows = {(r["integrator"], r["substeps"]): r for r in data["rows"]}
    # halving Euler's step halves its distance from the converged reference (order 1), and
    # Heun at the data step is closer than Euler at the data step
    assert rows[("euler", 2)]["integration_error"] < rows[("euler", 1)]["integration_error"]
    assert rows[("heun", 1)]["integration_error"] < rows[("euler", 1)]["integration_error"]
    assert rows[("heun", 1)]["drift_calls_per_data_step"] == 2
    assert all(r["latent_ms"]["median"] > 0 and r["decode_ms"]["n"] >= 1 for r in data["rows"])
    md = (tmp_path / "work_precision_cpu.md").read_text()
    assert "| heun | 1 | 2 |" in md and "Cheapest setting" in md
    assert result["rows"] == data["rows"]


def test_ui_plot_updates_reports_are_generated_from_their_results():
    import ui_plot_updates

    for tag in ("cpu_bokeh", "cpu_holoviews"):
        result = json.loads((BENCH / "results" / f"ui_plot_updates_{tag}.json").read_text())
        md = ui_plot_updates.markdown(result)
        assert md == (BENCH / "results" / f"ui_plot_updates_{tag}.md").read_text()
        slow = [k for k, p in result["parts"].items() if p["ms"]["median"] > ui_plot_updates.FEEL_MS]
        assert ("none." in md.splitlines()[-1]) == (not slow)


def test_ui_plot_updates_clock_sizes_the_patch_an_update_makes():
    pytest.importorskip("panel")
    import panel as pn
    import ui_plot_updates

    text = pn.pane.Markdown("before")
    clock = ui_plot_updates.PatchClock(pn.Column(text))
    ms, size = clock.time(lambda: setattr(text, "object", "after " * 100))
    assert ms > 0 and size > 600  # the new text travels in the patch
    assert clock.time(lambda: None)[1] == 0  # nothing changed: no message


def test_lv_defaults_average_table_is_per_seed_and_time_constant():
    """The τ table of benchmarks/lv_defaults.py --average-steps: one row per seed, one column
    per time constant, and the worst/best ratio of each column."""
    import lv_defaults

    rows = [{"seed": s, "average_steps": tau, "rmse": rmse}
            for s, tau, rmse in [(0, 0, 0.02), (0, 500, 0.012), (1, 0, 0.04), (1, 500, 0.015)]]
    text = lv_defaults.averages_markdown({"rows": rows, "averages": [0, 500], "date": "d",
                                          "cpus": 2, "machine": "x86_64"})
    assert "| seed | last iterate | τ = 500 |" in text
    assert "| 1 | 0.0400 | 0.0150 |" in text
    assert "| worst / best | 2.00 | 1.25 |" in text


def test_valid_time_seeds_runs_each_seed_and_the_encoder_only_variant(tmp_path, monkeypatch):
    """On the shipped Lorenz-63 model (which fits its initial state): one row per variant,
    a valid time per seed inside the horizon, and the tables written."""
    import valid_time_seeds

    monkeypatch.setattr(valid_time_seeds, "RESULTS", tmp_path)
    result = valid_time_seeds.run(["lorenz63"], seeds=2, n_samples=16)
    rows = result["rows"]
    assert [r["variant"] for r in rows] == ["as shipped", "initial state from the encoder alone"]
    assert rows[0]["assimilate_iterations"] > 0 and rows[1]["assimilate_iterations"] == 0
    for r in rows:
        assert len(r["per_seed"]) == 2 and 0 < r["min"] <= r["mean"] <= r["max"] < 2
    valid_time_seeds.write(result)
    assert "| lorenz63 | as shipped | 1 |" in (tmp_path / "valid_time_seeds.md").read_text()
    s = valid_time_seeds.summary([1.0, 2.0, 3.0])
    assert s["median"] == 2.0 and s["std"] == 1.0 and s["sem"] == pytest.approx(1 / math.sqrt(3))


def test_drift_stability_reads_rate_and_exponent_of_a_known_drift(tiny):
    """``benchmarks/drift_stability.py`` on a model whose drift is ψ(z) = A z with
    A = diag(0.5, -1): the expansion rate is 0.5 everywhere, and so is the tangent flow's
    finite-time exponent (up to Euler's log(1 + 0.5 dt) / dt)."""
    import drift_stability

    from engine import StochasticROM

    model = StochasticROM(latent_dim=2, steps=5, window=8, windows_per_step=2,
                          drift_hidden=(8,), log_every=5).fit(tiny)

    class Linear(torch.nn.Module):
        def forward(self, z, t, mu, f):
            return z * torch.tensor([0.5, -1.0])

    model.module_.drift = Linear()
    row = drift_stability.model_row(model, tiny, "linear")
    assert row["rate_mean"] == pytest.approx(0.5, abs=1e-3) == row["rate_max"]
    dt = float(tiny.t[1] - tiny.t[0])
    assert row["exponent_mean"] == pytest.approx(math.log1p(0.5 * dt) / dt, rel=1e-3)
    assert row["penalty"] == pytest.approx(0.25, rel=1e-3)
    text = drift_stability.markdown({"date": "d", "host": "h", "rows": [row], "truth": None})
    assert "| linear | 2 |" in text
