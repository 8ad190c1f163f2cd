"""``StochasticROM``: the estimator that ties data, networks, ELBO, training and rollout.

scikit-learn discipline: ``__init__`` stores its arguments verbatim; ``fit`` returns
``self``; learned state ends in ``_``; ``get_params()`` is exactly the saved config.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.calibration import (
    CALIBRATION_MODES,
    fit_lead_time_spread,
    fit_spread_scale,
    fit_uncertainty_scale,
    lead_time_factors,
    validate_lead_scales,
)
from engine.cancellation import CancelCheck, check_cancelled
from engine.config import ModelConfig
from engine.data import Dataset, DatasetError, Normalization
from engine.drift import Dispersion, build_drift
from engine.fitted_state import FittedState, checkpoint_extras
from engine.initial_states import initial_states_from_dataset, load_initial_states
from engine.io import ModelFileError, read_model_files, save_model
from engine.likelihoods import observations, predictive_moments
from engine.metrics import MetricAccumulator
from engine.module import SROMModule, interpolate_forcing
from engine.networks import build_decoder, build_encoder, choose_architecture
from engine.param_average import default_time_constant
from engine.posterior import DeepKernel, WindowPosterior
from engine.prediction import Prediction, over_path_chunks, over_time_chunks, sample_quantiles
from engine.priors import LogNormalVariance
from engine.progress import CallbackList, StopFlag, TrainingCallback
from engine.rollout import RolloutEngine
from engine.schedule import default_steps
from engine.selection import ValidationSelector
from engine.solvers import DEFAULT_METHOD, METHODS, get_scheme
from engine.solvers.step_check import choose_substeps
from engine.train import Trainer, TrainSettings, WindowSampler, read_checkpoint

__all__ = ["StochasticROM", "NotFittedError", "ExtrapolationWarning", "resolve_device",
           "load_model"]


#: the most values one prediction may hold at once (env ``SROM_MAX_PREDICTION_VALUES``)
DEFAULT_MAX_PREDICTION_VALUES = 2**30


def _check_prediction_size(what: str, values: int) -> None:
    """Refuse, before allocating, a prediction that would hold more than the limit."""
    try:
        limit = int(os.environ.get("SROM_MAX_PREDICTION_VALUES", DEFAULT_MAX_PREDICTION_VALUES))
    except ValueError:
        limit = DEFAULT_MAX_PREDICTION_VALUES
    if values > limit:
        raise ValueError(f"this prediction is too large: {what} would hold {values:.3g} values, "
                         f"over the limit of {limit:.3g} (SROM_MAX_PREDICTION_VALUES); use fewer "
                         "sample paths, output times or substeps, or a decode stride")


#: the most values the networks, or one of a training step's largest tensors, may hold: far
#: above any real model (a 3 × 80 × 440 flow needs about 10⁷), far below requests that
#: could never fit (a latent of 10¹² dimensions, 10¹² windows per step)
MAX_TRAINING_VALUES = 2**31


def _check_training_size(what: str, values: int) -> None:
    """Refuse, before allocating, networks or a training step larger than the limit."""
    if values > MAX_TRAINING_VALUES:
        raise ValueError(f"this model is too large to train: {what} would hold {values:.3g} "
                         f"values, over the limit of {MAX_TRAINING_VALUES:.3g}; use a smaller "
                         "latent or layers, or fewer windows, samples or quadrature points")


class NotFittedError(RuntimeError):
    """The model has not been fitted (or loaded) yet."""


class ExtrapolationWarning(UserWarning):
    """Parameters lie outside the range the model was trained on."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; otherwise ``torch.device(device)``, which
    must be a CPU or CUDA device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved: torch.device | None = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    return resolved


def _check_binary_states(dataset) -> None:
    """The Bernoulli likelihood models 0/1 (or [0, 1]) states; refuse others clearly."""
    x = getattr(dataset, "x", None)
    if x is None:  # streamed from disk: checked while reading is not possible here
        return
    low, high = float(np.min(x)), float(np.max(x))
    if low < 0.0 or high > 1.0:
        raise ValueError(f"likelihood='bernoulli' needs states in [0, 1] (binary frames), but "
                         f"this dataset's states lie in [{low:.4g}, {high:.4g}]")


def _system_units(system: str | None) -> dict[str, str]:
    """Units by name of a built-in system's parameters and forcing (``{}`` otherwise)."""
    from engine.systems import SYSTEMS

    cls = SYSTEMS.get(system) if system else None
    return dict(getattr(cls, "units", {}) or {}) if cls is not None else {}


def _tuple(value) -> tuple | None:
    return tuple(value) if value is not None else None


