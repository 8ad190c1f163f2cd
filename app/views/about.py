"""The About tab: what the model is and how it is trained, for a classroom.

Text is Markdown with the symbols written in Unicode; the two formulas are ``LaTeX`` panes
rendered by KaTeX (bundled with Panel and served locally). Markdown would read the
underscores of inline TeX as emphasis.

The tab opens with a section on the system of the model picked in Explore
(:data:`SYSTEM_ABOUT`, :func:`system_about`), replaced when another model is picked.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from app.state.safe_text import md

__all__ = ["SDE_LATEX", "ELBO_LATEX", "SYSTEM_ABOUT", "system_about", "about_panel"]

#: what each built-in system is, for a classroom: the equation in words and symbols, what μ
#: and the forcing mean, and what to look at (keys: ``engine.systems`` names)
SYSTEM_ABOUT: dict[str, tuple[str, str]] = {
    "burgers": ("Burgers' equation: a 1-D model of a viscous flow", """
The velocity u(x, t) along a line x ∈ [0, 1] obeys u_t = ν u_xx − u u_x: the term u u_x
carries fast fluid past slow fluid, so waves **steepen** into fronts, and the viscosity ν
(the parameter μ) smooths them out. The forcing f(t) is the inflow speed at the left end.

**Look at:** the space–time map of the mean (fronts are the sharp colour edges) and the std
map (the model is least sure where fronts are). Lower ν and the fronts sharpen."""),
    "heat": ("The stochastic heat equation", """
The temperature u(x, t) of a rod with cold ends diffuses (du = κ u_xx dt + …) while a heater
of fixed shape, switched by the forcing f(t), adds heat and random kicks dW shake it: the
truth itself is **random**. μ is the diffusivity κ: large κ flattens the profile quickly.

**Look at:** the bands cannot shrink to a line even for a perfect model: one noisy path
cannot be predicted, only its spread. The model's error is quoted against the mean of many
runs of the truth."""),
    "oscillator": ("A forced Duffing oscillator", """
A mass on a spring that stiffens as it stretches: ẍ + δẋ + x + βx³ = f(t), with a little
random noise. μ = (δ, β): the damping δ and the cubic stiffness β. f(t) pushes the mass.

**Look at:** the state's two components are position x and velocity v; the latent phase
portrait shows how the model folds the motion into a loop. Strong β makes the response
differ from a scaled copy of the drive."""),
    "van_der_pol": ("A forced Van der Pol oscillator", """
An oscillator that pumps energy in at small amplitude and damps it at large amplitude,
ẍ − μ_d(1 − x²)ẋ + kx = f(t), so every start settles on one **limit cycle**. μ = (μ_d, k).

**Look at:** with large damping μ_d the cycle becomes a relaxation oscillation (slow build-up,
sudden jump), which a smooth model finds harder."""),
    "lotka_volterra": ("Predators and prey (Lotka–Volterra)", """
Prey x grow at rate α and are eaten by predators y, which starve without prey:
dx = (αx − βxy)dt + noise, dy = (δxy − γy)dt + noise. μ, in the parametric model, is the prey birth rate α.

**Look at:** the two populations cycle, the predators a quarter period behind the prey;
the latent phase portrait is a closed loop."""),
    "predprey4": ("Two prey and two predators", """
Four interacting populations with logistic prey growth and small random noise; μ = the two
prey birth rates.

**Look at:** favouring one prey changes which predator wins."""),
    "lorenz63": ("The Lorenz-63 system: chaos", """
Three variables of a convection model, ẋ = σ(y − x), ẏ = x(ρ − z) − y, ż = xy − βz, observed
with noise. Tiny differences grow exponentially (about e-fold per **Lyapunov time**), so no
model can follow one path for long.

**Look at:** the bands widen quickly; the model's score is the time it follows the true path
(in Lyapunov times), not an error over the whole horizon."""),
    "kuramoto_sivashinsky": ("The Kuramoto–Sivashinsky equation: spatio-temporal chaos", """
u_t + u u_x + u_xx + u_xxxx = 0 on a periodic line of length L (the parameter μ): long waves
grow, short ones are damped, and the nonlinearity moves energy between them, giving chaotic
cells that split and merge. Longer domains hold more cells.

**Look at:** the space–time map of the mean blurs as the forecast loses the true path; the
score is the valid prediction time in Lyapunov times."""),
    "reaction_diffusion": ("λ–ω reaction–diffusion: spiral waves", """
Two chemical fields u, v on a square react (rotating in the (u, v) plane at a rate set by β)
and diffuse (diffusivity d), forming **rotating spirals**. μ = (β, d) in the parametric
models; the paper's models have one fixed setting.

**Look at:** the 2-D maps while the player runs: a good model keeps the spiral turning at the
right speed."""),
    "pendulum_video": ("A pendulum seen as video", """
A frictionless pendulum released from the angle θ₀ (the parameter μ), shown as 32×32
black-and-white frames: the model never sees the angle, only pixels.

**Look at:** the frames of the mean (a blur where the model is unsure where the bob is)
and the latent phase portrait: a 2-D latent state can recover the angle and its speed."""),
    "cylinder": ("Flow past a cylinder with two jets", """
A 2-D channel flow (lattice Boltzmann simulation) past a cylinder sheds a street of vortices
behind it; two small jets on the cylinder (the forcing f(t)) blow and suck to steer the wake.
The state has three channels: the velocities u, v and the pressure p.

**Look at:** the maps while the player runs: the vortices travel downstream; switch the
channel to see pressure. Jets off shows the natural shedding."""),
}

CUSTOM_ABOUT = """
This model was trained on **your own data**: there is no simulator behind it, so there is
no "truth" to compare with, and its parameters are the ones your data file named: {params}.
Predictions start from states of your training data (pick one under *Sampling*)."""

INTRO = """
## What you are looking at

