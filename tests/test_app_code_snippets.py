"""'Copy as CLI / Python' (app/state/code_snippets.py): the command lines parse with the real
``srom`` parser, the forcing text reads back as the same forcing, hostile names stay inert,
and the Python code makes the dashboard's prediction."""

from __future__ import annotations

import ast
import shlex

import numpy as np
import pytest
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: F401 - shared fixture

from app.state import catalog, code_snippets
from app.state.explore import ExploreState
from engine import cli
from engine.forcing import make_forcing

FORCING = {"u_left": {"family": "sum_of_sines", "amplitudes": [1.0, 0.5],
                      "frequencies": [0.2, 1.0], "phases": [0.0, 0.3], "offset": 0.25},
           "u_right": {"family": "none"}}


def test_the_forcing_text_reads_back_as_the_same_forcing():
    spec = code_snippets.forcing_spec(FORCING)
    assert spec == ("sum_of_sines:amplitudes=[1.0,0.5],frequencies=[0.2,1.0],phases=[0.0,0.3],"
                    "offset=0.25;none:")
    t = np.linspace(0.0, 3.0, 31)
    values = cli._forcing_values(spec, t, 2)
    expected = make_forcing("sum_of_sines", amplitudes=[1.0, 0.5], frequencies=[0.2, 1.0],
                            phases=[0.0, 0.3], offset=0.25)(t)
    np.testing.assert_array_equal(values[:, 0], expected)
    np.testing.assert_array_equal(values[:, 1], 0.0)


def _inputs(model_path: str, **extra) -> dict:
    return {"model_path": model_path, "system": "burgers", "mu": {"nu": -0.5, "b": 2.0},
            "forcing": FORCING, "n_paths": 48, "seed": 3, "substeps": 8, **extra}


def test_the_command_lines_parse_with_the_srom_parser():
    t = np.linspace(0.0, 4.5, 91)
    text = code_snippets.cli_command(_inputs(str(catalog.pretrained_dir() / "burgers")), t,
                                     preset="default")
    generate, predict = [shlex.split(line) for line in text.splitlines()
                         if not line.startswith("#")]
    g = cli.build_parser().parse_args(generate[1:])
    assert (g.command, g.system, g.n, g.seed, g.preset, g.out) == (
        "generate", "burgers", 1, 3, "default", "x0.npz")
    p = cli.build_parser().parse_args(predict[1:])
    assert p.command == "predict" and p.model == "pretrained/burgers"
    assert p.x0_from == g.out and p.index == 0 and p.mu == [-0.5, 2.0]
    assert (p.t_end, p.n_times, p.n_samples, p.seed, p.substeps) == (4.5, 91, 48, 3, 8)
    assert p.forcing == code_snippets.forcing_spec(FORCING)


def test_a_model_of_own_data_reads_its_training_data():
    text = code_snippets.cli_command(
        _inputs(str(catalog.user_models_dir() / "mine"), initial_state={"training_trajectory": 4}),
        np.linspace(0, 1, 11), has_simulator=False)
    assert "srom generate" not in text
    words = shlex.split(text.splitlines()[-1])
    p = cli.build_parser().parse_args(words[1:])
    assert p.x0_from == "YOUR_TRAINING_DATA.npz" and p.index == 4
    assert text.splitlines()[-1].split()[2] == "~/.srom/models/mine"  # left for the shell


def test_server_folders_are_never_shown(tmp_path):
    outside = tmp_path / "secret" / "model"
    assert code_snippets.model_reference(str(outside)) == "MODEL_DIR"
    text = code_snippets.cli_command(_inputs(str(outside)), np.linspace(0, 1, 11))
    assert str(tmp_path) not in text
    assert str(tmp_path) not in code_snippets.python_snippet(_inputs(str(outside)),
                                                             np.linspace(0, 1, 11))


HOSTILE = "x'); import os; os.system('touch /tmp/pwned') #\n$(rm -rf ~)"


def test_hostile_names_stay_literal_text():
    inputs = _inputs(str(catalog.user_models_dir() / HOSTILE),
                     mu={HOSTILE: 1.0}, forcing={HOSTILE: {"family": "sine", "amplitude": 1.0}})
    t = np.linspace(0, 1, 11)
    text = code_snippets.cli_command(inputs, t)
    words = shlex.split(text.split("\n", 2)[2])  # after the comment and `srom generate`
    # one word per argument: nothing splits or substitutes, the newline stays in its word
    assert words[:2] == ["srom", "predict"] and words[-2:] == ["--out", "prediction.npz"]
    assert words[2] == "~/.srom/models/" + HOSTILE
    code = code_snippets.python_snippet(inputs, t)
    tree = ast.parse(code)
    called = {node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
              for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert called <= {"expanduser", "expandvars", "load_model", "array", "make_forcing",
                      "linspace", "simulator_initial_state", "model_system", "float", "stack",
                      "g", "predict", "print"}, called
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | {alias.name for node in ast.walk(tree)
                                            if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"os", "numpy", "load_model", "make_forcing", "model_system",
                        "simulator_initial_state"}


@pytest.mark.parametrize("family", ["sine", "none"])
def test_the_python_code_makes_the_dashboards_prediction(tiny_model_dir, family):  # noqa: F811
    entries = catalog.discover_models([("user", tiny_model_dir)])
    state = ExploreState(models=entries, n_paths=16, seed=4)
    state.param.update(forcing_family=family, horizon=float(state.model.t_range_[1]) * 1.3)
    r = state.result
    assert r is not None and state.error == ""
    code = code_snippets.python_snippet(r.inputs, r.t, param_names=state.model.param_names_)
    code = code.replace("model_dir = ", "model_dir = MODEL_DIR  # ", 1)
    namespace = {"MODEL_DIR": state.model_path}
    exec(compile(code, "<snippet>", "exec"), namespace)  # noqa: S102 - our own generated code
    pred = namespace["pred"]
    np.testing.assert_allclose(pred.mean[0], r.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(pred.t, r.t, rtol=1e-12, atol=1e-12)