class StochasticROM:
    """A stochastic reduced-order model: probabilistic autoencoder + latent SDE.

    Architecture:
        latent_dim: d; ``None`` picks the state size for small vectors (identity
            autoencoder) and 4 otherwise.
        architecture: ``auto``, ``mlp``, ``conv1d``, ``conv2d`` or ``identity``.
        n_win: snapshots seen by the encoder (forward-looking window).
        window_correction: with the ``identity`` architecture and ``n_win > 1``, the encoder
            adds a learned correction from the rest of the window to the first snapshot
            (zero at the start); ``False``: it ignores the rest of the window (models saved
            before the correction existed load with ``False``).
        decode_positions_only: with ``drift='second_order'``, the decoder reads the
            positions (the first half of z) alone, as a frame of a moving body shows where it
            is, not how fast it goes; the velocities are then what the dynamics and the
            encoder's window make them.
        hidden: widths of the encoder/decoder fully connected layers.
        conv_channels: channels of the first conv level (doubling per level).
        conv_levels: stride-2 levels of the conv encoder/decoder (``None``: down to about
            16 points on the smallest axis; more levels, a smaller flattened layer).
        periodic: circular padding in the conv layers (periodic domains).
        encoder_variance: ``constant`` (learned vector) or ``amortized``.
        encoder_log_var_init: initial log-variance of the encoder (normalized units).
        drift: ``neural`` (MLP on [z, μ, f]), ``second_order`` (z = (q, v), ψ = [v, MLP]:
            a mechanical system), ``library`` (sparse polynomial) or ``physics``.
        drift_hidden, activation: the drift MLP.
        time_features: add cos/sin of 2πt/T_train to the drift input.
        library_degree, library_include_params, library_prior_scale: the library drift.
        physics, physics_params: a registered physics drift and its initial parameters.
        drift_correction: add a neural correction (zero at start) to a structural drift.
        contraction_weight: weight of a prior that penalises the drift's local expansion
            rate (the largest eigenvalue of its Jacobian's symmetric part) along the
            training windows, beside the residual and annealed with it; 0 (default): none
            (:mod:`engine.contraction`).
        contraction_margin: the expansion rate (1 / time unit) the prior allows: it
            penalises ``relu(λ - margin)²`` (0: asks for contraction everywhere).
        dispersion_init: initial Ψ (std per latent dimension).
        dispersion_prior: ``(log_mean, log_std)`` of a log-normal prior on Ψ², or ``None``.
        decoder_log_var_init, decoder_log_var_prior: the decoder noise variance (normalized
            units): initial log σ² and the (mean, std) of its Gaussian prior.
        decoder_var_floor: lower bound on the decoder variance (normalized units); keeps
            noise-free data from collapsing the variances and over-confident predictions.
        likelihood: ``gaussian`` (default) or ``bernoulli`` for binary data such as
            thresholded video frames (the decoder gives logits; states in [0, 1] are not
            normalized; :mod:`engine.likelihoods`).
        kernel_hidden, kernel_length_scale, kernel_nugget: the deep kernel.
        normalize: scale states, μ and f to zero mean and unit std before the networks.
        dtype: ``float32`` or ``float64``.

    Training:
        steps (``None``: from the data's size, :func:`engine.schedule.default_steps`;
        the count run is in ``training_["steps"]``), lr, lr_decay_steps (lr × 0.9 every
        that many steps), window (B),
        windows_per_step (W), n_samples (R), n_quad (strata per sample), quadrature
        (``stratified`` — unbiased, default — or ``data``), kl_warmup, kl_transition
        (β ramps 0 → 1 over that many steps after the warm-up; ``None`` = steps // 3),
        grad_clip, average_steps (time constant, in steps, of the exponential average of
        the parameters that training returns; 0: the last parameters; ``None``:
        ``min(500, steps // 8)`` when ``steps`` is ``None`` too, else 0;
        :mod:`engine.param_average`), log_every, checkpoint_every, device (``auto``),
        cuda_graph, seed.

    Prediction:
        integrator: ``heun`` (default), ``sra1`` or ``euler`` (:mod:`engine.solvers`).
        substeps: steps between output times; ``None`` (default) lets :meth:`fit` choose
            them by halving the step until the deterministic rollout on held-out data
            changes by less than 1 % of its error (:meth:`tune_integrator`), stored in
            ``integration_`` and ``config.json``.
        assimilate_iterations: with ``n_win > 1``, fit the initial latent state to the
            given window of snapshots through the learned dynamics (L-BFGS iterations; its
            Laplace covariance becomes the initial spread; :mod:`engine.assimilation`).
            0 (default): the encoder's ``q(z0)`` as it is. For noisy observations of a
            deterministic or chaotic truth, where the encoder alone filters little.
        assimilate_prior_scale: the fit's prior is the encoder's ``q(z0)`` with its
            variance multiplied by this (1, default: as trained). An encoder trained on one
            noisy trajectory can be overconfident (Lorenz-63: std ~0.2 against errors of
            0.4-0.8), and its prior then holds the fit near its own state; a larger scale
            lets the window's snapshots decide.
    """

    def __init__(self, latent_dim: int | None = None, architecture: str = "auto", n_win: int = 1,
                 window_correction: bool = True, decode_positions_only: bool = False,
                 hidden: tuple[int, ...] = (128, 128), conv_channels: int = 8,
                 conv_levels: int | None = None, periodic: bool = False,
                 encoder_variance: str = "constant",
                 encoder_log_var_init: float = -4.0,
                 drift: str = "neural", drift_hidden: tuple[int, ...] = (128, 128, 128),
                 activation: str = "silu", time_features: bool = False,
                 library_degree: int = 3, library_include_params: bool = False,
                 library_prior_scale: float = 1.0, physics: str | None = None,
                 physics_params: dict | None = None, drift_correction: bool = False,
                 contraction_weight: float = 0.0, contraction_margin: float = 0.0,
                 dispersion_init: float = 0.1,
                 dispersion_prior: tuple[float, float] | None = None,
                 decoder_log_var_init: float = -4.0,
                 decoder_log_var_prior: tuple[float, float] = (-4.0, 1.0),
                 decoder_var_floor: float = 0.0, likelihood: str = "gaussian",
                 kernel_hidden: tuple[int, ...] = (32, 32), kernel_length_scale: float = 0.1,
                 kernel_nugget: float = 1e-2, normalize: bool = True, dtype: str = "float32",
                 steps: int | None = None, lr: float = 1e-3, lr_decay_steps: int = 1000,
                 window: int = 64, windows_per_step: int = 4, n_samples: int = 1,
                 n_quad: int = 32, quadrature: str = "stratified", kl_warmup: int = 0,
                 kl_transition: int | None = None, grad_clip: float = 10.0,
                 average_steps: int | None = None, log_every: int = 50,
                 checkpoint_every: int = 0, device: str = "auto",
                 cuda_graph: bool = True, seed: int = 0, integrator: str = DEFAULT_METHOD,
                 substeps: int | None = None, assimilate_iterations: int = 0,
                 assimilate_prior_scale: float = 1.0):
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.n_win = n_win
        self.window_correction = window_correction
        self.decode_positions_only = decode_positions_only
        self.hidden = hidden
        self.conv_channels = conv_channels
        self.conv_levels = conv_levels
        self.periodic = periodic
        self.encoder_variance = encoder_variance
        self.encoder_log_var_init = encoder_log_var_init
        self.drift = drift
        self.drift_hidden = drift_hidden
        self.activation = activation
        self.time_features = time_features
        self.library_degree = library_degree
        self.library_include_params = library_include_params
        self.library_prior_scale = library_prior_scale
        self.physics = physics
        self.physics_params = physics_params
        self.drift_correction = drift_correction
        self.contraction_weight = contraction_weight
        self.contraction_margin = contraction_margin
        self.dispersion_init = dispersion_init
        self.dispersion_prior = dispersion_prior
        self.decoder_log_var_init = decoder_log_var_init
        self.decoder_log_var_prior = decoder_log_var_prior
        self.decoder_var_floor = decoder_var_floor
        self.likelihood = likelihood
        self.kernel_hidden = kernel_hidden
        self.kernel_length_scale = kernel_length_scale
        self.kernel_nugget = kernel_nugget
        self.normalize = normalize
        self.dtype = dtype
        self.steps = steps
        self.lr = lr
        self.lr_decay_steps = lr_decay_steps
        self.window = window
        self.windows_per_step = windows_per_step
        self.n_samples = n_samples
        self.n_quad = n_quad
        self.quadrature = quadrature
        self.kl_warmup = kl_warmup
        self.kl_transition = kl_transition
        self.grad_clip = grad_clip
        self.average_steps = average_steps
        self.log_every = log_every
        self.checkpoint_every = checkpoint_every
        self.device = device
        self.cuda_graph = cuda_graph
        self.seed = seed
        self.integrator = integrator
        self.substeps = substeps
        self.assimilate_iterations = assimilate_iterations
        self.assimilate_prior_scale = assimilate_prior_scale

    # ------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        import inspect

        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, JSON-friendly (tuples as lists); what ``save`` writes."""
        out = {}
        for name in self.param_names():
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def set_params(self, **params) -> StochasticROM:
        valid = set(self.param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"unknown parameter '{key}' for StochasticROM")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = StochasticROM().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return "StochasticROM(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _check_params(self) -> None:
        """Check every hyperparameter's type, sign and range (:meth:`ModelConfig.validate`)."""
        self.config.validate()

    # ------------------------------------------------------------ config objects
    @property
    def config(self) -> ModelConfig:
        """The hyperparameters as sections (:mod:`engine.config`); a snapshot, not a view.

        Raises:
            ValueError: an attribute set to an unknown name cannot occur; bad values are
                only reported by :meth:`ModelConfig.validate`.
        """
        return ModelConfig.from_params(self.get_params())

    @classmethod
    def from_config(cls, config: ModelConfig, **overrides: Any) -> StochasticROM:
        """A model of ``config``'s hyperparameters, with some flat values overridden."""
        return cls(**config.replace(**overrides).to_params())

    def fitted_state(self) -> FittedState:
        """The learned non-weight state as one record (:mod:`engine.fitted_state`)."""
        self._check_fitted()
        return FittedState.of(self)

    # ------------------------------------------------------------- building
    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    def _resolve_latent_dim(self, state_shape: tuple[int, ...]) -> int:
        if self.latent_dim is not None:
            if int(self.latent_dim) < 1:
                raise ValueError(f"latent_dim must be positive, got {self.latent_dim}")
            return int(self.latent_dim)
        size = math.prod(state_shape)
        return size if (len(state_shape) == 1 and size <= 8) else 4

    def _resolve_steps(self, dataset: Dataset) -> int:
        """``steps``, or the data-size rule's count when it is ``None``."""
        if self.steps is not None:
            return int(self.steps)
        return default_steps(dataset.state_shape, dataset.n_times, int(self.window),
                             int(self.windows_per_step))

    def _build(self, state_shape: tuple[int, ...], n_params: int, n_forcing: int,
               normalization: Normalization, t_span: float) -> SROMModule:
        d = self._resolve_latent_dim(state_shape)
        arch = self.architecture
        if arch == "auto":
            arch = choose_architecture(state_shape, d)
        padding = "circular" if self.periodic else "zeros"
        hidden = tuple(self.hidden)
        encoder = build_encoder(arch, state_shape, d, self.n_win, hidden, self.activation,
                                self.conv_channels, padding, self.encoder_variance,
                                self.encoder_log_var_init, self.conv_levels,
                                window_correction=bool(self.window_correction))
        decoded = d // 2 if self.decode_positions_only else d
        decoder = build_decoder(arch, state_shape, decoded, hidden[::-1], self.activation,
                                self.conv_channels, padding, self.conv_levels)
        lv_mean, lv_std = self.decoder_log_var_prior
        dec_var = LogNormalVariance(state_shape, self.decoder_log_var_init, 1e-2, lv_mean, lv_std,
                                    floor=self.decoder_var_floor)
        kernel = DeepKernel(tuple(self.kernel_hidden), self.kernel_length_scale, self.kernel_nugget)
        units = None
        if self.drift == "physics":
            if arch == "identity":
                size = math.prod(state_shape)
                units = {
                    "z_shift": np.broadcast_to(normalization.x_mean, state_shape).reshape(size).tolist(),
                    "z_scale": np.broadcast_to(normalization.x_std, state_shape).reshape(size).tolist(),
                }
            else:
                units = {}
            units["mu_shift"] = normalization.mu_mean.tolist()
            units["mu_scale"] = normalization.mu_std.tolist()
        drift = build_drift(
            self.drift, d, n_params, n_forcing, hidden=tuple(self.drift_hidden), act=self.activation,
            time_period=t_span if self.time_features else None, library_degree=self.library_degree,
            library_include_params=self.library_include_params,
            library_prior_scale=self.library_prior_scale, physics=self.physics,
            physics_params=self.physics_params, correction=self.drift_correction,
            physics_units=units)
        dispersion = Dispersion(d, self.dispersion_init,
                                _tuple(self.dispersion_prior) if self.dispersion_prior else None)
        module = SROMModule(encoder, decoder, dec_var, WindowPosterior(kernel), drift, dispersion,
                            state_shape, d, likelihood=self.likelihood,
                            decoded_latents=decoded if decoded < d else None)
        self.architecture_ = arch
        self.latent_dim_ = d
        return module.to(self.torch_dtype)

    # ------------------------------------------------------------------ fit
    def initialize(self, dataset: Dataset, normalization: Normalization | None = None
                   ) -> StochasticROM:
        """Build and initialize the networks for ``dataset`` exactly as :meth:`fit` starts,
        without training (seeded by ``seed``; used by ``fit`` and by benchmarks that train
        the same networks another way).

        Args:
            dataset: the training trajectories (their shapes, normalization and ranges).
            normalization: use these statistics instead of fitting them (resuming).
        """
        from engine.streaming import StreamingDataset

        if not isinstance(dataset, (Dataset, StreamingDataset)):
            raise TypeError(f"fit expects an engine.Dataset or an engine.streaming."
                            f"StreamingDataset, got {type(dataset).__name__}")
        self._check_params()
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(self.seed)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if self.likelihood == "bernoulli":
            _check_binary_states(dataset)
        norm = normalization or Normalization.fit(dataset, self.normalize)
        if self.likelihood == "bernoulli":  # the decoder's logits need the raw 0/1 states
            norm = norm.without_state_scaling()
        norm.check_shapes(dataset.state_shape, dataset.n_params, dataset.n_forcing)
        self.normalization_ = norm
        self.state_shape_ = dataset.state_shape
        self.n_params_, self.n_forcing_ = dataset.n_params, dataset.n_forcing
        self.param_names_ = list(dataset.param_names)
        self.forcing_names_ = list(dataset.forcing_names)
        self.param_ranges_ = [[float(lo), float(hi)]  # as Dataset.summary() gives them
                              for lo, hi in zip(dataset.mu.min(axis=0), dataset.mu.max(axis=0))]
        self.t_range_ = [float(dataset.t[0]), float(dataset.t[-1])]
        self.dt_ = float(np.median(np.diff(dataset.t)))
        self.system_ = dataset.system
        # how the data were made (preset, simulator config with forcing family and ranges),
        # so a dashboard can rebuild the simulator; per-trajectory details are left out
        self.dataset_info_ = {k: dataset.attrs[k] for k in ("preset", "config", "grid")
                              if k in dataset.attrs}
        # a few initial states of the data: a model without a simulator starts from them
        self.initial_states_ = initial_states_from_dataset(dataset, self.n_win)
        t_span = float(dataset.t[-1] - dataset.t[0])
        self._check_training_sizes(dataset, norm, t_span)
        self.uncertainty_scale_ = 1.0
        self.uncertainty_mode_ = "noise"
        self.calibration_: dict[str, Any] = {}
        self.integration_: dict[str, Any] = {}  # a refit checks its integrator again
        self.assimilation_: dict[str, Any] = {}  # and chooses its prior scale again
        self.module_ = self._build(dataset.state_shape, dataset.n_params, dataset.n_forcing,
                                   norm, t_span).to(device)
        self._rollout = None
        return self

    def _check_training_sizes(self, dataset: Dataset, norm: Normalization, t_span: float) -> None:
        """Count, before anything is allocated, the networks' weights (built on the meta
        device: shapes only) and the largest tensors of one training step."""
        try:
            with torch.device("meta"):
                probe = self._build(dataset.state_shape, dataset.n_params, dataset.n_forcing,
                                    norm, t_span)
        except RuntimeError as exc:  # even the shapes overflow (10¹² × 10¹² channels)
            raise ValueError(f"this model is too large to train: its networks cannot even be "
                             f"sized ({exc})") from None
        _check_training_size("the networks' weights",
                             sum(int(v.numel()) for v in probe.state_dict().values()))
        d, state = self.latent_dim_, math.prod(dataset.state_shape)
        nodes = min(int(self.window), dataset.n_times)
        windows, samples = int(self.windows_per_step), int(self.n_samples)
        points = nodes + samples * (int(self.n_quad) if self.quadrature == "stratified" else nodes)
        widest = max([2 * d, nodes, *self.hidden, *self.drift_hidden, *self.kernel_hidden])
        _check_training_size("one step's decoded snapshots (windows × samples × snapshots × "
                             "state)", windows * samples * nodes * state)
        _check_training_size("one step's encoder inputs (windows × snapshots × n_win × state)",
                             windows * nodes * int(self.n_win) * state)
        _check_training_size("one step's posterior and drift evaluations (windows × time "
                             "points × widest layer)", windows * points * widest)

    def _resolve_average_steps(self, steps: int) -> int:
        """``average_steps``; ``None`` is :func:`engine.param_average.default_time_constant`
        when the step count is the data-size default (where it was measured), else 0."""
        if self.average_steps is not None:
            return int(self.average_steps)
        return default_time_constant(steps) if self.steps is None else 0

    def fit(self, dataset: Dataset, *, callback: TrainingCallback | None = None,
            stop_flag: StopFlag | None = None, checkpoint: str | os.PathLike | None = None,
            resume_from: str | os.PathLike | None = None,
            max_seconds: float | None = None, validation: Dataset | None = None,
            select_every: int | None = None, select_samples: int = 16,
            select_substeps: int | None = None) -> StochasticROM:
        """Train on ``dataset`` by amortized variational inference (no SDE solve).

        Args:
            dataset: the training trajectories: a :class:`Dataset` (moved to the device
                whole), or an :class:`engine.streaming.StreamingDataset` whose states are
                read from disk ahead of each step (the same batches, bounded host memory).
            callback: progress callbacks (start / log / end).
            stop_flag: set it from another thread to stop after the current step.
            checkpoint: file to write checkpoints to (every ``checkpoint_every`` steps and
                at the end); defaults to none.
            resume_from: a checkpoint to continue from (same data and hyperparameters).
            max_seconds: a wall-clock budget; training ends (status ``budget``) at the first
                metric log after it is spent. The schedules still follow ``steps``.
            validation: held-out trajectories for model selection (never the test split).
            select_every: with ``validation``, score a rollout on it every ``select_every``
                steps and at the end (relative L2 error of the predictive mean, as in
                :meth:`evaluate`), and keep the parameters with the best score
                (:class:`engine.selection.ValidationSelector`). The scores join the loss
                history as ``val_rel_l2``; ``training_["selection"]`` summarises them.
            select_samples: sample paths per validation trajectory.
            select_substeps: integrate the validation rollouts with this many substeps
                instead of running the step check before each score (``None``: the check;
                the model's ``substeps``, when set, wins).

        Distributed: when a ``torch.distributed`` process group is initialised (``srom
        train`` under ``torchrun``, :func:`engine.distributed.init_from_environment`),
        every rank calls ``fit`` with the same data and settings; ``windows_per_step`` is
        the global batch (a multiple of the number of ranks; each rank gathers its share),
        gradients are averaged over the ranks, and rank 0 writes the checkpoints.

        Returns:
            self. ``training_`` records status (``completed``, ``stopped``, ``budget``,
            ``diverged``, ``interrupted``), steps, seconds, device and the loss history.
        """
        from engine.distributed import broadcast_json, current_context, noise_seed
        from engine.streaming import StreamingDataset, StreamingWindowSampler

        if (validation is None) != (select_every is None):
            raise ValueError("model selection needs both validation= and select_every=")
        resume = read_checkpoint(resume_from) if resume_from is not None else None
        norm = Normalization.from_dict(resume[1]["normalization"]) if resume is not None else None
        if norm is None and isinstance(dataset, StreamingDataset):
            self._check_params()  # before a pass over the file: on rank 0, shared with all
            shared = broadcast_json(lambda: Normalization.fit(dataset, self.normalize).to_dict())
            assert isinstance(shared, dict)
            norm = Normalization.from_dict(shared)
        self.initialize(dataset, norm)
        device, norm = self._device(), self.normalization_
        ctx = current_context()
        if ctx.enabled:  # the same model everywhere (seeded above); its own noise per rank
            torch.manual_seed(noise_seed(self.seed, ctx.rank, 0))
        dtype = self.torch_dtype
        t = torch.as_tensor(dataset.t, dtype=dtype, device=device)
        mu = torch.as_tensor((dataset.mu - norm.mu_mean) / norm.mu_std, dtype=dtype, device=device)
        f = torch.as_tensor((dataset.f - norm.f_mean) / norm.f_std, dtype=dtype, device=device)
        where = dict(seed=int(self.seed), rank=ctx.rank, world_size=ctx.world_size)
        sampler: WindowSampler | StreamingWindowSampler
        if isinstance(dataset, StreamingDataset):
            sampler = StreamingWindowSampler(dataset, norm, t, mu, f, self.window,
                                             self.windows_per_step, self.n_win, **where)
        else:
            x = self._device_states(dataset.x, dtype, device)
            sampler = WindowSampler(t, x, mu, f, self.window, self.windows_per_step, self.n_win,
                                    **where)
        steps = self._resolve_steps(dataset)
        settings = TrainSettings(
            steps=steps, lr=float(self.lr), lr_decay_steps=int(self.lr_decay_steps),
            window=sampler.window, windows_per_step=int(self.windows_per_step),
            n_samples=int(self.n_samples), n_quad=int(self.n_quad), quadrature=self.quadrature,
            kl_warmup=int(self.kl_warmup),
            kl_transition=int(self.kl_transition if self.kl_transition is not None else steps // 3),
            grad_clip=float(self.grad_clip or 0.0), log_every=int(self.log_every),
            checkpoint_every=int(self.checkpoint_every),
            cuda_graph=bool(self.cuda_graph),
            max_seconds=None if max_seconds is None else float(max_seconds),
            average_steps=self._resolve_average_steps(steps),
            contraction_weight=float(self.contraction_weight),
            contraction_margin=float(self.contraction_margin))
        n_total = dataset.n_trajectories * dataset.n_times
        selector = None
        if validation is not None and select_every is not None:
            self._check_compatible(validation)
            selector = ValidationSelector(self, validation, select_every, select_samples, self.seed,
                                          substeps=select_substeps)
        callbacks = [c for c in (selector, callback) if c is not None]
        trainer = Trainer(
            self.module_, sampler, settings, n_total, device,
            callback=CallbackList(callbacks) if callbacks else None, stop_flag=stop_flag,
            checkpoint_path=checkpoint,
            checkpoint_extra=checkpoint_extras(self.config.to_dict(), norm),
            distributed=ctx, checkpoint_state=selector)
        start = 0
        if resume is not None:
            start = trainer.load_checkpoint(*resume)
            if ctx.enabled:  # saved by one rank: each rank's stream from this step instead
                torch.manual_seed(noise_seed(self.seed, ctx.rank, start))
        try:
            result = trainer.run(start)
        finally:
            trainer.release()
        if result.status == "diverged":
            warnings.warn(result.message, RuntimeWarning, stacklevel=2)
        selection = None
        if selector is not None:
            selector.restore_best()
            selection = selector.summary()
        self.training_ = {
            "status": result.status, "message": result.message, "steps": result.step,
            "seconds": result.seconds, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "history": result.history, "n_trajectories": dataset.n_trajectories,
            "n_times": dataset.n_times, "resumed_from_step": start,
            "cuda_graph": trainer.use_graph,
            "peak_step_memory_mb": result.peak_step_memory_mb,
            "world_size": ctx.world_size,
            "planned_steps": steps, "steps_from_data_size": self.steps is None,
            # the returned parameters: their average over this many steps (<= 1: the last)
            "average_steps": settings.average_steps,
        }
        if isinstance(sampler, StreamingWindowSampler):
            self.training_["streaming"] = {
                "prefetch": sampler.prefetch, "readers": sampler.readers,
                "host_bytes": sampler.host_bytes, "wait_seconds": sampler.wait_seconds,
                "read_seconds": sampler.read_seconds}
        if selection is not None:
            self.training_["selection"] = selection
        if trainer.checkpoint_error is not None:
            self.training_["checkpoint_error"] = trainer.checkpoint_error
        self.module_.eval()
        if self.substeps is None and result.status != "diverged":
            # held-out data if given, else a few training trajectories
            held_out = validation if validation is not None else dataset
            if isinstance(held_out, StreamingDataset):  # a few trajectories, read into memory
                per_case = held_out.n_times * math.prod(held_out.state_shape)
                held_out = held_out.subset(range(max(1, min(held_out.n_trajectories, 8,
                                                             2**26 // per_case))))
            self.tune_integrator(held_out)
        return self

    # ----------------------------------------------------------- integrator
    def integration_settings(self, integrator: str | None = None,
                             substeps: int | None = None) -> tuple[str, int]:
        """The scheme and substeps a prediction uses: the arguments if given, else the
        model's ``integrator`` and ``substeps``, else the substeps :meth:`tune_integrator`
        chose (``integration_``), else 1."""
        method = integrator or self.integrator
        if method not in METHODS:
            raise ValueError(f"integrator must be one of {METHODS}, got '{method}'")
        if substeps is None:
            substeps = self.substeps
        if substeps is None:
            substeps = (getattr(self, "integration_", None) or {}).get("substeps", 1)
        if not isinstance(substeps, (int, np.integer)) or substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
        return method, int(substeps)

    def coarse_substeps(self, share: float = 0.1) -> int:
        """The fewest substeps whose halving changed the deterministic rollout by at most
        ``share`` of its error, read from the step check's rows (``integration_["tried"]``):
        a cheaper step for a quick preview, close to the checked one. Without a recorded
        check, the substeps predictions use."""
        _, substeps = self.integration_settings()
        rows = (getattr(self, "integration_", None) or {}).get("tried") or []
        if self.substeps is not None:
            return substeps  # chosen by the user, not by the check
        for n, change, error in rows:
            if change <= share * error:
                return int(min(n, substeps))
        return substeps

    def tune_integrator(self, dataset: Dataset, integrator: str | None = None,
                        tolerance: float = 0.01, max_substeps: int = 64) -> dict:
        """Choose the substeps of ``integrator`` (default: the model's) on held-out data
        (:func:`engine.solvers.step_check.choose_substeps`): the fewest of 1, 2, 4, … whose
        halving changes the deterministic rollout by less than ``tolerance`` of its error.

        Sets ``integration_`` (saved in ``config.json``) and makes it the model's choice:
        ``integrator`` becomes the checked scheme and ``substeps`` ``None`` (an explicit
        count set before is replaced by the checked one). Returns the record.
        """
        self._check_fitted()
        self._check_compatible(dataset)
        method = integrator or self.integrator
        get_scheme(method)
        self.integration_ = choose_substeps(self, dataset, method, tolerance=tolerance,
                                            max_substeps=max_substeps)
        self.integrator, self.substeps = method, None
        return self.integration_

    def tune_assimilation(self, dataset: Dataset, horizon: float | None = None,
                          scales: Sequence[float] | None = None, n_forecasts: int = 24,
                          n_samples: int = 32, standard_errors: float | None = None,
                          seed: int = 0) -> dict:
        """Choose ``assimilate_prior_scale`` by forecasts from windows of ``dataset``
        (:func:`engine.assimilation_tuning.choose_prior_scale`: the smallest scale whose
        forecasts over the next ``horizon`` time units are not worse than the best scale's
        by more than ``standard_errors`` standard errors of the paired difference). Sets the
        scale and ``assimilation_`` (saved in ``config.json``); returns the record."""
        from engine.assimilation_tuning import DEFAULT_SCALES, STANDARD_ERRORS, choose_prior_scale

        self._check_fitted()
        self._check_compatible(dataset)
        record = choose_prior_scale(self, dataset, horizon=horizon,
                                    scales=DEFAULT_SCALES if scales is None else scales,
                                    n_forecasts=n_forecasts, n_samples=n_samples,
                                    standard_errors=(STANDARD_ERRORS if standard_errors is None
                                                     else standard_errors),
                                    seed=seed)
        self.assimilate_prior_scale = record["scale"]
        self.assimilation_ = record
        return record

    # -------------------------------------------------------------- helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError("this StochasticROM is not fitted yet: call fit() or load_model()")

    def _normalize_x(self, x: np.ndarray) -> np.ndarray:
        n = self.normalization_
        return (x - n.x_mean) / n.x_std

    def _device_states(self, x: np.ndarray, dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
        """``(N, T, *S)`` normalized states on ``device``, one trajectory at a time (no
        full-size float64 copy on the host: a GPU-sized flow dataset stays affordable)."""
        out = torch.empty(x.shape, dtype=dtype, device=device)
        for i in range(x.shape[0]):
            out[i] = torch.as_tensor(self._normalize_x(x[i]), dtype=dtype)
        return out

    def _device(self) -> torch.device:
        return next(self.module_.parameters()).device

    @property
    def dispersion_(self) -> np.ndarray:
        """Ψ, the learned latent dispersion (std per latent dimension, latent units)."""
        self._check_fitted()
        return self.module_.dispersion.std().detach().cpu().numpy()

    @property
    def drift_parameters_(self) -> dict[str, float | list]:
        """The learned parameters of a physics drift (physical units), else ``{}``."""
        self._check_fitted()
        drift: Any = getattr(self.module_.drift, "structural", self.module_.drift)
        return drift.parameter_values() if hasattr(drift, "parameter_values") else {}

    @property
    def decoder_std_(self) -> np.ndarray:
        """Decoder noise std in physical units, state-shaped."""
        self._check_fitted()
        var = self.module_.decoder_variance.point().detach().cpu().numpy()
        return np.sqrt(var) * self.normalization_.x_std

    # -------------------------------------------------------------- encode
    @torch.no_grad()
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent mean and variance of states ``(M, *S)`` (or windows ``(M, n_win, *S)``)."""
        self._check_fitted()
        windows = self._windows(np.asarray(x, dtype=np.float64), "x")
        mean, log_var = self.module_.encode(windows)
        return mean.cpu().numpy(), torch.exp(log_var).cpu().numpy()

    def _windows(self, x0: np.ndarray, name: str) -> torch.Tensor:
        shape = tuple(self.state_shape_)
        if x0.ndim < len(shape) or tuple(x0.shape[x0.ndim - len(shape):]) != shape:
            raise ValueError(f"{name}: expected shape (B, *{shape}) or {shape}, got {x0.shape}")
        if not np.all(np.isfinite(x0)):
            raise ValueError(f"{name}: contains NaN or inf")
        extra = x0.ndim - len(shape)
        if extra == 0:
            x0 = x0[None, None]
        elif extra == 1:
            x0 = x0[:, None]
        elif extra > 2:
            raise ValueError(f"{name}: expected shape (B, *{shape}), got {x0.shape}")
        _check_prediction_size("the encoder windows (cases × n_win × state)",
                               x0.shape[0] * int(self.n_win) * math.prod(shape))
        if x0.shape[1] < self.n_win:  # repeat the last available snapshot (edge padding)
            pad = np.repeat(x0[:, -1:], self.n_win - x0.shape[1], axis=1)
            x0 = np.concatenate([x0, pad], axis=1)
        x0 = x0[:, : self.n_win]
        normalized = self._normalize_x(x0)
        return torch.as_tensor(normalized, dtype=self.torch_dtype, device=self._device())

    # ------------------------------------------------------------- predict
    def _prepare_mu(self, mu, n_cases: int) -> np.ndarray:
        p = self.n_params_
        if mu is None:
            if p:
                raise ValueError(f"mu: this model needs {p} parameters {self.param_names_}")
            return np.zeros((n_cases, 0))
        mu = np.asarray(mu, dtype=np.float64)
        if mu.ndim == 1:
            mu = np.broadcast_to(mu, (n_cases, mu.shape[0]))
        if mu.ndim != 2 or mu.shape[1] != p or mu.shape[0] not in (1, n_cases):
            raise ValueError(f"mu: expected shape ({p},) or ({n_cases}, {p}), got {mu.shape}")
        if not np.all(np.isfinite(mu)):
            raise ValueError("mu: contains NaN or inf")
        mu = np.broadcast_to(mu, (n_cases, p)).copy()
        for j, (lo, hi) in enumerate(self.param_ranges_):
            span = hi - lo
            if np.any(mu[:, j] < lo - 1e-9 * max(abs(span), 1)) or np.any(mu[:, j] > hi + 1e-9 * max(abs(span), 1)):
                warnings.warn(
                    f"parameter '{self.param_names_[j]}' = {mu[:, j].min():.4g}..{mu[:, j].max():.4g} "
                    f"lies outside the trained range [{lo:.4g}, {hi:.4g}]: extrapolating",
                    ExtrapolationWarning, stacklevel=5)
        return mu

    def _prepare_f(self, f, t: np.ndarray, n_cases: int) -> np.ndarray:
        k = self.n_forcing_
        if f is None:
            if k:
                raise ValueError(f"f: this model needs forcing {self.forcing_names_} on t")
            return np.zeros((n_cases, t.size, 0))
        if callable(f):
            f = np.asarray(f(t), dtype=np.float64)
            if f.ndim == 1:
                f = f[:, None]
        f = np.asarray(f, dtype=np.float64)
        if f.ndim == 2:
            f = f[None]
        if f.ndim != 3 or f.shape[1:] != (t.size, k) or f.shape[0] not in (1, n_cases):
            raise ValueError(f"f: expected shape ({t.size}, {k}) or ({n_cases}, {t.size}, {k}), "
                             f"got {np.shape(f)}")
        if not np.all(np.isfinite(f)):
            raise ValueError("f: contains NaN or inf")
        return np.broadcast_to(f, (n_cases, t.size, k)).copy()

    @torch.no_grad()
    def predict(self, x0: np.ndarray, mu=None, t=None, f=None, n_samples: int = 128,
                seed: int | None = None, return_samples: bool = True,
                integrator: str | None = None, substeps: int | None = None,
                decoder_noise: bool = True,
                quantiles: Sequence[float] | None = None,
                decode_stride: int = 1, deterministic: bool = False,
                cancel: CancelCheck | None = None) -> Prediction:
        """Encode ``x0``, integrate the latent SDE for many paths and decode.

        Args:
            x0: ``(B, *S)`` or ``(*S)`` initial states (or ``(B, n_win, *S)`` windows).
            mu: ``(P,)`` or ``(B, P)`` parameters (warns outside the trained range).
            t: ``(T,)`` increasing output times starting at the time of ``x0``; default:
                the training grid.
            f: forcing on ``t``: ``(T, F)``, ``(B, T, F)`` or a callable ``f(t) -> (T[, F])``.
            n_samples: sample paths per case.
            seed: seeds the initial-state and Brownian draws (reproducible).
            return_samples: keep the decoded sample paths (memory B·n·T·|S|).
            integrator, substeps: override the model's defaults
                (:meth:`integration_settings`).
            decoder_noise: include the decoder's Gaussian noise in samples and std.
            quantiles: levels to compute on the device (fast; no samples need to come
                back to the host), available as ``Prediction.quantiles(levels)``.
            decode_stride: decode and return only every ``decode_stride``-th output time
                and the last one (default 1: all of ``t``). The SDE is still integrated on
                all of ``t`` with the same steps and noise, so the latent paths at the kept
                times are those of the full prediction with the same seed; decoding, the
                moments and the quantiles cost ``1 / decode_stride`` as much (a quick
                preview). ``Prediction.t`` holds the kept times.
            deterministic: the mean-field path instead of samples: the encoder's mean as
                the initial state, no Brownian noise and no decoder noise (every sample
                path is this one path; the std is zero).
            cancel: a quick thread-safe check that returns ``True`` once the result is no
                longer wanted (:mod:`engine.cancellation`); called between integration
                steps, decoder chunks and the reductions over paths. ``None`` (default):
                never cancelled. It does not change the result of a prediction it lets
                finish.

        Returns:
            A :class:`Prediction` in physical units.

        Raises:
            PredictionCancelled: ``cancel()`` returned ``True`` before the end.
        """
        if not isinstance(decode_stride, (int, np.integer)) or decode_stride < 1:
            raise ValueError(f"decode_stride must be a positive integer, got {decode_stride!r}")
        t, mu, f_phys, latent, gen, noise_scale = self._latent_paths(
            x0, mu, t, f, n_samples, seed, integrator, substeps, deterministic, cancel)
        decoder_noise = decoder_noise and not deterministic
        device, dtype, norm = self._device(), self.torch_dtype, self.normalization_
        n_cases, d = mu.shape[0], self.latent_dim_
        n_kept = len(range(0, t.size, int(decode_stride))) + (1 if (t.size - 1) % decode_stride else 0)
        _check_prediction_size("the decoded sample paths (cases × paths × times × state)",
                               n_cases * n_samples * n_kept * math.prod(self.state_shape_))
        if decode_stride > 1:  # keep every decode_stride-th time and the last one
            keep = np.unique(np.r_[np.arange(0, t.size, int(decode_stride)), t.size - 1])
            latent = latent.view(n_cases * n_samples, t.size, d)[:, torch.as_tensor(keep, device=device)]
            t, f_phys = t[keep], f_phys[:, keep]
        decoded = self._decode_paths(latent.reshape(-1, d), cancel=cancel).view(
            n_cases, n_samples, t.size, *self.state_shape_)
        # the calibrated spread about the mean, per output time (None: none; decided on
        # the host, so that an uncalibrated prediction does no extra work on the device)
        factors = np.ones(t.size) if deterministic else self._spread_factors(t)
        spread = (torch.as_tensor(factors, dtype=dtype, device=device).view(
            t.size, *([1] * len(self.state_shape_))) if np.any(factors != 1.0) else None)
        dec_var = self.module_.decoder_variance.point() * noise_scale**2 if decoder_noise else None
        # in chunks of output times, each after a cancel check (a 3 x 80 x 440 flow's
        # moments and quantiles over 37 paths took 12 s in one piece on a CPU)
        x_mean_n, x_var_n = over_time_chunks(
            lambda part: predictive_moments(self.likelihood, part, dec_var), decoded,
            out_dims=(1, 1), cancel=cancel, what="the predictive moments")
        scale = torch.as_tensor(norm.x_std, dtype=dtype, device=device)
        shift = torch.as_tensor(norm.x_mean, dtype=dtype, device=device)
        mean_phys = x_mean_n * scale + shift
        mean = mean_phys.cpu().numpy()
        std_n = x_var_n.sqrt() if spread is None else x_var_n.sqrt() * spread  # (B, T, *S)
        std = (std_n * scale).cpu().numpy()
        samples, q_values, q_levels = None, None, None
        if return_samples or quantiles is not None:
            decoded = over_path_chunks(
                lambda part: observations(self.likelihood, part, dec_var, gen) * scale + shift,
                decoded, cancel=cancel, what="the sample paths")
            if spread is not None:  # every path's distance to the mean × spread
                centre = mean_phys[:, None]
                decoded = decoded.sub_(centre).mul_(spread).add_(centre)
            if quantiles is not None:
                q_levels = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
                q_values = over_time_chunks(
                    lambda part: (sample_quantiles(part, q_levels, dim=1),), decoded,
                    out_dims=(2,), cancel=cancel, what="the quantiles")[0].cpu().numpy()
            if return_samples:
                samples = decoded.cpu().numpy()
        return Prediction(t=t, mean=mean, std=std, samples=samples,
                          latent=latent.view(n_cases, n_samples, t.size, d).cpu().numpy(),
                          mu=mu, f=f_phys, quantile_levels=q_levels, quantile_values=q_values,
                          param_names=list(self.param_names_), forcing_names=list(self.forcing_names_),
                          **self._prediction_labels())

    def _prediction_labels(self) -> dict:
        """``system``, ``units`` and ``grid`` for a :class:`Prediction`, from what the model
        saved of its data (a hand-edited config.json may hold anything there: what is not a
        name or a 1-D list of numbers is left out, never an error)."""
        system = self.system_ if isinstance(self.system_, str) else None
        info = getattr(self, "dataset_info_", None)
        grid = info.get("grid") if isinstance(info, dict) else None
        axes = {}
        for name, values in (grid.items() if isinstance(grid, dict) else ()):
            try:
                array = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                continue
            if isinstance(name, str) and array.ndim == 1:
                axes[name] = array.tolist()
        return {"system": system, "units": _system_units(system), "grid": axes}

    @torch.no_grad()
    def predict_latent(self, x0: np.ndarray, mu=None, t=None, f=None, n_samples: int = 128,
                       seed: int | None = None, integrator: str | None = None,
                       substeps: int | None = None) -> np.ndarray:
        """The latent sample paths of :meth:`predict` alone, without decoding.

        Same arguments (and, for the same ``seed``, the same paths) as :meth:`predict`.

        Returns:
            ``(B, n_samples, T, d)`` latent paths (``Prediction.latent``).
        """
        t, mu, _, latent, _, _ = self._latent_paths(x0, mu, t, f, n_samples, seed,
                                                    integrator, substeps)
        return latent.view(mu.shape[0], n_samples, t.size, self.latent_dim_).cpu().numpy()

    def _latent_paths(self, x0, mu, t, f, n_samples, seed, integrator, substeps,
                      deterministic=False, cancel=None):
        """Check the inputs, encode ``x0``, draw z0 and the Brownian increments, integrate.

        Returns:
            ``(t, mu, f, latent, generator, noise_scale)``: the checked times ``(T,)``,
            parameters ``(B, P)`` and forcing ``(B, T, F)`` (physical units), the latent
            paths ``(B·n, T, d)`` on the device, the seeded generator (for later draws) and
            the calibration scale of every noise source (1 when the calibration scales
            the spread about the mean instead, :data:`CALIBRATION_MODES`).
        """
        self._check_fitted()
        x0 = np.asarray(x0, dtype=np.float64)
        windows = self._windows(x0, "x0")
        n_cases = windows.shape[0]
        if t is None:
            t = np.linspace(self.t_range_[0], self.t_range_[1],
                            int(round((self.t_range_[1] - self.t_range_[0]) / self.dt_)) + 1)
        t = np.asarray(t, dtype=np.float64)
        if t.ndim != 1 or t.size < 2:
            raise ValueError(f"t: expected an increasing 1-D array of at least 2 times, got shape {t.shape}")
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise ValueError("t: times must be finite and strictly increasing")
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        mu = self._prepare_mu(mu, n_cases)
        f_phys = self._prepare_f(f, t, n_cases)
        method, n_sub = self.integration_settings(integrator, substeps)
        scheme = get_scheme(method)
        n_paths = n_cases * n_samples
        d = self.latent_dim_
        # checked before anything is drawn: the initial states alone (paths × latent) of
        # 10¹² sample paths would be terabytes
        noise_shape = scheme.noise_shape(t.size - 1, n_sub, n_paths, d)
        _check_prediction_size("the Brownian draws (times × substeps × paths × latent)",
                               math.prod(noise_shape))

        device, dtype, norm = self._device(), self.torch_dtype, self.normalization_
        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
        mean0, log_var0 = self.module_.encode(windows)
        given = x0.shape[1] if x0.ndim - len(self.state_shape_) == 2 else 1
        if (self.assimilate_iterations and min(given, self.n_win) > 1
                and self.likelihood == "gaussian"):  # one snapshot: nothing to fit
            mean0, log_var0 = self._assimilate(windows, min(given, self.n_win), t[0], mu,
                                               t, f_phys, mean0, log_var0, method, n_sub)
        eps0 = torch.randn(n_cases, n_samples, d, generator=gen, dtype=dtype, device=device)
        noise_scale = self._calibration_factors()[0]  # see calibrate()
        if deterministic:
            eps0 = torch.zeros_like(eps0)
        z0 = (mean0[:, None] + noise_scale * torch.exp(0.5 * log_var0)[:, None] * eps0).reshape(n_paths, d)
        noise = torch.randn(noise_shape, generator=gen, dtype=dtype, device=device)
        if deterministic:
            noise = torch.zeros_like(noise)
        mu_t = torch.as_tensor((mu - norm.mu_mean) / norm.mu_std, dtype=dtype, device=device)
        f_t = torch.as_tensor((f_phys - norm.f_mean) / norm.f_std, dtype=dtype, device=device)
        mu_paths = mu_t.repeat_interleave(n_samples, 0)
        f_paths = f_t.repeat_interleave(n_samples, 0)
        t_t = torch.as_tensor(t, dtype=dtype, device=device)
        if getattr(self, "_rollout", None) is None:
            self._rollout = RolloutEngine(self.module_.drift, use_graph=bool(self.cuda_graph))
        latent = self._rollout(z0, t_t, mu_paths, f_paths,
                               noise_scale * self.module_.dispersion.std(), noise, method, n_sub,
                               cancel=cancel)  # (n_paths, T, d)
        return t, mu, f_phys, latent, gen, noise_scale

    def _assimilate(self, windows: torch.Tensor, n_given: int, t0: float, mu: np.ndarray,
                    t: np.ndarray, f_phys: np.ndarray, mean0: torch.Tensor,
                    log_var0: torch.Tensor, method: str, n_sub: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's ``q(z0)`` ``(B, d)`` refitted to the window's ``n_given`` snapshots
        (at ``t0 + k·dt``, the data's spacing) by :func:`engine.assimilation.assimilate_initial_latent`;
        the forcing over the window is interpolated from ``f_phys`` ``(B, T, F)`` on ``t``."""
        from engine.assimilation import assimilate_initial_latent

        device, dtype, norm = self._device(), self.torch_dtype, self.normalization_
        n_cases = windows.shape[0]
        as_tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        t_window = as_tensor(float(t0) + float(self.dt_) * np.arange(self.n_win))
        f_window = interpolate_forcing(as_tensor(t), as_tensor((f_phys - norm.f_mean) / norm.f_std),
                                       t_window.expand(n_cases, -1))
        return assimilate_initial_latent(
            self.module_, windows, torch.full((n_cases,), n_given, device=device), t_window,
            as_tensor((mu - norm.mu_mean) / norm.mu_std), f_window,
            mean0, log_var0, method, n_sub, iterations=int(self.assimilate_iterations),
            prior_scale=float(self.assimilate_prior_scale))

    def _decode_paths(self, z: torch.Tensor, chunk: int | None = None,
                      cancel: CancelCheck | None = None) -> torch.Tensor:
        """``(N, *S)`` the decoder's output for ``z`` ``(N, d)``, in chunks of frames
        (``cancel`` is checked before each)."""
        # small chunks keep CPU convolutions in cache: 2048 frames of a small state, and
        # near 2^21 values on a CPU (a 3 x 80 x 440 flow: 19 frames, 6.8 ms a frame against
        # 10.6 ms in chunks of 640, the same values, issue 17), which also bounds how long
        # a cancel waits; big ones on a GPU, as long as a chunk's states stay near 2^26
        # values (conv activations are a few times that: a 100 x 100 field decodes ~6700
        # frames at a time, not 65536)
        per_frame = max(1, math.prod(self.state_shape_))
        chunk = chunk or max(1, min(65536 if z.is_cuda else 2048,
                                    (2**26 if z.is_cuda else 2**21) // per_frame))
        parts = []
        for i in range(0, z.shape[0], chunk):
            check_cancelled(cancel, f"decoding frame {i} of {z.shape[0]}")
            parts.append(self.module_.decode(z[i:i + chunk]))
        return torch.cat(parts, 0)

    # ------------------------------------------------------------ evaluate
    def evaluate(self, dataset: Dataset, n_samples: int = 128, seed: int = 0,
                 batch_size: int | None = None, integrator: str | None = None,
                 substeps: int | None = None, paper_protocol: bool = True) -> dict:
        """Encode each trajectory's first snapshot, predict its whole time grid with its μ
        and f, and score the predictive mean and samples.

        Args:
            dataset: held-out trajectories.
            n_samples, seed, batch_size: prediction settings.
            integrator, substeps: override the model's (:meth:`integration_settings`).
            paper_protocol: also score the papers' protocol (:mod:`engine.protocols`).

        Returns:
            ``rel_l2_mean`` (the headline: per-step relative L2 error of the predictive
            mean, averaged over trajectories and steps), ``rel_l2_std``, ``rmse``,
            ``crps``, ``coverage_50``, ``coverage_90``, ``n_trajectories``, the
            ``integrator`` and ``substeps`` used, and ``paper_protocol`` (a dict).
        """
        from engine.protocols import paper_protocol as score_paper_protocol

        method, n_sub = self.integration_settings(integrator, substeps)
        scores = MetricAccumulator()
        for sl, pred in self.predict_dataset(dataset, n_samples, seed, batch_size,
                                             integrator=method, substeps=n_sub):
            scores.update(pred.mean, pred.samples, dataset.x[sl])
        result: dict[str, Any] = dict(scores.result())
        result["n_trajectories"] = dataset.n_trajectories
        result["integrator"], result["substeps"] = method, n_sub
        if paper_protocol:
            result["paper_protocol"] = score_paper_protocol(self, dataset, seed, batch_size)
        return result

    def predict_dataset(self, dataset: Dataset, n_samples: int = 128, seed: int = 0,
                        batch_size: int | None = None, **predict_kwargs):
        """The papers' protocol, batch by batch: for each slice of ``batch_size``
        trajectories, predict their whole time grid from their first snapshot(s) with their
        μ and f (seed ``seed + start``; extrapolation warnings silenced). ``None``: as many
        trajectories as keep the decoded samples of a batch near 512 MiB (at least 1, at
        most 8), so that large fields (a 3 × 80 × 440 flow) fit in memory.

        Yields:
            ``(slice, Prediction)`` pairs.
        """
        self._check_fitted()
        self._check_compatible(dataset)
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size is None:
            per_case = n_samples * dataset.n_times * math.prod(dataset.state_shape) * 4
            batch_size = int(min(8, max(1, (512 * 2**20) // per_case)))
        for start in range(0, dataset.n_trajectories, batch_size):
            sl = slice(start, start + batch_size)
            x0 = dataset.x[sl, : self.n_win] if self.n_win > 1 else dataset.x[sl, 0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExtrapolationWarning)
                pred = self.predict(x0, dataset.mu[sl], dataset.t, dataset.f[sl],
                                    n_samples=n_samples, seed=seed + start, **predict_kwargs)
            yield sl, pred

    def calibrate(self, dataset: Dataset, level: float = 0.9, n_samples: int = 64,
                  seed: int = 0, mode: str = "noise") -> dict[str, Any]:
        """Scale the uncertainty of predictions so that the central ``level`` interval
        covers ``level`` of ``dataset`` (held-out validation data, never the test set).

        Args:
            mode: what the scale multiplies (:data:`CALIBRATION_MODES`). ``"noise"``
                (default): every noise source (initial state, dispersion Ψ, decoder noise),
                so the sample paths are the SDE's with a scaled noise; on a chaotic or
                strongly nonlinear model a wider noise also moves their mean (it fans the
                paths out sooner). ``"spread"``: the decoded sample paths' distance to the
                predictive mean (and the std), after an unscaled prediction: the mean is
                the uncalibrated one exactly; only the bands change (multiplicative
                inflation, as ensemble forecasts do). ``"lead"``: the same with a factor
                per bin of lead time (:func:`engine.calibration.fit_lead_time_spread`),
                exact from one prediction. Gaussian likelihood only (both).

        Sets ``uncertainty_scale_`` and ``uncertainty_mode_`` (saved with the model) and
        records the result, with ``mode``, in ``calibration_``; see
        :mod:`engine.calibration`.
        """

        self._check_fitted()
        self._check_compatible(dataset)
        if mode not in CALIBRATION_MODES:
            raise ValueError(f"mode must be one of {', '.join(CALIBRATION_MODES)}, got {mode!r}")
        if mode != "noise" and self.likelihood != "gaussian":
            raise ValueError(f"mode '{mode}' needs a Gaussian likelihood (this model's is "
                             f"{self.likelihood}: its samples are 0/1 pixels)")
        self.uncertainty_scale_, self.uncertainty_mode_ = 1.0, "noise"  # fits start uncalibrated
        fit = {"noise": fit_uncertainty_scale, "spread": fit_spread_scale,
               "lead": fit_lead_time_spread}[mode]
        found = fit(self, dataset, level=level, n_samples=n_samples, seed=seed)
        # the lead mode's factors are read from calibration_ (_spread_factors)
        self.uncertainty_scale_ = 1.0 if mode == "lead" else found["scale"]
        self.calibration_ = {**found, "mode": mode}
        self.uncertainty_mode_ = mode
        return self.calibration_

    def _calibration_factors(self) -> tuple[float, float]:
        """``(noise, spread)``: what the calibration multiplies the noise sources and the
        decoded spread about the mean by (one of them is 1; the ``lead`` mode's spread
        depends on the lead time: :meth:`_spread_factors`)."""
        scale = float(getattr(self, "uncertainty_scale_", 1.0))
        mode = getattr(self, "uncertainty_mode_", "noise")
        if mode == "spread":
            return 1.0, scale
        if mode == "lead":
            return 1.0, 1.0
        return scale, 1.0

    def _spread_factors(self, t: np.ndarray) -> np.ndarray:
        """``(T,)`` the factor of the decoded paths' distance to their mean at output times
        ``t`` (lead times ``t - t[0]``)."""
        if getattr(self, "uncertainty_mode_", "noise") == "lead":
            cal = self.calibration_
            return lead_time_factors(t - t[0], cal["lead_times"], cal["lead_scales"])
        return np.full(t.size, self._calibration_factors()[1])

    def _check_compatible(self, dataset: Dataset) -> None:
        if dataset.state_shape != tuple(self.state_shape_):
            raise DatasetError(f"dataset state shape {dataset.state_shape} does not match the "
                               f"model's {tuple(self.state_shape_)}")
        if dataset.n_params != self.n_params_ or dataset.n_forcing != self.n_forcing_:
            raise DatasetError(
                f"dataset has {dataset.n_params} parameters and {dataset.n_forcing} forcing "
                f"channels; the model expects {self.n_params_} and {self.n_forcing_}")

    # ------------------------------------------------------------ save/load
    def save(self, directory: str | os.PathLike, metrics: dict | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory`` (atomically)."""
        return save_model(self, directory, metrics=metrics)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> StochasticROM:
        """Load a model saved by :meth:`save` (safetensors + JSON: nothing is unpickled).

        Args:
            directory: the model directory.
            device: where to put it (``cpu``, ``cuda`` or ``auto``).

        Raises:
            ModelFileError: the directory or a file is missing, corrupt, from an unsupported
                format version, or its weights do not match its config.
        """
        files = read_model_files(directory)
        where = files.config_path
        try:
            model = cls.from_config(files.config)
            files.fitted.apply_to(model)
            model.integration_settings()  # a malformed integrator or substeps fails here
            model.uncertainty_scale_ = float(model.calibration_.get("scale", 1.0))  # checked
            model.uncertainty_mode_ = model.calibration_.get("mode", "noise")
            if model.uncertainty_mode_ not in CALIBRATION_MODES:
                raise ValueError(f"calibration mode {model.uncertainty_mode_!r} is not one of "
                                 f"{', '.join(CALIBRATION_MODES)}")
            if model.uncertainty_mode_ == "lead":
                times, scales = validate_lead_scales(model.calibration_)
                model.calibration_ = {**model.calibration_, "lead_times": times,
                                      "lead_scales": scales}
            fitted = files.fitted
            span = fitted.t_range[1] - fitted.t_range[0]
            with torch.device("meta"):  # shapes only: a config of huge layers costs nothing
                probe = model._build(fitted.state_shape, fitted.n_params, fitted.n_forcing,
                                     fitted.normalization, span)
            built = sum(int(v.numel()) for v in probe.state_dict().values())
            if (built != files.stored_values and model.n_win > 1
                    and not files.names_window_correction
                    and getattr(probe.encoder, "residual_identity", False)):
                # migration: a config without the field, of an identity model of a window
                # saved before its encoder learned a correction from the window (no such
                # weights), keeps ignoring the window. Saved again, it says so.
                model.window_correction = False
                with torch.device("meta"):
                    probe = model._build(fitted.state_shape, fitted.n_params,
                                         fitted.n_forcing, fitted.normalization, span)
                built = sum(int(v.numel()) for v in probe.state_dict().values())
            if built != files.stored_values:
                raise ModelFileError(f"{files.weights_path}: weights do not match the config "
                                     f"(its networks hold {built} values, the file "
                                     f"{files.stored_values})")
            module = model._build(fitted.state_shape, fitted.n_params, fitted.n_forcing,
                                  fitted.normalization, span)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as exc:
            # OverflowError: int(inf); RuntimeError: torch refusing a size (negative, say)
            raise ModelFileError(f"{where}: malformed or incompatible config ({exc})") from exc
        state = files.read_weights()
        try:
            module.load_state_dict({k: v.to(model.torch_dtype) if v.is_floating_point() else v
                                    for k, v in state.items()}, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"{files.weights_path}: weights do not match the config "
                                 f"({exc})") from exc
        model.module_ = module.to(resolve_device(device)).eval()
        try:  # a few training states: a model without a simulator starts from them
            model.initial_states_ = load_initial_states(directory, fitted.state_shape,
                                                        fitted.n_params, fitted.n_forcing)
        except ValueError as exc:
            raise ModelFileError(str(exc)) from exc
        model._rollout = None
        return model


def load_model(directory: str | os.PathLike, device: str = "cpu") -> StochasticROM:
    """Load a saved model directory: :meth:`StochasticROM.load`."""
    return StochasticROM.load(directory, device)
