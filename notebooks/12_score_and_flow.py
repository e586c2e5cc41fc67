# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/12_score_and_flow.ipynb)
#
# # 12 · One model, three readings: noise, score and velocity
#
# Since lesson 05 our network has predicted the noise $\epsilon$ in $x_t$. This lesson shows that
# the same network, read differently, is a **score** $\nabla \log q_t(x_t)$ (the direction in
# which the data gets more likely) and a **velocity** (the direction in which to move a point
# to turn noise into data). Each reading comes with its own family of methods, and each is
# a one-line conversion from the others. We
#
# 1. derive the conversions and Tweedie's formula $\mathbb{E}[x_0 \mid x_t]$ from the score, and
#    check them on the exact Gaussian-mixture oracle;
# 2. train a network by **denoising score matching** on 2-D data and sample it with
#    **Langevin dynamics**; measure why one noise level is not enough and annealing is;
# 3. tie DDPM to a stochastic differential equation and its **probability-flow ODE**, check
#    on the oracle that both have the same marginals, and show numerically that lesson 07's
#    DDIM is Euler's method on the flow below;
# 4. train by **flow matching** (rectified flow), the recipe of today's large image models:
#    a straight path from data to noise, a velocity target, an ODE to sample; show that its
#    path is DDPM's path with another clock and scale, and its loss DDPM's noise-prediction
#    loss with another weighting; draw its trajectories beside DDIM's, and after one round of
#    *reflow*, the step that does straighten them; and compare it with DDPM on digits.

# %%
import subprocess, sys
if "google.colab" in sys.modules:  # Colab: install the course package (JupyterLab users did it once)
    install = [sys.executable, "-m", "pip", "install", "-q", "ddpm-course[colab]>=0.2,<0.3"]
    if subprocess.run(install).returncode != 0:  # say what to do instead of a traceback
        print('The course package did not install: pip could not get ddpm-course[colab]>=0.2,<0.3 (pip '
              'says why above: no network, no release >=0.2,<0.3 on the package index yet, or a proxy). '
              'Install it one of two other ways, then run the next cells. Either from the repository '
              'archive, in a new cell:\n'
              '    !pip install "ddpm-course[colab] @ '
              'https://github.com/ddpm-course/ddpm-course/archive/refs/heads/main.zip"\n'
              'or upload the wheel ddpm_course-0.2.0-py3-none-any.whl (from '
              'https://github.com/ddpm-course/ddpm-course/releases, or built in a checkout with python -m'
              ' build) in the Files panel on the left, then run:\n'
              '    !pip install "/content/ddpm_course-0.2.0-py3-none-any.whl[colab]"')

# %% [markdown]
# Parameters: points per 2-D experiment, training steps of the small 2-D networks, digits per
# Frechet distance. The checks state their tolerances in standard errors or against the
# real-vs-real level at the same size, so they hold at any size.

# %%
N_POINTS = 1000
TRAIN_STEPS = 1500  # each small 2-D velocity network (flow matching)
SCORE_STEPS = 3000  # the score network: at 1500 steps 2 seeds in 6 still land outside the real-vs-real band
N_DIGITS = 256
SEED = 0

# %%
# NBVAL_IGNORE_OUTPUT
import math

import matplotlib.pyplot as plt
import torch

import ddpm_course as dc
from ddpm_course import compare, flow, samplers
from ddpm_course import parametrization as P
from ddpm_course import score as S
from ddpm_course.models import MLPConfig, MLPDenoiser
from ddpm_course.oracle import GaussianMixture, ring_mixture

device = dc.setup(seed=SEED)
# Small tensors (2-D points, batches of 16x16 digits): on a CPU one thread avoids hand-off costs.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Noise, clean data, score: one estimate, read three ways
#
# Every path in the course writes a noisy sample as $x_t = \alpha_t x_0 + \sigma_t \epsilon$
# (DDPM: $\alpha_t = \sqrt{\bar\alpha_t}$, $\sigma_t = \sqrt{1-\bar\alpha_t}$). Given $x_0$ it is Gaussian,
# so its score is known: $\nabla_{x_t} \log q(x_t \mid x_0) = -(x_t - \alpha_t x_0)/\sigma_t^2 = -\epsilon/\sigma_t$.
# The marginal $q(x_t) = \int q(x_t \mid x_0)\, q(x_0)\, dx_0$ has the score
#
# $$\nabla \log q(x_t) = \frac{\int \nabla q(x_t \mid x_0)\, q(x_0)\, dx_0}{q(x_t)}
# = \mathbb{E}\big[\nabla \log q(x_t \mid x_0) \,\big|\, x_t\big] = -\frac{\mathbb{E}[\epsilon \mid x_t]}{\sigma_t}.$$
#
# The best noise predictor (lesson 05: $\epsilon^* = \mathbb{E}[\epsilon \mid x_t]$) *is* a scaled score.
# Taking $\mathbb{E}[\,\cdot \mid x_t]$ of $x_t = \alpha_t x_0 + \sigma_t\epsilon$ gives
# $x_t = \alpha_t \mathbb{E}[x_0 \mid x_t] + \sigma_t \mathbb{E}[\epsilon \mid x_t]$, hence **Tweedie's formula**
#
# $$\mathbb{E}[x_0 \mid x_t] = \frac{x_t + \sigma_t^2\, \nabla \log q(x_t)}{\alpha_t}:$$
#
# the best denoiser is one gradient step up the log-density. Two more readings complete the
# set: Salimans & Ho's $v = \alpha_t\epsilon - \sigma_t x_0$ and the flow-matching **velocity**
# $u = \epsilon - x_0$ (section 4). All are linear in $(\epsilon, x_0)$, so all are linear in
# one another, and `dc.parametrization.convert` maps any to any:
#
# | reading | in terms of $(\epsilon, x_0)$ | from $\hat\epsilon$ |
# |---|---|---|
# | noise | $\epsilon$ | $\hat\epsilon$ |
# | clean data | $x_0$ | $(x_t - \sigma_t\hat\epsilon)/\alpha_t$ |
# | score | $-\epsilon/\sigma_t$ | $-\hat\epsilon/\sigma_t$ |
# | v | $\alpha_t\epsilon - \sigma_t x_0$ | $\alpha_t \hat\epsilon - \sigma_t \hat x_0$ |
# | velocity | $\epsilon - x_0$ | $\hat\epsilon - \hat x_0$ |
#
# The oracle of the 8-Gaussian ring knows the exact score; the conversions by hand must
# land on it, and Tweedie on its $\mathbb{E}[x_0 \mid x_t]$:

# %%
schedule = dc.linear_schedule()
ring = ring_mixture(k=8, radius=1.0, std=0.1)
t = 300
abar = schedule.alpha_bars[t].item()
alpha, sigma = math.sqrt(abar), math.sqrt(1 - abar)
x_t = 1.2 * torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED))
score, eps = ring.score_and_eps(x_t, t, schedule)