A **stochastic reduced-order model** (ROM) replaces an expensive simulation — here a partial
differential equation solved on a grid — by a small random dynamical system that is cheap
enough to run hundreds of times per slider move. Each run is one *sample path*; together they
give a prediction **and its uncertainty**.

### Three pieces

1. An **encoder** compresses the state u(t) (for Burgers: 128 grid values; the system of the
   model you picked is described above) into a few latent
   numbers z(t) ∈ ℝᵈ (here d = 3–8).
2. A **latent stochastic differential equation** (SDE) moves z forward in time, driven by
   the parameters μ (e.g. the viscosity ν) and the forcing f(t).
3. A **decoder** maps every latent state back to a full field u ≈ Dθ(z), with a little
   Gaussian noise of its own.

The latent SDE is
"""

SDE_LATEX = (r"$$\mathrm{d}z = \psi_\theta\big(z, t;\, \mu, f(t)\big)\,\mathrm{d}t"
             r" + \Psi\,\mathrm{d}\beta(t)$$")

PIECES = """
The *drift* ψθ is a small neural network; the *dispersion* Ψ sets how much random kick dβ
(Brownian motion) each latent direction receives. That randomness is the model's way of
saying "I am not sure".

### How it learns: the ELBO

Training maximises the **evidence lower bound** (ELBO): a number that is high when the model
explains the data well without being more certain than it should. For observed snapshots
u₁, …, uₙ and an approximate posterior q over latent paths — a Gaussian process with mean
m(t) and variance S(t), interpolated from the encoder's outputs on short windows of data —
"""

ELBO_LATEX = (
    r"$$\mathrm{ELBO} = \sum_i \mathbb{E}_q\big[\log p_\theta(u_i \mid z(t_i))\big]"
    r" - \frac{1}{2}\int \mathbb{E}_q\Big[\big\lVert \Psi^{-1} r(z, t)\big\rVert^2\Big]"
    r"\,\mathrm{d}t - \mathrm{KL}(\text{priors}),"
    r"\qquad r = A(t)\,(m - z) + \dot m - \psi_\theta(z, t; \mu, f)$$")

TERMS = """
* The first term — **reconstruction** — asks the decoder to reproduce the data.
* The second — the **path KL divergence** between the posterior and the SDE — asks the
  posterior's motion (ṁ, plus the pull A(t)(m − z) that keeps its spread at S(t)) to agree
  with the drift, measured in units of the noise Ψ.
* The last keeps the noise levels and drift weights close to their priors.

The trick that makes training fast (*amortized reparametrization*): the integral is estimated
at a few random times inside short windows, so **no SDE is solved while training** — the cost
per step does not grow with the length of the trajectories.

### Reading the plots

* **Bands**: the central 50 %, 90 % and 95 % of the sample paths at each time (the coverage
  quoted is that of the 90 % band); the thick line
  is the mean, the thin lines a few individual paths.
* **Space–time maps**: the mean field and its standard deviation; bright in the std map means
  uncertain.
* **Latent trajectories** and the **phase portrait**: the hidden state z(t) the model uses.
* **Trained range**: the green part of each parameter bar. Outside it the model *extrapolates*
  and its answers — uncertainty included — deserve less trust.
* **Compare with the simulator** runs the real equation for the same μ and f(t): the
  relative error of the mean, and how often the truth lies inside the 90 % band (about 90 %
  for a well-calibrated model).
"""


def system_about(system: str | None, param_names: list[str] | tuple[str, ...] = ()) -> str:
    """The About tab's section on a model's system, as Markdown.

    Args:
        system: the model's recorded system name (``None``: the user's own data). It comes
            from a file: an unknown name is shown escaped, with a general note.
        param_names: the model's μ names (shown, escaped, for the user's own data).
    """
    if system is None:
        names = ", ".join(md(n) for n in param_names) or "none"
        return "## This model: your own data\n" + CUSTOM_ABOUT.format(params=names)
    if system in SYSTEM_ABOUT:
        title, body = SYSTEM_ABOUT[system]
        return f"## {title}\n*The system of the model picked in Explore.*\n{body}"
    return (f"## {md(system)}\n*The system of the model picked in Explore.*\n\nA system this dashboard has no notes "
            "on: see the model's own documentation.")


def about_panel(state: Any = None) -> pn.viewable.Viewable:
    """The About tab's content.

    Args:
        state: the session's :class:`app.state.explore.ExploreState`: the tab then opens with a
            section on the picked model's system (:func:`system_about`), replaced when the
            model changes; ``None``: the general text alone.
    """
    def text(md: str) -> pn.pane.Markdown:
        return pn.pane.Markdown(md, sizing_mode="stretch_width", max_width=900,
                                disable_math=True)

    def current() -> str:
        model = state.model if state is not None else None
        if model is None:
            return ""
        return system_about(getattr(model, "system_", None), list(model.param_names_))

    def formula(tex: str) -> pn.pane.LaTeX:
        return pn.pane.LaTeX(tex, renderer="katex", styles={"font-size": "1.05em"},
                             margin=(0, 30))

    system = text(current())
    system.css_classes = ["srom-system-about"]
    if state is not None:  # a model switch only: nothing on Explore's hot path
        state.param.watch(lambda _event: setattr(system, "object", current()), "model")
    return pn.Column(system, text(INTRO), formula(SDE_LATEX), text(PIECES),
                     formula(ELBO_LATEX), text(TERMS), sizing_mode="stretch_width",
                     max_width=950)
