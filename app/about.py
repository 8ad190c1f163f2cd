"""The About tab: what the model is and how it is trained, for a classroom.

Text is Markdown with the symbols written in Unicode; the two formulas are ``LaTeX`` panes
rendered by KaTeX (bundled with Panel and served locally). Markdown would read the
underscores of inline TeX as emphasis.
"""

from __future__ import annotations

import panel as pn

__all__ = ["SDE_LATEX", "ELBO_LATEX", "about_panel"]

INTRO = """
## What you are looking at

A **stochastic reduced-order model** (ROM) replaces an expensive simulation — here a partial
differential equation solved on a grid — by a small random dynamical system that is cheap
enough to run hundreds of times per slider move. Each run is one *sample path*; together they
give a prediction **and its uncertainty**.

### Three pieces

1. An **encoder** compresses the state u(t) (for Burgers: 128 grid values) into a few latent
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


def about_panel() -> pn.viewable.Viewable:
    """The About tab's content."""
    def text(md: str) -> pn.pane.Markdown:
        return pn.pane.Markdown(md, sizing_mode="stretch_width", max_width=900,
                                disable_math=True)

    def formula(tex: str) -> pn.pane.LaTeX:
        return pn.pane.LaTeX(tex, renderer="katex", styles={"font-size": "1.05em"},
                             margin=(0, 30))

    return pn.Column(text(INTRO), formula(SDE_LATEX), text(PIECES), formula(ELBO_LATEX),
                     text(TERMS), sizing_mode="stretch_width", max_width=950)