score_by_hand = -eps / sigma
x0_by_hand = (x_t + sigma**2 * score) / alpha  # Tweedie
assert (score_by_hand - score).abs().max() < 1e-9
assert (x0_by_hand - ring.x0_mean(x_t, t, schedule)).abs().max() < 1e-9
for source in P.KINDS:
    for target in P.KINDS:
        there = P.convert(eps, "eps", source, x_t, alpha, sigma)
        assert (P.convert(there, source, target, x_t, alpha, sigma)
                - P.convert(eps, "eps", target, x_t, alpha, sigma)).abs().max() < 1e-9
print("score = -eps/sigma and Tweedie's E[x0|x_t] agree with the oracle; all 25 conversions agree (float64, < 1e-9)")

# %% [markdown]
# The oracle's $\mathbb{E}[x_0 \mid x_t]$ is itself computed by a formula. An independent check is
# Monte Carlo: draw many $x_0$ from the data, weigh each by how likely it makes the observed
# $x_t$, $w \propto q(x_t \mid x_0)$, and average. Three points: near a mode, the centre of the
# ring (where all eight modes are equally likely), and between two modes.

# %%
points = torch.tensor([[0.9, 0.1], [0.0, 0.0], [0.5, -0.6]], dtype=torch.float64)
x0_draws = ring.sample(200_000, torch.Generator().manual_seed(SEED + 1))
log_w = -((points[:, None, :] - alpha * x0_draws[None]) ** 2).sum(-1) / (2 * sigma**2)  # (3, N)
w = torch.softmax(log_w, dim=1)
mc_mean = w @ x0_draws
mc_se = ((w[..., None] * (x0_draws[None] - mc_mean[:, None]) ** 2).sum(1) * (w**2).sum(1, keepdim=True)).sqrt()
tweedie = P.tweedie_x0(points, ring.score_and_eps(points, t, schedule)[0], alpha, sigma)
for p, tw, mc in zip(points.tolist(), tweedie.tolist(), mc_mean.tolist()):
    tw, mc = ([round(v, 3) + 0.0 for v in pair] for pair in (tw, mc))  # + 0.0 turns -0.0 into 0.0
    print(f"x_t = ({p[0]:+.1f}, {p[1]:+.1f}):  Tweedie ({tw[0]:+.3f}, {tw[1]:+.3f})   "
          f"Monte Carlo ({mc[0]:+.3f}, {mc[1]:+.3f})")
assert torch.all((tweedie - mc_mean).abs() < 5 * mc_se + 1e-4)
print("Tweedie's formula = the Monte Carlo posterior mean, within 5 standard errors")

# %% [markdown]
# At the centre the posterior mean is the centre itself, though no data lives there: a
# posterior *mean* averages over every $x_0$ that could have produced $x_t$ (lesson 07 met the
# same effect as the last jump of a sampler).
#
# ## 2. Score matching and Langevin dynamics
#
# ### Learning a score without knowing it
#
# The score of the data is unknown, but the score of the *noising kernel* is known. Vincent
# (2011) showed that regressing on it,
# $\mathbb{E}\,\lVert s_\theta(\tilde x) - \nabla \log q(\tilde x \mid x)\rVert^2$ with $\tilde x = x + \sigma z$,
# differs from the regression on the true score $\nabla\log q_\sigma(\tilde x)$ by a constant
# (the same argument that made $\epsilon$-prediction learn $\mathbb{E}[\epsilon \mid x_t]$).
# This is **denoising score matching**. Song & Ermon (2019) train one network for a ladder
# of levels $\sigma_1 > \dots > \sigma_L$, weigh level $i$ by $\sigma_i^2$, and the loss becomes
# $\mathbb{E}\lVert \sigma_i s_\theta + z\rVert^2$: with $\hat z = -\sigma_i s_\theta$ it is exactly
# $L_\text{simple}$ on the path $\tilde x = x + \sigma z$ (no shrinking of $x$: "variance
# exploding"). So `dc.score.dsm_loss` trains a noise predictor and `learned_score` reads it as
# $s_\theta = -\hat z/\sigma_i$. The network is lesson 05's MLP; the level index plays the timestep.

# %%
sigmas = S.geometric_sigmas(1.0, 0.02, 8)
print("noise levels:", " ".join(f"{s:.3f}" for s in sigmas.tolist()))
points_train = ring.sample(8192, torch.Generator().manual_seed(SEED + 2)).float()
torch.manual_seed(SEED)
score_net = MLPDenoiser(MLPConfig(dim=2, hidden=128, depth=3))
dsm_losses = S.train_dsm(score_net, points_train, sigmas, steps=SCORE_STEPS,
                         generator=torch.Generator().manual_seed(SEED))
learned = S.learned_score(score_net, sigmas)

# %% [markdown]
# ### Langevin dynamics
#
# With a score we can sample without knowing the density: **Langevin dynamics**
#
# $$x \leftarrow x + \frac{a}{2}\,\nabla \log p(x) + \sqrt{a}\, z, \qquad z \sim \mathcal{N}(0, \mathbf{I}),$$
#
# climbs the log-density while the noise keeps it from collapsing onto the modes; for small
# steps $a$ and many of them its samples follow $p$. **Annealed** Langevin (Song & Ermon 2019,
# Algorithm 1) runs a few steps at every level from $\sigma_1$ down to $\sigma_L$ with steps
# $a_i = a\,\sigma_i^2/\sigma_L^2$ and returns the last chain state: a sample of the data
# noised at $\sigma_L$. The final denoising step, Tweedie's formula at $\sigma_L$, which removes
# that last noise, came later (Jolicoeur-Martineau et al., 2020 on arXiv, ICLR 2021);
# `score.annealed_langevin` applies it unless `denoise=False`. First with the exact score of the noised ring (`score.mixture_score`, from
# the oracle), with and without that final step, then with the learned score; the yardstick
# is the sliced Wasserstein distance to fresh data next to what two independent real sets
# score (10 pairs). Here $\sigma_L = 0.02$ against modes of std 0.1, so the last level's noise
# adds only 4% to each mode's variance: the final step matters little on this ring, and much
# on images, whose fine detail lives at scales below $\sigma_L$.

# %%
def sw(a, b):
    return dc.metrics.sliced_wasserstein(a.double(), b, n_projections=256, generator=torch.Generator().manual_seed(0))


fresh = ring.sample(N_POINTS, torch.Generator().manual_seed(SEED + 3))
floors = torch.tensor([sw(ring.sample(N_POINTS, torch.Generator().manual_seed(100 + i)), fresh) for i in range(10)])
start = 4 * torch.rand(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED + 4)) - 2


def exact_score(x, i):
    return S.mixture_score(ring, x, sigmas[i].item())


langevin_exact = S.annealed_langevin(exact_score, start, sigmas, steps_per_level=50, step_size=2e-4,
                                     generator=torch.Generator().manual_seed(SEED + 5))
