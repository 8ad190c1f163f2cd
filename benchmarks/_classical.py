"""Classical (CPU) reduced-order models with μ and f(t) as control inputs.

All three project the normalized snapshots on the leading POD modes (as many as the neural
models' latent size, after subtracting the mean snapshot) and learn the coefficient
dynamics with u(t) = [μ, f(t)] (normalized like the neural models' inputs) as control:

- ``pod_sindy``: pysindy ``SINDy`` (polynomial library, STLSQ) on finite-difference
  derivatives, with control (SINDy-c; rom-visde's "SINDy two-step, POD");
- ``pod_opinf``: Operator Inference, a quadratic model ż = c + A z + H (z⊗z) + B u with
  Tikhonov regularization (``opinf.models.ContinuousModel("cAHB")``);
- ``pod_dmdc``: DMD with control, z_{k+1} = c + A z_k + B u_k, fitted jointly on all
  training trajectories (``opinf.models.DiscreteModel("cAB")``; PyDMD's ``DMDc`` fits a
  single trajectory, so it cannot use the parametric training set).

Hyperparameters are chosen on the validation split from a small grid; the test error of
the chosen configuration and the wall time of the whole selection are reported. The
continuous models are integrated by fixed-step RK4 on the data grid with
``ceil(dt / EVAL_DT)`` substeps (u linear in between); a path that leaves
1000 × the training coefficients' range is marked diverged.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from _harness import EVAL_DT

from engine import Dataset
from engine.data import Normalization
from engine.metrics import relative_l2

__all__ = ["CLASSICAL", "available", "run_classical"]

CLASSICAL = {
    "pod_sindy": {"package": "pysindy", "label": "POD + SINDy with control (pysindy)"},
    "pod_opinf": {"package": "opinf", "label": "POD + quadratic Operator Inference (opinf)"},
    "pod_dmdc": {"package": "opinf", "label": "POD + DMD with control (opinf discrete cAB)"},
}


def available(method: str) -> str | None:
    """``None`` when the method's package imports, else why it is skipped."""
    package = CLASSICAL[method]["package"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            __import__(package)
    except ImportError:
        return f"{package} is not installed (pip install -r benchmarks/requirements.txt)"
    return None


class _POD:
    def __init__(self, train: Dataset, rank: int, norm: Normalization):
        self.norm = norm
        x = self.flat(train.x)
        self.mean = x.reshape(-1, x.shape[-1]).mean(0)
        snap = (x - self.mean).reshape(-1, x.shape[-1])
        gram = snap.T @ snap  # (D, D); D is the state size
        vals, vecs = np.linalg.eigh(gram)
        self.basis = vecs[:, ::-1][:, :rank]  # (D, r)
        self.energy = float(vals[::-1][:rank].sum() / max(vals.sum(), 1e-300))

    def flat(self, x: np.ndarray) -> np.ndarray:
        n, t = x.shape[:2]
        return ((x - self.norm.x_mean) / self.norm.x_std).reshape(n, t, -1)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (self.flat(x) - self.mean) @ self.basis

    def decode(self, z: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        x = z @ self.basis.T + self.mean
        return x.reshape(*z.shape[:2], *shape) * self.norm.x_std + self.norm.x_mean


def _inputs(data: Dataset, norm: Normalization) -> np.ndarray:
    """u = [μ, f(t)], normalized, ``(N, T, P + F)``."""
    mu = (data.mu - norm.mu_mean) / norm.mu_std
    f = (data.f - norm.f_mean) / norm.f_std
    return np.concatenate([np.broadcast_to(mu[:, None], (*f.shape[:2], mu.shape[1])), f], -1)


def _rk4(rhs, z0: np.ndarray, t: np.ndarray, u: np.ndarray, bound: float) -> np.ndarray:
    """Integrate ż = rhs(z (B, r), u (B, m)) on ``t``; u ``(B, T, m)`` linear in between."""
    sub = max(1, int(math.ceil(float(np.max(np.diff(t))) / EVAL_DT - 1e-4)))
    out = np.full((z0.shape[0], t.size, z0.shape[1]), np.inf)
    out[:, 0] = z = z0.copy()
    alive = np.ones(z0.shape[0], bool)
    with np.errstate(all="ignore"):
        for k in range(t.size - 1):
            h = (t[k + 1] - t[k]) / sub
            for s in range(sub):
                a, b = s / sub, (s + 0.5) / sub
                c = (s + 1) / sub
                ua, ub, uc = (u[:, k] + w * (u[:, k + 1] - u[:, k]) for w in (a, b, c))
                k1 = rhs(z, ua)
                k2 = rhs(z + 0.5 * h * k1, ub)
                k3 = rhs(z + 0.5 * h * k2, ub)
                k4 = rhs(z + h * k3, uc)
                z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            alive &= np.all(np.isfinite(z), 1) & (np.abs(z).max(1) < bound)
            z = np.where(alive[:, None], z, 0.0)
            out[alive, k + 1] = z[alive]
            if not alive.any():
                break
    return out


def _score(pod: _POD, z: np.ndarray, data: Dataset) -> dict:
    finite = bool(np.all(np.isfinite(z)))
    if not finite:
        return {"rel_l2_mean": float("inf"), "rel_l2_std": float("nan"), "finite": False}
    err = relative_l2(pod.decode(z, data.state_shape), data.x)
    return {"rel_l2_mean": float(err.mean()), "rel_l2_std": float(err.std()), "finite": True}


def _sindy_rhs(model, n_state: int, n_input: int):
    """A fast batched right-hand side of a fitted polynomial SINDy model.

    ``SINDy.predict`` costs milliseconds per call (scikit-learn checks), which dominates
    an RK4 rollout; the library terms are rebuilt here from the model's feature names
    ("1", "x0", "x0 u1", "x1^2", …) as exponents over ``[x…, u…]``.
    """
    names = model.get_feature_names()
    index = {f"x{i}": i for i in range(n_state)}
    index.update({f"u{i}": n_state + i for i in range(n_input)})
    powers = np.zeros((len(names), n_state + n_input))
    for row, name in enumerate(names):
        for factor in name.split():
            if factor == "1":
                continue
            var, _, power = factor.partition("^")
            powers[row, index[var]] += int(power or 1)
    coef = np.asarray(model.coefficients())  # (r, n_terms)

    def rhs(z: np.ndarray, u: np.ndarray) -> np.ndarray:
        v = np.concatenate([z, u], 1)
        theta = np.prod(v[:, None, :] ** powers[None], axis=-1)
        return theta @ coef.T

    return rhs


def _fit_predict(method: str, config: dict, z_train, u_train, t, z0_eval, u_eval, bound):
    """Fit one configuration; return a function that predicts coefficient paths."""
    if method == "pod_sindy":
        import pysindy as ps

        model = ps.SINDy(feature_library=ps.PolynomialLibrary(degree=config["degree"]),
                         optimizer=ps.STLSQ(threshold=config["threshold"], alpha=1e-5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(list(z_train), t=float(t[1] - t[0]), u=list(u_train))
        return _rk4(_sindy_rhs(model, z_train.shape[-1], u_train.shape[-1]), z0_eval, t,
                    u_eval, bound)
    import opinf

    solver = opinf.lstsq.L2Solver(regularizer=config["regularizer"])
    if method == "pod_opinf":
        model = opinf.models.ContinuousModel("cAHB", solver=solver)
        dt = float(t[1] - t[0])
        states = np.concatenate([z.T for z in z_train], 1)
        ddts = np.concatenate([opinf.ddt.ddt_uniform(z.T, dt, order=2) for z in z_train], 1)
        inputs = np.concatenate([u.T for u in u_train], 1)
        model.fit(states, ddts, inputs)
        return _rk4(lambda z, u: model.rhs(0.0, z.T, lambda _t: u.T).T, z0_eval, t, u_eval, bound)
    model = opinf.models.DiscreteModel("cAB", solver=solver)
    model.fit(np.concatenate([z[:-1].T for z in z_train], 1),
              np.concatenate([z[1:].T for z in z_train], 1),
              np.concatenate([u[:-1].T for u in u_train], 1))
    out = np.full((z0_eval.shape[0], t.size, z0_eval.shape[1]), np.inf)
    z = out[:, 0] = z0_eval
    with np.errstate(all="ignore"):
        for k in range(t.size - 1):
            z = model.rhs(z.T, u_eval[:, k].T).T
            out[:, k + 1] = np.where(np.abs(z) < bound, z, np.inf)
    return out


GRIDS = {
    "pod_sindy": [{"degree": d, "threshold": th} for d in (1, 2) for th in (1e-3, 1e-2, 1e-1)],
    "pod_opinf": [{"regularizer": r} for r in (1e-6, 1e-3, 1.0, 1e2, 1e4)],
    "pod_dmdc": [{"regularizer": r} for r in (1e-8, 1e-5, 1e-2)],
}


def run_classical(method: str, train: Dataset, val: Dataset, test: Dataset, rank: int) -> dict:
    """Select on ``val``, score on ``test``; a result record (or ``skipped``)."""
    reason = available(method)
    if reason:
        return {"method": method, "label": CLASSICAL[method]["label"], "skipped": reason}
    if not (np.allclose(np.diff(train.t), train.t[1] - train.t[0])
            and np.allclose(train.t, test.t) and np.allclose(train.t, val.t)):
        return {"method": method, "label": CLASSICAL[method]["label"],
                "skipped": "needs one uniform time grid shared by the splits"}
    start = time.perf_counter()
    norm = Normalization.fit(train)
    pod = _POD(train, rank, norm)
    z_train = pod.encode(train.x)
    bound = 1e3 * max(float(np.abs(z_train).max()), 1.0)
    u_train = _inputs(train, norm)
    z_val, z_test = pod.encode(val.x), pod.encode(test.x)
    trials = []
    for config in GRIDS[method]:
        try:
            z = _fit_predict(method, config, z_train, u_train, train.t, z_val[:, 0],
                             _inputs(val, norm), bound)
            score = _score(pod, z, val)
        except Exception as exc:  # a failed fit is a result, not a crash
            score = {"rel_l2_mean": float("inf"), "rel_l2_std": float("nan"), "finite": False,
                     "error": f"{type(exc).__name__}: {exc}"[:200]}
        trials.append({"config": config, "val": score})
    best = min(trials, key=lambda r: r["val"]["rel_l2_mean"])
    z = _fit_predict(method, best["config"], z_train, u_train, train.t, z_test[:, 0],
                     _inputs(test, norm), bound)
    seconds = time.perf_counter() - start
    return {"method": method, "label": CLASSICAL[method]["label"], "device": "cpu",
            "rank": rank, "pod_energy": pod.energy, "config": best["config"],
            "trials": trials, "test": _score(pod, z, test), "seconds": seconds,
            "forcing": "control input u = [μ, f(t)]"}
