""""Copy as CLI / Python": the ``srom`` command lines and the Python code that make the
prediction the Explore view shows.

GUI-free. Built from a prediction's ``inputs`` (see :class:`app.state.explore.PredictRequest`: model
directory, μ by name, forcing of each channel, paths, seed, substeps) and its output times.
Every value is written as a literal: shell words quoted with :func:`shlex.quote`, Python
strings with :func:`repr` and numbers as floats, so names from a model file or a URL cannot
turn into code. Server folders are never shown: a model is named by where a user would find
it (``pretrained/<name>`` in the checkout, ``~/.srom/models/<name>``).

What each reproduces:

* the Python code calls the engine as the dashboard does (the simulator's initial state for
  μ, the forcing and the seed, or a kept training state for a model of the user's own
  data): the same prediction;
* ``srom predict`` reads its initial state from a dataset file, so the command line starts
  from the first snapshot of a trajectory made by ``srom generate`` (the same as the
  dashboard's where the system's initial state does not depend on a random draw), or from
  the user's training data.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.state import catalog

__all__ = ["model_reference", "forcing_spec", "cli_command", "python_snippet"]


def model_reference(model_path: str | None) -> str:
    """How a user names the model directory: ``pretrained/<rel>`` (from the checkout),
    ``~/.srom/models/<rel>`` or ``$SROM_MODELS_DIR/<rel>``, else ``MODEL_DIR``."""
    if not model_path:
        return "MODEL_DIR"
    path = Path(model_path).resolve()
    user_root = "$SROM_MODELS_DIR" if os.environ.get(catalog.ENV_MODELS_DIR) else "~/.srom/models"
    for root, shown in ((catalog.pretrained_dir(), "pretrained"),
                        (catalog.user_models_dir(), user_root)):
        try:
            rel = path.relative_to(Path(root).resolve()).as_posix()
        except (ValueError, OSError):
            continue
        return shown if rel == "." else f"{shown}/{rel}"
    return "MODEL_DIR"


def _number(value: Any) -> str:
    return repr(float(value))


def forcing_spec(forcings: Mapping[str, Mapping[str, Any]]) -> str:
    """``srom predict --forcing`` text of every channel: ``family:key=value,...`` joined by
    ``;`` (lists in brackets), e.g. ``sine:amplitude=2.0,frequency=1.0;none:``."""
    parts = []
    for spec in forcings.values():
        spec = dict(spec)
        family = str(spec.pop("family"))
        items = []
        for key, value in spec.items():
            if isinstance(value, (list, tuple)):
                text = "[" + ",".join(_number(v) for v in value) + "]"
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                text = str(int(value))
            else:
                text = _number(value)
            items.append(f"{key}={text}")
        parts.append(f"{family}:{','.join(items)}")
    return ";".join(parts)


def cli_command(inputs: Mapping[str, Any], t: np.ndarray, *, preset: str | None = None,
                has_simulator: bool = True, out: str = "prediction.npz") -> str:
    """The shell lines of ``srom predict`` (and ``srom generate`` for its initial state).

    Args:
        inputs: a prediction's inputs (``model_path``, ``system``, ``mu``, ``forcing``,
            ``n_paths``, ``seed``, ``substeps``; ``initial_state`` for own data).
        t: ``(T,)`` the output times.
        preset: the system preset the model was trained on (``model.dataset_info_``).
        has_simulator: ``False`` for a model of the user's own data.
        out: the output file.
    """
    t = np.asarray(t, dtype=np.float64)
    model = model_reference(inputs.get("model_path"))
    lines = []
    if has_simulator:
        system = str(inputs.get("system"))
        generate = ["srom", "generate", system, "--n", "1", "--split", "test", "--seed",
                    str(int(inputs.get("seed", 0)))]
        if preset:
            generate += ["--preset", str(preset)]
        generate += ["--out", "x0.npz"]
        lines += ["# an initial state: the first snapshot of one simulated trajectory",
                  " ".join(shlex.quote(w) for w in generate)]
        x0 = ["--x0-from", "x0.npz", "--index", "0"]
    else:
        case = (inputs.get("initial_state") or {}).get("training_trajectory", 0)
        lines.append("# the initial state: a trajectory of the data the model was trained on")
        x0 = ["--x0-from", "YOUR_TRAINING_DATA.npz", "--index", str(int(case))]
    predict = ["srom", "predict", model, *x0]
    mu = inputs.get("mu") or {}
    if mu:
        predict += ["--mu", *(_number(v) for v in mu.values())]
    if inputs.get("forcing"):
        predict += ["--forcing", forcing_spec(inputs["forcing"])]
    predict += ["--t-end", _number(t[-1]), "--n-times", str(t.size),
                "--n-samples", str(int(inputs.get("n_paths", 128))),
                "--seed", str(int(inputs.get("seed", 0)))]
    if inputs.get("substeps"):
        predict += ["--substeps", str(int(inputs["substeps"]))]
    predict += ["--out", out]
    # a model path under ~ or $SROM_MODELS_DIR must stay expandable by the shell
    words = [shlex.quote(w) if k != 2 or not model.startswith(("~/", "$SROM_MODELS_DIR/"))
             else _shell_path(w) for k, w in enumerate(predict)]
    lines.append(" ".join(words))
    return "\n".join(lines)


def _shell_path(path: str) -> str:
    """``~/x`` or ``$SROM_MODELS_DIR/x`` with the rest quoted (the prefix stays expandable)."""
    head, _, rest = path.partition("/")
    return f"{head}/{shlex.quote(rest)}" if rest else head


def python_snippet(inputs: Mapping[str, Any], t: np.ndarray, *, has_simulator: bool = True,
                   case: int = 0, param_names: Sequence[str] = ()) -> str:
    """Python code that makes the same prediction with the engine.

    Args:
        inputs: a prediction's inputs (see :func:`cli_command`).
        t: ``(T,)`` the output times.
        has_simulator: ``False`` for a model of the user's own data (it starts from kept
            training state ``case``).
        param_names: μ's names in the model's order (default: the order of ``inputs["mu"]``).
    """
    t = np.asarray(t, dtype=np.float64)
    model = model_reference(inputs.get("model_path"))
    mu = dict(inputs.get("mu") or {})
    names = list(param_names) or list(mu)
    forcings = inputs.get("forcing") or {}
    lines = ["import os", "", "import numpy as np", "", "from engine import load_model",
             "from engine.forcing import make_forcing"]
    if has_simulator:
        lines += ["from engine.sensitivity import model_system",
                  "from engine.state_cache import simulator_initial_state"]
    else:
        lines.append("from engine.state_cache import data_initial_state")
    lines += ["", f"model_dir = os.path.expanduser(os.path.expandvars({model!r}))",
              "model = load_model(model_dir)",
              f"mu = np.array([{', '.join(_number(mu[n]) for n in names)}])  # "
              + repr(names)]
    made = []
    for spec in forcings.values():
        spec = dict(spec)
        family = str(spec.pop("family"))
        kwargs = {k: ([float(x) for x in v] if isinstance(v, (list, tuple)) else
                      int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                      else float(v)) for k, v in spec.items()}
        made.append(f"make_forcing({family!r}, **{kwargs!r})")
    lines.append(f"forcings = ({', '.join(made)}{',' if len(made) == 1 else ''})"
                 + (f"  # {', '.join(repr(str(n)) for n in forcings)}" if forcings else ""))
    lines.append(f"t = np.linspace({_number(t[0])}, {_number(t[-1])}, {t.size})")
    seed = int(inputs.get("seed", 0))
    if has_simulator:
        lines += ["x0 = simulator_initial_state(model_system(model), mu, forcings,",
                  "                             float(model.t_range_[0]), float(model.dt_),",
                  f"                             model.n_win, seed={seed}, model_dir=model_dir)"]
    else:
        lines.append(f"x0 = data_initial_state(model, case={int(case)})")
    lines.append("f = np.stack([g(t) for g in forcings], axis=-1) if forcings else None  # (T, F)")
    substeps = f", substeps={int(inputs['substeps'])}" if inputs.get("substeps") else ""
    lines += [f"pred = model.predict(x0, mu, t, f, n_samples={int(inputs.get('n_paths', 128))}, "
              f"seed={seed}{substeps})",
              "print(pred.mean.shape)  # (1, T, *state shape); also pred.std, pred.quantile_values"]
    return "\n".join(lines)