langevin_learned = S.annealed_langevin(learned, start.float(), sigmas, steps_per_level=50, step_size=2e-4,
                                       generator=torch.Generator().manual_seed(SEED + 5)).double()
langevin_2019 = S.annealed_langevin(exact_score, start, sigmas, steps_per_level=50, step_size=2e-4, denoise=False,
                                    generator=torch.Generator().manual_seed(SEED + 5))
band = floors.mean() + 3 * floors.std()
print(f"real vs real: {floors.mean():.4f} +- {floors.std():.4f};  start (uniform square): {sw(start, fresh):.3f}")
print(f"annealed Langevin, exact score: {sw(langevin_exact, fresh):.4f} with the final Tweedie step, "
      f"{sw(langevin_2019, fresh):.4f} without it (2019's Algorithm 1)")
spread = {name: ring.nearest_mean_distance(x).pow(2).mean().item() / 2
          for name, x in (("data", fresh), ("with", langevin_exact), ("without", langevin_2019))}
assert sw(langevin_exact, fresh) < band and sw(langevin_2019, fresh) < band
print("annealed Langevin with the exact score lands within 3 standard deviations of the real-vs-real level, with "
      "or without the final denoising step")
print(f"per-coordinate variance around the nearest mode: data {spread['data']:.4f}, with the final step "
      f"{spread['with']:.4f}, without {spread['without']:.4f} (truth 0.0100; the last level adds "
      f"sigma_L^2 = {sigmas[-1].item() ** 2:.4f})")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"annealed Langevin, learned score ({SCORE_STEPS} steps): {sw(langevin_learned, fresh):.4f}")

# %%
assert sw(langevin_learned, fresh) < band  # the test the exact score passed above
assert sw(start, fresh) > 3 * band  # the control: the uniform start fails it by far
print("with the learned score: within 3 standard deviations of the real-vs-real level, like the exact score; "
      "the uniform start is more than 3 times that band away")

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (name, pts) in zip(axes, (("data", fresh), ("annealed Langevin, exact score", langevin_exact),
                                  ("annealed Langevin, learned score", langevin_learned))):
    dc.viz.plot_points(pts, ax=ax, title=name)
plt.show()

# %% [markdown]
# ### Why one noise level is not enough
#
# Why the ladder? Song & Ermon name two problems with a single small level, both about the
# **low-density regions** between and around the modes.
#
# *The score is not learned there.* Denoising score matching only sees the noisy training
# points $\tilde x = x + \sigma z$. Count how many of them land far from every mode (more than
# 0.4, four widths, away), at each level:

# %%
far_share = []
for s in sigmas.tolist():
    noisy = points_train.double() + s * torch.randn(points_train.shape, dtype=torch.float64,
                                                    generator=torch.Generator().manual_seed(SEED + 6))
    far_share.append((ring.nearest_mean_distance(noisy) > 0.4).double().mean().item())
print("sigma      " + "".join(f"{s:8.3f}" for s in sigmas.tolist()))
print("share far  " + "".join(f"{v:8.4f}" for v in far_share))

# %% [markdown]
# At the smallest levels essentially no training input lies far from the ring, so there the
# network's score is whatever it extrapolates from the ring. The large levels fill that space,
# and annealed Langevin uses them exactly where the samples still are far from the data.
#
# *Langevin does not travel between modes.* Even with the exact score, a small level leaves
# deep valleys between modes; a chain started in one basin stays there, so the mass each mode
# receives is the share of starting points in its basin, not its weight. Give the ring unequal
# weights (0.2 and 0.05 alternating: the heavy modes hold 80% of the mass) and run Langevin at
# the single level $\sigma = 0.05$ against the annealed ladder, both with the exact score:

# %%
unequal = GaussianMixture(torch.tensor([0.2, 0.05] * 4, dtype=torch.float64), ring.means, ring.covs)


def heavy_share(x):
    return (torch.cdist(x.double(), unequal.means).argmin(1) % 2 == 0).double().mean().item()


single = S.langevin(lambda x: S.mixture_score(unequal, x, 0.05), start, step_size=1e-3, steps=400,
                    generator=torch.Generator().manual_seed(SEED + 7))
annealed = S.annealed_langevin(lambda x, i: S.mixture_score(unequal, x, sigmas[i].item()), start, sigmas,
                               steps_per_level=50, step_size=2e-4, generator=torch.Generator().manual_seed(SEED + 7))
se = math.sqrt(0.8 * 0.2 / N_POINTS)
print(f"share of samples at the heavy modes: truth 0.800, one level (sigma 0.05) {heavy_share(single):.3f}, "
      f"annealed {heavy_share(annealed):.3f} (standard error {se:.3f})")
assert abs(heavy_share(annealed) - 0.8) < 4 * se and heavy_share(single) < 0.8 - 8 * se
print("one small level keeps the starting basins' shares; annealing recovers the weights")

# %% [markdown]
# At $\sigma_1 = 1$ the eight modes merge into one blob whose score sees the weights; as
# $\sigma$ shrinks the samples are already distributed between the modes in the right
# proportions. This is exactly what DDPM's 1000 levels do too.
#
# ## 3. The SDE view, and the ODE that lesson 07 solved
#
# Song et al. (2021) let the number of DDPM steps grow to infinity. The forward chain becomes
# the stochastic differential equation $dx = -\tfrac12\beta(\tau)\,x\,d\tau + \sqrt{\beta(\tau)}\,dW$,
# and Anderson's (1982) time reversal runs it backwards with the score:
#
# $$dx = \big[-\tfrac12\beta(\tau)\,x - \beta(\tau)\,\nabla\log q_\tau(x)\big]\,d\tau + \sqrt{\beta(\tau)}\,d\bar W .$$
#
# DDPM's ancestral sampler (lesson 06) is a discretisation of this **reverse SDE**, with
# $\nabla \log q = -\epsilon_\theta/\sigma$. Drop the noise and halve the score term and you get an
# ordinary differential equation whose solutions have the *same marginals* $q_\tau$ at every
# time, the **probability-flow ODE** $dx/d\tau = -\tfrac12\beta(\tau)\,[x + \nabla\log q_\tau(x)]$.
# Lesson 07 solved it in the variables $z = x/\sqrt{\bar\alpha}$, $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$,
# where Euler's method is DDIM; DPM-Solver++ is a second-order solver of the same ODE.
#
# "The same marginals" is a claim we can check on the oracle: run the ancestral sampler (the
# reverse SDE, fresh noise every step) and DDIM at every step (the ODE, no noise) from the same
# $x_T$ with the exact noise predictor, stop both at a few steps $t$, and compare each with
# fresh draws of $q_t$ itself (`q_sample` of fresh data), next to what two independent draws
# of $q_t$ score.

# %%
oracle_eps = ring.as_model(schedule)
x_start = torch.randn(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED + 12))
stops = (749, 499, 249, 0)


def reverse_run(stochastic):
    """Every step from 999 down with the exact eps; the states at the code steps in ``stops``."""
    x, out, g = x_start.clone(), {}, torch.Generator().manual_seed(SEED + 13)
    for s in range(999, 0, -1):
        eps = oracle_eps(x, torch.full((N_POINTS,), s))
        abar, abar_prev, beta = schedule.alpha_bars[s], schedule.alpha_bars[s - 1], schedule.betas[s]
        if stochastic:  # lesson 06's ancestral step, sigma_t^2 = beta_t
            x = (x - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()
            x = x + beta.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
        else:  # DDIM, eta = 0
            x0_hat = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
            x = abar_prev.sqrt() * x0_hat + (1 - abar_prev).sqrt() * eps
        if s - 1 in stops:
            out[s - 1] = x.clone()
    return out


sde_states, ode_states = reverse_run(True), reverse_run(False)


def q_draw(step, seed):
    x0 = ring.sample(N_POINTS, torch.Generator().manual_seed(seed))
    return dc.q_sample(schedule, x0, step, noise=torch.randn(N_POINTS, 2, dtype=torch.float64,
                                                             generator=torch.Generator().manual_seed(seed + 1)))[0]


marginals = {}
for step in stops:
    target = q_draw(step, 500 + step)
    pairs = torch.tensor([sw(q_draw(step, 600 + 2 * i), target) for i in range(6)])
    marginals[step] = (sw(sde_states[step], target), sw(ode_states[step], target), pairs.mean().item(),
                       pairs.std().item())
print(f"{'step t':>7s} {'reverse SDE':>12s} {'ODE (DDIM)':>11s} {'q_t vs q_t':>16s}")
for step, (w_sde, w_ode, m, sd) in marginals.items():
    print(f"{step:7d} {w_sde:12.4f} {w_ode:11.4f} {m:9.4f} +- {sd:.4f}")

# %%
assert all(max(w_sde, w_ode) < m + 4 * sd for w_sde, w_ode, m, sd in marginals.values())
sde_modes = torch.cdist(sde_states[0], ring.means).argmin(1)
ode_modes = torch.cdist(ode_states[0], ring.means).argmin(1)
assert (sde_modes == ode_modes).double().mean() < 0.3
print("at every checked step both the reverse SDE and the ODE sit within 4 standard deviations of the q_t-vs-q_t "
      "level: the same marginals; yet from the same x_T they end on the same mode for under 30% of the points")

# %% [markdown]
# The same *marginals*, not the same *samples*: the SDE redraws its noise at every step, so a
# given $x_T$ ends on a mode the ODE did not choose (lesson 11 measured the same on a trained
# model).
#
# The flow-matching ODE of the next section is the same ODE once more, in the variables
# $x^{\text{FM}} = x/(\sqrt{\bar\alpha} + \sqrt{1-\bar\alpha})$ and
# $t = \sqrt{1-\bar\alpha}/(\sqrt{\bar\alpha}+\sqrt{1-\bar\alpha})$,
# and Euler's method there is *again* DDIM. Algebra first: with $\hat x_0 = z - \sigma\hat\epsilon$ and
# $u = \hat\epsilon - \hat x_0$, one Euler step $x^{\text{FM}} + (t'-t)\,u$ equals
# $(1-t')\,z + \frac{t'-t}{1-t}\,\hat\epsilon$, which is $(1-t')$ times DDIM's $z + (\sigma' - \sigma)\,\hat\epsilon$
# because $\sigma = t/(1-t)$. Numbers: 20 DDIM steps with the exact noise predictor against
# 20 Euler steps on the exact velocity (`flow.mixture_velocity`) at the matching times.

# %%
x_T = torch.randn(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED + 8))
ts = samplers.timesteps(schedule, 20, "linspace").tolist()
ddim = samplers.ddim_sample(ring.as_model(schedule), schedule, x_T, steps=20, spacing="linspace")

times = [flow.flow_time(schedule.alpha_bars[s].item()) for s in ts] + [0.0]
x = flow.ddpm_to_flow(x_T, schedule.alpha_bars[ts[0]].item())
for t_now, t_next in zip(times[:-1], times[1:]):
    x = flow.flow_euler_step(x, t_now, t_next, flow.mixture_velocity(ring, x, t_now))
print(f"first time {times[0]:.4f}, last evaluated time {times[-2]:.4f}")
assert (x - ddim).abs().max() < 1e-9
print("Euler on the flow ODE at the matching times = DDIM (= Euler on lesson 07's ODE), "
      "up to float64 round-off (< 1e-9)")

# %% [markdown]
# ## 4. Flow matching: a straight path and a velocity
#
# Flow matching (Lipman et al. 2023) and rectified flow (Liu et al. 2023) start from the path
# instead of the noising chain: draw $x_0$ from the data and $\epsilon \sim \mathcal{N}(0,\mathbf I)$ and
# join them by a straight line,
#
# $$x_t = (1-t)\,x_0 + t\,\epsilon, \quad t \in [0, 1], \qquad \frac{dx_t}{dt} = \epsilon - x_0 .$$
#
# Each line has a constant velocity, but at a given $x_t$ many lines cross, so a network is
# trained to predict their *average*, $u^*(x, t) = \mathbb{E}[\epsilon - x_0 \mid x_t = x]$, by regression:
# $\mathbb{E}\,\lVert \epsilon - x_0 - u_\theta(x_t, t)\rVert^2$ with $t \sim U[0, 1]$ (the conditional expectation
# minimises a squared error, as for $L_\text{simple}$). Lipman et al. show that the ODE
# $dx/dt = u^*(x, t)$, run from $t = 1$ (noise) to $t = 0$, carries $\mathcal{N}(0, \mathbf{I})$ to the data.
# The network has the noise predictor's contract `model(x_t, t)`; the course's networks embed
# steps 0..999, so they are fed $999\,t$ (`flow.TIME_SCALE`). The loss by hand, against the package:

# %%
gen = torch.Generator().manual_seed(SEED + 9)
x0 = ring.sample(256, gen).float()
t_batch, noise = torch.rand(256, generator=gen), torch.randn(256, 2, generator=gen)
torch.manual_seed(SEED)
velocity_net = MLPDenoiser(MLPConfig(dim=2, hidden=128, depth=3))
x_line = (1 - t_batch[:, None]) * x0 + t_batch[:, None] * noise
by_hand = ((noise - x0) - velocity_net(x_line, t_batch * 999)).pow(2).mean()
assert torch.equal(by_hand, flow.flow_matching_loss(velocity_net, x0, t=t_batch, noise=noise))
print("flow-matching loss by hand = flow.flow_matching_loss")

# %% [markdown]
# Training needs nothing new: `flow.train_flow` is lesson 05's loop, `train.fit` (AdamW,
# warm-up, EMA, gradient clipping), with this loss as its objective (`flow.FlowMatching`). Sampling is Euler's method from $t = 1$ to $t = 0$, run
# by the same sampling loop as lesson 07's samplers (`samplers.chain`), with float times and
# a velocity in place of a noise prediction.

# %%
fm = flow.train_flow(velocity_net, points_train, steps=TRAIN_STEPS, batch_size=256, lr=2e-3, warmup_steps=50,
                     ema_decay=0.99, generator=torch.Generator().manual_seed(SEED), progress=False)
fm_samples = {n: flow.flow_sample(fm.final_model, x_T.float(), steps=n).double() for n in (5, 20)}
real_pr = dc.metrics.precision_recall(fresh, ring.sample(N_POINTS, torch.Generator().manual_seed(SEED + 14)))
panel = {n: (sw(x, fresh), *dc.metrics.precision_recall(fresh, x), compare.modes_reproduced(x, ring),
             ring.nearest_mean_distance(x).mean().item()) for n, x in fm_samples.items()}

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{'flow matching, Euler':22s} {'sliced W2':>10s} {'precision':>10s} {'recall':>7s} {'modes reproduced':>17s} "
      f"{'dist. to mode':>14s}")
for n, (w, p, r, k, d) in panel.items():
    print(f"{n:3d} steps{'':13s} {w:10.4f} {p:10.3f} {r:7.3f} {k:13d} of 8 {d:14.4f}")
print(f"real data{'':13s} {floors.mean():10.4f} {real_pr.precision:10.3f} {real_pr.recall:7.3f} {8:13d} of 8 "
      f"{ring.nearest_mean_distance(fresh).mean().item():14.4f}")

# %%
assert sw(fm_samples[20], fresh) < 3 * floors.mean()
assert panel[5][0] < band and panel[5][2] < panel[20][2] - 0.1
print("flow matching, 20 Euler steps: within 3x the real-vs-real level; 5 steps: a sliced distance inside the "
      "real-vs-real band, yet more than 0.1 of recall lost, which the sliced distance alone does not show")
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, (n, pts) in zip(axes, fm_samples.items()):
    dc.viz.plot_points(pts, ax=ax, title=f"flow matching, {n} Euler steps")
plt.show()

# %% [markdown]
# With five Euler steps the sliced Wasserstein distance stays inside the real-vs-real band,
# while recall drops: the modes come out wider and misshapen (the distance column above, and
# the figure), so part of the real spread has no generated neighbour. A sliced distance measures mass moved along random
# lines, and moving mass a little within or between nearby modes costs little; it cannot
# say *what* is wrong. Precision and recall (lesson 10) and the core test of lesson 11 can,
# which is why they sit beside it here.

# %% [markdown]
# ### How the error falls with the steps, on the exact velocity
#
# The exact velocity of a Gaussian mixture follows from its posterior: given component $k$,
# $(x_0, x_t)$ is jointly Gaussian, and `flow.mixture_velocity` averages the components'
# $\mathbb{E}[\epsilon - x_0 \mid x_t, k]$ with their posterior weights. With it, the only error is the
# solver's: the mean distance to a 200-step Heun solution, for Euler (one evaluation per step)
# and Heun (two), falls like $n^{-1}$ and $n^{-2}$ once the steps are fine enough.

# %%
oracle_velocity = flow.VelocityOracle(ring)
x_1 = x_T[:500]
reference = flow.flow_sample(oracle_velocity, x_1, steps=200, method="heun")
evals = (20, 40, 80, 160)
print(f"{'evaluations':12s}" + "".join(f"{n:>10d}" for n in evals))
errors = {}
for method, per_step in (("euler", 1), ("heun", 2)):
    errors[method] = [(flow.flow_sample(oracle_velocity, x_1, steps=n // per_step, method=method) - reference)
                      .norm(dim=1).mean().item() for n in evals]
    print(f"{method:12s}" + "".join(f"{e:10.1e}" for e in errors[method]))
order = {m: math.log(e[1] / e[3]) / math.log(4) for m, e in errors.items()}
assert abs(order["euler"] - 1) < 0.3 and abs(order["heun"] - 2) < 0.3
print(f"measured orders between 40 and 160 evaluations: Euler {order['euler']:.2f}, Heun {order['heun']:.2f}")

# %% [markdown]
# ### The same path as DDPM, with another clock and scale
#
# Divide DDPM's $x_s = \sqrt{\bar\alpha_s}\,x_0 + \sqrt{1-\bar\alpha_s}\,\epsilon$ by
# $\sqrt{\bar\alpha_s} + \sqrt{1-\bar\alpha_s}$:
# the weights of $x_0$ and $\epsilon$ now sum to one, so it *is* a point of the straight path,
# at $t = \sqrt{1-\bar\alpha_s}/(\sqrt{\bar\alpha_s}+\sqrt{1-\bar\alpha_s})$. Both paths pass through the same
# signal-to-noise ratios, $\big(\tfrac{1-t}{t}\big)^2 = \tfrac{\bar\alpha_s}{1-\bar\alpha_s}$; the straight path just
# reaches pure noise ($t = 1$) where DDPM stops at $\bar\alpha_{T} \approx 4\cdot 10^{-5}$. The differences
# that remain are what the network is asked for (a velocity), how training weighs the levels
# ($t$ uniform against $s$ uniform), and which clock the solver steps in.

# %%
x0_pts = ring.sample(8, torch.Generator().manual_seed(SEED + 10))
eps_pts = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED + 11))
print(f"{'DDPM step':>9s} {'abar':>9s} {'SNR':>10s} {'flow t':>7s} {'SNR(t)':>10s} {'scale':>6s}")
for s in (0, 99, 299, 499, 699, 999):
    a = schedule.alpha_bars[s].item()
    t_fm = flow.flow_time(a)
    x_s, _ = dc.q_sample(schedule, x0_pts, s, noise=eps_pts)
    gap = (flow.ddpm_to_flow(x_s, a) - flow.flow_path(x0_pts, eps_pts, t_fm)).abs().max().item()
    assert gap < 1e-12
    print(f"{s:9d} {a:9.6f} {a / (1 - a):10.4g} {t_fm:7.4f} {((1 - t_fm) / t_fm) ** 2:10.4g} "
          f"{1 / (math.sqrt(a) + math.sqrt(1 - a)):6.3f}")
print("each rescaled DDPM sample equals the straight-path point at the matching t (< 1e-12)")

# %% [markdown]
# The weighting differs visibly: uniform $t$ puts half of the training at a signal-to-noise
# ratio above 1 ($t < 0.5$), where DDPM's uniform steps spend 259 of their 1000.
#
# ### The same loss, with another weighting
#
# Read a noise prediction $\hat\epsilon$ at a point $x_t = (1-t)x_0 + t\epsilon$ of the straight
# path as a velocity (the table of section 1): $\hat x_0 = (x_t - t\hat\epsilon)/(1-t)$ and
# $\hat u = \hat\epsilon - \hat x_0 = (\hat\epsilon - x_t)/(1-t)$. The true velocity is the same
# expression with $\epsilon$, so on the same $x_t$
#
# $$u - \hat u = \frac{\epsilon - \hat\epsilon}{1-t}, \qquad
#   \lVert u - \hat u\rVert^2 = \frac{\lVert\epsilon - \hat\epsilon\rVert^2}{(1-t)^2}:$$
#
# the flow-matching loss *is* the noise-prediction loss, weighted by $1/(1-t)^2$ (and with $t$
# uniform where DDPM draws its steps uniformly). Checked on random numbers, and the weight's
# share at high noise computed on DDPM's range of flow times:

# %%
g_id = torch.Generator().manual_seed(SEED + 15)
x0_id, eps_id, eps_hat_id = (torch.randn(64, 2, dtype=torch.float64, generator=g_id) for _ in range(3))
t_id = torch.rand(64, 1, dtype=torch.float64, generator=g_id) * 0.98
x_t_id = (1 - t_id) * x0_id + t_id * eps_id
u_true, u_hat = eps_id - x0_id, P.convert(eps_hat_id, "eps", "velocity", x_t_id, *P.linear(t_id))
assert (u_true - u_hat - (eps_id - eps_hat_id) / (1 - t_id)).abs().max() < 1e-12
t_max = flow.flow_time(schedule.alpha_bars[-1].item())  # DDPM's noisiest step on the flow clock


def weight_mass(a, b):
    return 1 / (1 - b) - 1 / (1 - a)  # integral of (1 - t)^-2 from a to b


high_share = weight_mass(0.9, t_max) / weight_mass(0.0, t_max)
ddpm_high = (flow.flow_time(schedule.alpha_bars) > 0.9).double().mean().item()
print(f"u - u_hat = (eps - eps_hat) / (1 - t) on the same x_t (float64, < 1e-12); t up to {t_max:.4f}")
print(f"share of flow matching's eps-weight at t > 0.9: {high_share:.1%}; share of DDPM's uniform steps there: "
      f"{ddpm_high:.1%}")

# %% [markdown]
# Flow matching spends almost all of its noise-prediction weight at the noisiest levels,
# where DDPM's uniform steps spend about a third of theirs. That is exactly where lesson 07 found that
# the ODE samplers need an accurate network: their first steps, at high noise, decide the
# mode and the rough shape, and no later step can correct them (the ancestral sampler's
# fresh noise can). Keep it in mind for the digits comparison below.
#
# ### Trajectories: DDIM and flow matching in the same coordinates, and reflow
#
# Since both are the same ODE, draw them in the same coordinates: DDIM's states (oracle noise
# predictor, 20 steps) rescaled to the straight path, $x^{\text{FM}} = x/(\sqrt{\bar\alpha}+
# \sqrt{1-\bar\alpha})$, and the trained flow-matching network's Euler states (20 steps),
# from the same 40 starting points. Under them, the learned velocity field at $t = 0.5$.
#
# **Reflow** (Liu et al. 2023, rectified flow) is what makes the paths straighter: draw pairs
# $(x_1, x_0)$ by running the trained ODE from noise $x_1$ to its end $x_0$, and train a new
# network by flow matching on *these* pairs, lines from each $x_1$ to its own $x_0$, instead of
# independent draws. The lines no longer cross much, so their average velocity is nearly
# constant along each path. One round here: 8,192 pairs from the network above (Heun, 10
# steps), a fresh MLP, the same training budget. Straightness is measured as path length
# over the distance from start to end (1 for a straight line).

# %%
def trajectory(step_fn, x, times):
    states = [x]
    for t_now, t_next in zip(times[:-1], times[1:]):
        x = step_fn(x, t_now, t_next)
        states.append(x)
    return torch.stack(states)  # (steps + 1, n, 2)


def net_step(net):
    def step(x, t_now, t_next):
        with torch.no_grad():
            u = net(x.float(), torch.full((x.shape[0],), t_now * flow.TIME_SCALE)).double()
        return flow.flow_euler_step(x, t_now, t_next, u)
    return step


start40 = x_T[:40]
ddim_ts = samplers.timesteps(schedule, 20, "linspace").tolist()
z_ddim = [start40]
for s_now, s_next in zip(ddim_ts, ddim_ts[1:] + [-1]):
    x = z_ddim[-1]
    a = schedule.alpha_bars[s_now]
    eps = oracle_eps(x, torch.full((40,), s_now))
    x0_hat = (x - (1 - a).sqrt() * eps) / a.sqrt()
    a_next = schedule.alpha_bars[s_next] if s_next >= 0 else torch.tensor(1.0, dtype=torch.float64)
    z_ddim.append(a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps)
ddim_path = torch.stack([flow.ddpm_to_flow(x, (schedule.alpha_bars[s] if s >= 0 else torch.tensor(1.0)).item())
                         for x, s in zip(z_ddim, ddim_ts + [-1])])
fm_times = flow.flow_timesteps(20).tolist()
fm_path = trajectory(net_step(fm.final_model), start40, fm_times)  # from t = 1, as flow_sample starts

pairs_x1 = torch.randn(8192, 2, generator=torch.Generator().manual_seed(SEED + 16))
with torch.no_grad():
    pairs_x0 = flow.flow_sample(fm.final_model, pairs_x1, steps=10, method="heun")
torch.manual_seed(SEED + 1)
reflow_net = MLPDenoiser(MLPConfig(dim=2, hidden=128, depth=3))
opt = torch.optim.Adam(reflow_net.parameters(), lr=2e-3)
g_reflow = torch.Generator().manual_seed(SEED + 17)
for _ in range(TRAIN_STEPS):
    idx = torch.randint(0, 8192, (256,), generator=g_reflow)
    loss = flow.flow_matching_loss(reflow_net, pairs_x0[idx], t=torch.rand(256, generator=g_reflow),
                                   noise=pairs_x1[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
reflow_path = trajectory(net_step(reflow_net), fm_path[0], fm_times)


def straightness(path):
    """Total path length over total start-to-end distance of the (steps + 1, n, 2) paths."""
    return ((path[1:] - path[:-1]).norm(dim=-1).sum() / (path[-1] - path[0]).norm(dim=-1).sum()).item()


one_step = {name: flow.flow_sample(net, x_T.float(), steps=1).double()
            for name, net in (("flow matching", fm.final_model), ("after reflow", reflow_net))}

fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), sharex=True, sharey=True)
for ax, (name, path) in zip(axes, (("DDIM (exact), flow coordinates", ddim_path),
                                   ("flow matching, Euler 20", fm_path), ("after one reflow round", reflow_path))):
    ax.plot(path[:, :, 0].numpy(), path[:, :, 1].numpy(), lw=0.8, alpha=0.7)
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=6, c="k", zorder=3)
    ax.set_title(f"{name}\nlength / chord {straightness(path):.3f}", fontsize=9)
grid_1d = torch.linspace(-1.6, 1.6, 15)
gx, gy = torch.meshgrid(grid_1d, grid_1d, indexing="xy")
field_x = torch.stack([gx.flatten(), gy.flatten()], 1)
with torch.no_grad():
    field = fm.final_model(field_x, torch.full((field_x.shape[0],), 0.5 * flow.TIME_SCALE))
axes[3].quiver(field_x[:, 0], field_x[:, 1], -field[:, 0], -field[:, 1], angles="xy", color="tab:blue")
axes[3].set_title("learned -u(x, t = 0.5): where points move as t falls", fontsize=9)
for ax in axes:
    ax.set_aspect("equal")
axes[0].set_xlim(-2.2, 2.2)
axes[0].set_ylim(-2.2, 2.2)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
print("path length / chord (1 = straight): " + ", ".join(
    f"{n} {straightness(p):.3f}" for n, p in (("DDIM", ddim_path), ("flow matching", fm_path),
                                              ("after reflow", reflow_path))))
print("one Euler step, sliced W2 to data: " + ", ".join(f"{n} {sw(x, fresh):.4f}" for n, x in one_step.items()))

# %%
assert abs(straightness(ddim_path) / straightness(fm_path) - 1) < 0.1
assert straightness(reflow_path) < 1 + 0.5 * (straightness(fm_path) - 1)
assert sw(one_step["after reflow"], fresh) < 0.5 * sw(one_step["flow matching"], fresh)
print("DDIM and flow matching draw paths equally far from straight in the same coordinates (length / chord "
      "within 10%): flow matching is not straighter; one reflow round removes more than half of the excess "
      "length, and its one-step samples land less than half as far from the data")

# %% [markdown]
# The paths of flow matching bend like DDIM's, because they *are* DDIM's (section 3): the
# straight lines are the training paths between independent pairs, and the ODE follows their
# average, which curves. Only reflow, by training on the ODE's own pairs, straightens the
# paths, and with them few-step sampling improves.
#
# ### Digits
#
# The shipped model `digits-flow` is the course U-Net of lessons 04-07 (same configuration)
# trained by flow matching: 450 steps of 64 digits (`python -m ddpm_course.flow`, its
# record says how; 29 minutes of wall time on a busy shared machine, an estimated 5 on a quiet
# core). Sampled here with Euler and Heun on its ODE and scored
# by the Frechet distance of lesson 10 (ratio to the real-vs-real floor: 1 is as good as
# real digits).

# %%
digits_flow = dc.pretrained("digits-flow", device=device)
record = digits_flow.record
print(f"digits-flow: {record['steps']} steps of batch {record['batch_size']}, lr {record['lr']}, "
      f"EMA {record['ema_decay']}; made by: {record['command']}")
x_1_digits = torch.randn(N_DIGITS, 1, 16, 16, generator=torch.Generator().manual_seed(SEED)).to(device)
digit_runs = {
    "Euler, 10 evals": lambda: flow.flow_sample(digits_flow.model, x_1_digits, steps=10),
    "Euler, 20 evals": lambda: flow.flow_sample(digits_flow.model, x_1_digits, steps=20),
    "Heun, 20 evals": lambda: flow.flow_sample(digits_flow.model, x_1_digits, steps=10, method="heun"),
}
digit_samples = {name: run().clamp(-1, 1).cpu() for name, run in digit_runs.items()}
fd = {name: dc.metrics.digits_fd(x, generator=torch.Generator().manual_seed(0)) for name, x in digit_samples.items()}
fig, axes = plt.subplots(1, len(digit_samples), figsize=(2.8 * len(digit_samples), 3))
for ax, (name, x) in zip(axes, digit_samples.items()):
    dc.viz.show_images(x[:36], nrow=6, ax=ax, title=name)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
for name, r in fd.items():
    print(f"{name:16s} Frechet distance {r.fd:6.2f}   ratio to the real-vs-real floor {r.ratio:5.2f}")

# %%
assert fd["Euler, 20 evals"].ratio < 2.0
assert fd["Heun, 20 evals"].fd < fd["Euler, 10 evals"].fd
print("digits-flow: Euler with 20 evaluations within 2x the real-vs-real floor; Heun beats Euler-10")

# %% [markdown]
# **Against DDPM at the same training budget.** `python benchmarks/flow_vs_ddpm.py` trains a
# DDPM twin of `digits-flow` (same U-Net, initial weights, data, optimiser, 450 steps of 64)
# with `L_simple` and scores both with every sampler from the same $x_T$, 256 digits per row
# (README, "Flow matching against DDPM"). One run on a shared 2-core machine:
#
# | sampler | 4 evaluations | 10 | 20 | 50 |
# |---------|--------------:|---:|---:|---:|
# | flow matching, Euler | 56.0 (4.49) | 24.2 (1.94) | 18.8 (1.51) | 16.8 (1.34) |
# | flow matching, Heun (half as many steps) | 58.9 (4.72) | 17.2 (1.38) | 15.9 (1.28) | 16.1 (1.29) |
# | DDPM twin, DDIM | 117.5 (9.42) | 53.4 (4.28) | 54.7 (4.38) | 56.4 (4.52) |
# | DDPM twin, DPM-Solver++ 2M | 244.5 (19.60) | 71.0 (5.69) | 62.0 (4.97) | 60.3 (4.83) |
# | DDPM twin, DPM-Solver++ 2M, log-SNR levels | 976.4 (78.26) | 63.9 (5.12) | 61.3 (4.91) | 59.8 (4.79), 49 evals |
# | DDPM twin, ancestral (`--ddpm-1000`, the earlier run) | | | | 40.4 (3.24) at 1000 |
#
# Frechet distance (ratio to the real-vs-real floor, 12.48 +- 5.35 at 256 digits).
#
# At this small budget (28,800 images seen) the flow-matching model (Heun) is within 1.3-1.4x of
# the floor from 10 to 50 evaluations, while its DDPM twin stays near 4.5x with every ODE sampler,
# does not improve from 10 to 50 evaluations, and reaches 3.2x with 1000 ancestral steps: the
# network, more than the solver, is the limit there. The shipped `digits` DDPM, trained on 13
# times as many images, reaches 1.2x with DPM-Solver++ at 20 evaluations.
#
# The weighting identity above says that the two *losses* differ only in weighting. The two
# *networks* differ in what they output, and with it in how their errors reach the ODE: a
# velocity network's error enters each Euler step as it is, a noise predictor's multiplied by
# $1/(1-t)$ (up to 160 at DDPM's noisiest step). Which matters: target, weighting or clock?
# `python benchmarks/fm_ablation.py` trains this lesson's ring MLP five ways, changing one at
# a time (same initial weights, data, Adam, 1,500 steps of 256), and samples all with the same
# Euler steps at evenly spaced flow times from the same $x_T$ (for a noise predictor that is
# DDIM at those times). Measured on a busy machine (167 s for the five):
#
# | model | Euler steps | sliced W2 | precision | recall | modes reproduced |
# |---|---:|---:|---:|---:|---:|
# | real data (another 1,000 points) | - | 0.0649 | 0.972 | 0.968 | 8 |
# | flow matching: velocity, $1/(1-t)^2$, t uniform | 5 / 20 | 0.0869 / 0.0777 | 0.856 / 0.898 | 0.763 / 0.942 | 8 / 8 |
# | velocity target, eps weighting, t uniform | 5 / 20 | 0.0888 / 0.0755 | 0.870 / 0.918 | 0.726 / 0.939 | 6 / 6 |
# | eps target, $1/(1-t)^2$ weighting, t uniform | 5 / 20 | 0.9021 / 0.3943 | 0.261 / 0.270 | 0.744 / 0.856 | 0 / 0 |
# | eps target, eps weighting, t uniform | 5 / 20 | 0.5478 / 0.3241 | 0.861 / 0.855 | 0.838 / 0.764 | 2 / 2 |
# | eps target, eps weighting, DDPM clock ($L_\text{simple}$) | 5 / 20 | 0.3148 / 0.1692 | 0.750 / 0.789 | 0.589 / 0.831 | 3 / 3 |
#
# On the ring the **target** decides: both velocity networks land near the data with either
# weighting, and all three noise predictors stay far from it whatever their weighting or
# clock. The **weighting** comes second (the velocity network with the noise weighting
# reproduces 6 modes, flow matching's 8); with a noise target, flow matching's weighting is
# the worst of all: the same objective as flow matching, but with weights up to 25,000 on a
# network whose output must then be divided by $1 - t$, its training is badly conditioned.
# The **clock** matters among the noise predictors (DDPM's uniform steps beat uniform $t$).
#
# **The same ablation on digits.** `python benchmarks/fm_ablation_digits.py` trains the three
# missing variants at the budget of the table above (same U-Net, initial weights, data, AdamW,
# lr schedule, EMA, 450 steps of 64, and the very batches, t and noise of `digits-flow`), all
# on t uniform and fed the straight-path point and 999 t; flow matching is `digits-flow` and the
# DDPM-clock row is the DDPM twin. All five are sampled as on the ring (Euler at evenly spaced
# flow times from $t_\text{max}$, DDIM at those times for a noise predictor), 256 digits from
# each of three $x_T$ draws, the same for every model. One run on a busy 2-core Intel Xeon, one
# thread (524 s training the three, 699 s in all):
#
# | model | 10 Euler steps | 20 Euler steps |
# |---|---:|---:|
# | flow matching: velocity, $1/(1-t)^2$, t uniform (`digits-flow`) | 25.3 [24.3, 26.1] (2.03) | 19.7 [18.8, 20.8] (1.58) |
# | velocity target, eps weighting, t uniform | 18.3 [17.7, 19.3] (1.47) | 18.2 [17.6, 19.2] (1.46) |
# | eps target, $1/(1-t)^2$ weighting, t uniform | 227.6 [224.1, 232.1] (18.25) | 182.9 [179.5, 186.1] (14.66) |
# | eps target, eps weighting, t uniform | 421.1 [408.5, 428.2] (33.75) | 284.2 [269.9, 294.9] (22.78) |
# | eps target, eps weighting, DDPM clock (the DDPM twin, $L_\text{simple}$) | 201.3 [190.5, 217.7] (16.14) | 150.6 [141.2, 165.6] (12.07) |
#
# Frechet distance, mean [lowest, highest] over the three draws (mean ratio to the
# real-vs-real floor, 12.48 +- 5.35 at 256 digits).
#
# On digits too the **target** decides, by far more than the noise: both velocity networks
# are within 1.5-2x of the floor, all three noise predictors 12-34x from it. The rest does not
# agree with the ring. **Weighting**: the velocity network with the noise weighting is no
# worse than flow matching (better at 10 steps, where the ranges do not overlap; within them
# at 20), where on the ring it lost two modes; and among noise predictors flow matching's
# weighting beats the unit one (183 against 284 at 20 steps), where on the ring it was the
# worst. The **clock** agrees with the ring: DDPM's steps beat uniform t for a noise predictor
# (151 against 284), though that row also differs in what the network sees (DDPM's $x_s$ and
# step, not the straight-path point and 999 t). The spread is over $x_T$ only: each model is
# one training seed, so differences of a few units between the velocity rows say little.
# The twin scores 53-55 in the table above because its DDIM follows diffusers' default steps,
# which start at step 900 and skip the noisiest tenth; here every model starts at step 999
# (the same twin sampled here at those default times reproduces `ddim_sample`), so the noise
# predictors' failure sits at the noisiest end. That points the same way as the ring: the
# twin's noise predictions have the right *size* at high noise (`losses.eps_scale` 0.996 at
# t = 999), and size is not the accuracy that an ODE sampler needs there, where $1/(1-t)$
# amplifies every error (lesson 07); the ancestral sampler, which can correct early errors
# with fresh noise, is the one that helps the twin. Read the digits numbers with lesson 10's
# caution: one Frechet distance from 256 digits varies by tens of percent between draws.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Reference answers
# are in `solutions/12_score_and_flow.py`.
#
# **1. A noise prediction read as a score.** `eps` is a batch (B, ...) of noise predictions at
# the code's 0-based DDPM steps `t` (B,); return the score they stand for.

# %%
def my_eps_to_score(eps, t, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("12.eps_to_score", my_eps_to_score)

# %% [markdown]
# **2. A noise prediction read as a velocity.** On the straight path $x_t = (1-t)x_0 + t\epsilon$,
# a network predicted the noise `eps` at the points `x_t` (B, ...) and times `t` (B,) in (0, 1).
# Return the velocity $u = \epsilon - x_0$ it stands for.

# %%
def my_eps_to_velocity(x_t, eps, t):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("12.eps_to_velocity", my_eps_to_velocity)

# %% [markdown]
# **3. The flow-matching loss.** Given a network `model(x, s)` that takes the course's step
# scale (feed it $s = 999\,t$, `flow.TIME_SCALE`), a batch of data `x0` (B, ...), times `t` (B,)
# in [0, 1] and noise `noise` (the shape of `x0`), return the loss of section 4 as a 0-dim
# tensor: the mean over the batch and every coordinate of $(\epsilon - x_0 - u_\theta(x_t, 999t))^2$
# on the straight path. (With it, training is `train.fit` with an objective whose `loss` calls
# yours, which is all `flow.FlowMatching` is.)

# %%
def my_flow_matching_loss(model, x0, t, noise):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("12.flow_matching_loss", my_flow_matching_loss)

# %% [markdown]
# **4. A number.** At which time $t$ of the straight path is the signal-to-noise ratio the same
# as at the code's DDPM step 500 of the linear schedule?

# %%
my_flow_time = None  # your number here

# %%
dc.exercises.check("12.flow_time", my_flow_time)
