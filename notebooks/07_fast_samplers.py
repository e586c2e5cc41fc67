# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/07_fast_samplers.ipynb)
#
# # 07 · Faster samplers: DDIM, Euler and DPM-Solver++
#
# DDPM needs one network evaluation per training step: 1000 of them per sample. This lesson
# gets good samples from the *same* trained network in 10 to 50 evaluations. DDIM shows why
# steps can be skipped at all; the probability-flow ODE turns sampling into solving an
# ordinary differential equation, which Euler's method does at first order and DPM-Solver++
# at second order. Each sampler is written by hand in a few lines and checked against the
# package. Then we measure, on the exact Gaussian-mixture oracle where the right answer is
# known, how the error falls with the number of evaluations, see on digits why an ODE sampler
# needs a network that is accurate at the highest noise levels, and check agreement with the
# `diffusers` library. An optional deep dive at the end finds out why the popular default
# setting of DPM-Solver++ squeezes sharp modes.
#
# **Steps.** As in lesson 06, every $t$ in code, printouts, plots *and in the prose* of this
# lesson is the code's 0-based step: $t = 999$ is pure noise, $t = 0$ the last level before the
# data, and "$t' = -1$" means the data itself.

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
# Parameters: points per oracle run and the step counts compared. Every check states its
# tolerance in Monte Carlo standard errors or as a ratio, so it holds at any size.

# %%
N_POINTS = 2000
STEPS = [10, 20, 50, 100]
N_DIGITS = 256  # digits per sampler for the Frechet distances
SEED = 0

# %%
# NBVAL_IGNORE_OUTPUT
import math

import matplotlib.pyplot as plt
import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.losses import eps_scale
from ddpm_course.oracle import GaussianMixture, ring_mixture

device = dc.setup(seed=SEED)
if device.type == "cpu":
    # On a CPU, this lesson's tensors are small (2-D points, batches of 16x16 digits) and
    # splitting each operation across threads costs more than it saves. A GPU is not affected.
    torch.set_num_threads(1)

# %% [markdown]
# ## DDIM: why steps can be skipped
#
# Training only ever used the jumps $q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\mathbf{I})$,
# never the one-step chain. Song, Meng and Ermon (2021, "Denoising Diffusion Implicit Models",
# DDIM) noticed that many processes share these
# marginals. For any two levels $t' < t$ (not necessarily neighbours) and any
# $s \in [0, \sqrt{1-\bar\alpha_{t'}}]$, the kernel
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,x_0 + \sqrt{1-\bar\alpha_{t'}-s^2}\;\epsilon + s\,z,
# \qquad \epsilon = \frac{x_t - \sqrt{\bar\alpha_t}\,x_0}{\sqrt{1-\bar\alpha_t}},\quad z \sim \mathcal{N}(0, \mathbf{I}),$$
#
# maps $x_t \sim q(x_t \mid x_0)$ to $x_{t'} \sim q(x_{t'} \mid x_0)$: the two noise terms are
# independent with variances adding up to $1-\bar\alpha_{t'}$. So a network trained for DDPM
# can walk down *any* decreasing list of levels, replacing $x_0$ and $\epsilon$ by its guesses
# $\hat x_0$ and $\epsilon_\theta$. DDIM writes $s = \eta\,\tilde\sigma$ with
# $\tilde\sigma^2 = \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\big(1-\frac{\bar\alpha_t}{\bar\alpha_{t'}}\big)$:
# $\eta = 0$ is deterministic, $\eta = 1$ over consecutive steps is DDPM with the posterior
# variance. First the marginal claim, by Monte Carlo on scalars:

# %%
schedule = dc.linear_schedule()
gen = torch.Generator().manual_seed(SEED)
x0, t, t_prev, n = 0.7, 800, 300, 400_000
abar, abar_prev = schedule.alpha_bars[t].item(), schedule.alpha_bars[t_prev].item()
x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * torch.randn(n, dtype=torch.float64, generator=gen)
eps = (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
for eta in (0.0, 0.5, 1.0):
    s2 = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    z = torch.randn(n, dtype=torch.float64, generator=gen)
    x_prev = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev - s2) * eps + math.sqrt(s2) * z
    mean_err = abs(x_prev.mean().item() - math.sqrt(abar_prev) * x0) / math.sqrt((1 - abar_prev) / n)
    var_err = abs(x_prev.var().item() - (1 - abar_prev)) / ((1 - abar_prev) * math.sqrt(2 / n))
    assert mean_err < 4 and var_err < 4
print("for eta in 0, 0.5, 1: the DDIM kernel lands on q(x_t' | x_0) (mean and variance within 4 standard errors)")

# %% [markdown]
# The step, by hand, against the package; and $\eta = 1$ over all 1000 steps against DDPM with
# $\sigma_t^2 = \tilde\beta_t$ (same seed, so the same noise in the same order). The model is
# the exact noise predictor of a ring of 8 Gaussians (std 0.1), as in lesson 06.

# %%
mixture = ring_mixture(k=8, radius=1.0, std=0.1)
oracle = mixture.as_model(schedule)


def ddim_step_by_hand(x_t, t, t_prev, eps, eta, z):
    abar = schedule.alpha_bars[t]
    abar_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    s2 = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    return abar_prev.sqrt() * x0_hat + (1 - abar_prev - s2).sqrt() * eps + s2.sqrt() * z


x = torch.randn(256, 2, dtype=torch.float64, generator=gen)
z = torch.randn(256, 2, dtype=torch.float64, generator=gen)
e = oracle(x, torch.full((256,), 600))
for eta in (0.0, 1.0):
    mine = ddim_step_by_hand(x, 600, 550, e, eta, z)
    package = samplers.ddim_step(schedule, x, 600, e, z, t_prev=550, eta=eta).x_prev
    assert torch.allclose(mine, package, atol=1e-12)

x_T = torch.randn(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
ddim_all = samplers.ddim_sample(oracle, schedule, x_T, steps=1000, eta=1.0, generator=torch.Generator().manual_seed(2))
ddpm = samplers.ddpm_sample(oracle, schedule, x_T, generator=torch.Generator().manual_seed(2), variance="posterior")
assert (ddim_all - ddpm).abs().max().item() < 1e-9
print("DDIM step by hand = package; DDIM(eta=1, 1000 steps) = DDPM(posterior), up to float64 round-off (< 1e-9)")
assert torch.allclose(ddim_all, ddpm, atol=1e-9)

# %% [markdown]
# ### Which levels? Timestep spacings
#
# A sampler with `steps` evaluations needs a decreasing list of levels. The libraries use a few
# conventions (diffusers' names): **leading** $k \cdot \lfloor T/\text{steps} \rfloor$,
# **trailing** (counting down from $T-1$), **linspace** (evenly from $T-1$ to 0), plus two
# that are even in noise level rather than in $t$: **logsnr** (even in $\log \mathrm{SNR}$) and
# **karras** (Karras et al. 2022's ramp in $\sigma^{1/7}$). Keep an eye on two things: whether
# the list starts at the pure-noise end $t = T-1$, and how many levels sit at low noise.

# %%
for spacing in samplers.SPACINGS:
    ts = samplers.timesteps(schedule, 10, spacing).tolist()
    print(f"{spacing:9s} {ts}")
print(f"{'dpm':9s} {samplers.dpm_solver_timesteps(schedule, 10).tolist()}  (diffusers' DPM-Solver default: 11 points, t=0 dropped)")

# %% [markdown]
# The **leading** list starts at $t = 900$, yet the sampler feeds it $x_T \sim \mathcal{N}(0, \mathbf{I})$, which
# stands for the state at $t = 999$. That is an approximation, and a small one here: under the
# linear schedule $q(x_{900} \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_{900}}\,x_0, (1-\bar\alpha_{900})\mathbf{I})$ still
# carries a signal of amplitude $\sqrt{\bar\alpha_{900}}$, under 2% of the image, next to 0.6% at $t = 999$
# (lesson 03). The first evaluation at $t = 900$ therefore sees almost the input it was trained on.
# With fewer steps the gap grows (5 leading steps start at $t = 800$); **trailing** and
# **linspace** start at $t = 999$ and avoid it, which is one reason newer libraries prefer them
# (Lin et al., 2024).

# %%
for steps in (10, 5):
    first = int(samplers.timesteps(schedule, steps, "leading")[0])
    print(f"leading, {steps:2d} steps: first level t = {first}, signal left sqrt(alpha_bar) = "
          f"{schedule.alpha_bars[first].sqrt().item():.4f} (at t = 999: {schedule.alpha_bars[-1].sqrt().item():.4f})")

# %% [markdown]
# ## The probability-flow ODE and Euler's method
#
# Divide the jump by $\sqrt{\bar\alpha_t}$: $z_t = x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma_t\,\epsilon$ with
# $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$, pure data plus noise of size $\sigma$ (the
# "variance exploding" view). Song, Sohl-Dickstein, Kingma, Kumar, Ermon and Poole (2021,
# "Score-Based Generative Modeling through Stochastic Differential Equations"; a different paper
# from the DDIM one) show that the deterministic flow
#
# $$\frac{dz}{d\sigma} = \epsilon^*(z, \sigma) = \mathbb{E}[\epsilon \mid z]$$
#
# carries the distribution of $z$ at every noise level to the distribution at every other
# level (Karras et al. 2022 write it in this form). Sampling = integrating from
# $\sigma_{\max}$ down to $\sigma = 0$. Euler's method freezes the slope over a step:
# $z' = z + (\sigma' - \sigma)\,\epsilon_\theta$. Write $\hat x_0 = z - \sigma\epsilon_\theta$ and it
# becomes $z' = \hat x_0 + \sigma'\epsilon_\theta$, which is DDIM with $\eta = 0$: the same
# sampler, read as an ODE solver.

# %%
def euler_step_by_hand(x_t, t, t_prev, eps):
    abar = schedule.alpha_bars[t]
    abar_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    sigma, sigma_prev = ((1 - abar) / abar).sqrt(), ((1 - abar_prev) / abar_prev).sqrt()
    z = x_t / abar.sqrt()
    return (z + (sigma_prev - sigma) * eps) * abar_prev.sqrt()


assert torch.allclose(euler_step_by_hand(x, 600, 550, e), samplers.euler_step(schedule, x, 600, e, t_prev=550).x_prev, atol=1e-12)
euler = samplers.euler_sample(oracle, schedule, x_T, steps=20)
ddim0 = samplers.ddim_sample(oracle, schedule, x_T, steps=20, spacing="linspace")
assert (euler - ddim0).abs().max().item() < 1e-9
print("Euler step by hand = package; Euler = DDIM(eta=0) on the same 20 levels, up to float64 round-off (< 1e-9)")
assert torch.allclose(euler, ddim0, atol=1e-10)

# %% [markdown]
# ## DPM-Solver++ (2M): a second-order multistep solver
#
# Lu et al. (2022) integrate the same ODE in $\lambda = \log(\sqrt{\bar\alpha}/\sqrt{1-\bar\alpha})$
# (half the log-SNR) and in terms of the data prediction $\hat x_0$. With $\alpha = \sqrt{\bar\alpha}$,
# $s = \sqrt{1-\bar\alpha}$ and $h = \lambda' - \lambda$ the exact solution is
#
# $$x_{t'} = \frac{s'}{s}\,x_t + \alpha' \int_\lambda^{\lambda'} e^{-(\lambda'-\ell)}\,\hat x_0(\ell)\,d\ell .$$
#
# The linear part is solved exactly; only $\hat x_0(\ell)$ is approximated. Holding it
# constant gives $x_{t'} = \frac{s'}{s}x_t - \alpha'(e^{-h}-1)\hat x_0$ (DDIM again). The
# multistep "2M" method reuses the previous evaluation to make $\hat x_0$ linear in $\lambda$:
# $D = \hat x_0 + \frac{1}{2r}(\hat x_0 - \hat x_0^{\text{prev}})$ with $r = h_{\text{prev}}/h$, at no
# extra network cost.

# %%
def dpm2m_step_by_hand(x_t, t, t_prev, eps, t_last, x0_last):
    def lam(k):
        return 0.5 * (schedule.alpha_bars[k].log() - (1 - schedule.alpha_bars[k]).log())

    abar, abar_prev = schedule.alpha_bars[t], schedule.alpha_bars[t_prev]
    x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    h = lam(t_prev) - lam(t)
    r = (lam(t) - lam(t_last)) / h
    d = x0_hat + (x0_hat - x0_last) / (2 * r)
    return ((1 - abar_prev) / (1 - abar)).sqrt() * x_t - abar_prev.sqrt() * torch.expm1(-h) * d


x0_last = mixture.x0_mean(x, 650, schedule)
mine = dpm2m_step_by_hand(x, 600, 550, e, 650, x0_last)
package = samplers.dpm_solver_step(schedule, x, 600, e, t_prev=550, history=((650, x0_last),)).x_prev
assert torch.allclose(mine, package, atol=1e-12)
print("DPM-Solver++(2M) step by hand = package")

# %% [markdown]
# ## Error against network evaluations, on the exact oracle
#
# With the exact $\epsilon^*$ the only error left is the solver's. All ODE samplers started
# from the same $x_T$ aim at the same endpoint, the ODE's exact solution, which we approximate
# very closely with 999 DPM-Solver++ steps. The mean distance to it, against the number of
# evaluations on log-log axes, has slope $-p$ for a method of order $p$. To see the orders
# cleanly the first two curves use levels even in log-SNR; the last two are the
# diffusers-default settings.

# %%
n_path = 500
x_T = torch.randn(n_path, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED + 3))
reference = samplers.dpm_solver_sample(oracle, schedule, x_T, steps=999, spacing="logsnr")
path_steps = [10, 20, 50, 100, 200]
solvers = {
    "DDIM = Euler (logsnr levels)": lambda n: samplers.ddim_sample(oracle, schedule, x_T, steps=n, spacing="logsnr"),
    "DPM-Solver++ 2M (logsnr levels)": lambda n: samplers.dpm_solver_sample(oracle, schedule, x_T, steps=n, spacing="logsnr"),
    "Euler (diffusers default)": lambda n: samplers.euler_sample(oracle, schedule, x_T, steps=n),
    "DPM-Solver++ 2M (diffusers default)": lambda n: samplers.dpm_solver_sample(oracle, schedule, x_T, steps=n),
}
path_error = {name: [(run(n) - reference).norm(dim=1).mean().item() for n in path_steps] for name, run in solvers.items()}


def slope(errors, lo=1, hi=4):  # fitted between 20 and 200 steps
    return -math.log(errors[hi] / errors[lo]) / math.log(path_steps[hi] / path_steps[lo])


for name, errs in path_error.items():
    print(f"{name:36s} " + " ".join(f"{v:.1e}" for v in errs) + f"   order {slope(errs):.2f}")
assert 0.8 < slope(path_error["DDIM = Euler (logsnr levels)"]) < 1.2
assert 1.8 < slope(path_error["DPM-Solver++ 2M (logsnr levels)"]) < 2.2

fig, ax = plt.subplots(figsize=(5.5, 3.8))
for name, errs in path_error.items():
    ax.loglog(path_steps, errs, "o-", label=name)
ax.loglog(path_steps, [path_error["DDIM = Euler (logsnr levels)"][0] * 10 / n for n in path_steps], "k:", label="slope -1")
ax.loglog(path_steps, [path_error["DPM-Solver++ 2M (logsnr levels)"][0] * (10 / n) ** 2 for n in path_steps], "k--", label="slope -2")
ax.set_xlabel("network evaluations")
ax.set_ylabel("mean distance to the ODE solution")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# On even log-SNR levels Euler is first order and DPM-Solver++(2M) second order, as
# advertised: at 50 evaluations it is ten times closer. With diffusers' default levels the
# second-order method loses its order: its error falls roughly like $1/n$, no faster than
# Euler. The optional deep dive at the end of the lesson finds out why.
#
# First, though, the question a user cares about is the *distribution*, not one path:
# sliced Wasserstein distance to fresh data, next to what two independent real sets of the
# same size score (10 pairs), for each sampler with its default settings.

# %%
x_T = torch.randn(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED))
fresh = mixture.sample(N_POINTS, torch.Generator().manual_seed(SEED + 1))


def sw(a, b):
    return dc.metrics.sliced_wasserstein(a, b, n_projections=256, generator=torch.Generator().manual_seed(0))


real_vs_real = torch.tensor([
    sw(mixture.sample(N_POINTS, torch.Generator().manual_seed(100 + 2 * i)), mixture.sample(N_POINTS, torch.Generator().manual_seed(101 + 2 * i)))
    for i in range(10)
])
defaults = {
    "DDIM": lambda n: samplers.ddim_sample(oracle, schedule, x_T, steps=n),
    "Euler": lambda n: samplers.euler_sample(oracle, schedule, x_T, steps=n),
    "DPM-Solver++": lambda n: samplers.dpm_solver_sample(oracle, schedule, x_T, steps=n),
}
dist_error = {name: [sw(run(n), fresh) for n in STEPS] for name, run in defaults.items()}
print(f"real vs real: {real_vs_real.mean():.4f} +- {real_vs_real.std():.4f}")
print(f"{'sliced W2':13s}" + "".join(f"{n:>8d}" for n in STEPS))
for name, errs in dist_error.items():
    print(f"{name:13s}" + "".join(f"{v:8.4f}" for v in errs))
band = real_vs_real.mean() + 3 * real_vs_real.std()
assert all(errs[-1] < band for errs in dist_error.values())
assert all(errs[0] > errs[-1] for errs in dist_error.values())
print("every sampler reaches the real-vs-real level by 100 evaluations")

# %% [markdown]
# ## Digits with the shipped model
#
# Now a trained network. `N_DIGITS` digits from the shipped model with each sampler at 20
# evaluations, and DDIM at 50 as the reference, all from the same $x_T$. The score is the
# Frechet distance between classifier features of the samples and of held-out digits (lesson
# 10, on evaluation, shows what such a score can and cannot tell); the *floor* is what real
# training digits score against the same held-out set, so a ratio to the floor near 1 means
# "as good as real data". With a few hundred images one
# distance varies by tens of percent between draws, and the shared $x_T$ makes the
# comparisons between samplers tighter than that. A ratio a little below 1 is within that
# noise, not better than real data.

# %%
digits = dc.pretrained("digits", device=device)
x_T_digits = torch.randn(N_DIGITS, *digits.sample_shape, generator=torch.Generator().manual_seed(SEED)).to(device)
digit_runs = {
    "DDIM, 50": lambda: samplers.ddim_sample(digits.model, digits.schedule, x_T_digits, steps=50),
    "DDIM, 20": lambda: samplers.ddim_sample(digits.model, digits.schedule, x_T_digits, steps=20),
    "Euler, 20": lambda: samplers.euler_sample(digits.model, digits.schedule, x_T_digits, steps=20),
    "DPM-Solver++, 20": lambda: samplers.dpm_solver_sample(digits.model, digits.schedule, x_T_digits, steps=20),
    "DPM-Solver++ logsnr, 20": lambda: samplers.dpm_solver_sample(digits.model, digits.schedule, x_T_digits, steps=20, spacing="logsnr"),
}
digit_samples = {name: run().clamp(-1, 1).cpu() for name, run in digit_runs.items()}
fd = {name: dc.metrics.digits_fd(x, generator=torch.Generator().manual_seed(0)) for name, x in digit_samples.items()}

fig, axes = plt.subplots(1, len(digit_samples), figsize=(2.6 * len(digit_samples), 2.9))
for ax, (name, x) in zip(axes, digit_samples.items()):
    dc.viz.show_images(x[:36], nrow=6, ax=ax, title=name)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
for name, r in fd.items():
    print(f"{name:24s} Frechet distance {r.fd:7.2f}   ratio to the real-vs-real floor {r.ratio:5.2f}")

# %%
reference = fd["DDIM, 50"].fd
assert fd["DPM-Solver++, 20"].fd < 1.25 * reference
assert fd["DDIM, 20"].fd < 1.25 * reference
print("DPM-Solver++ and DDIM at 20 evaluations: Frechet distance within 25% of DDIM at 50")

# %% [markdown]
# With 20 to 50 evaluations the ODE samplers match or beat 1000 DDPM steps on this model:
# `python benchmarks/samplers.py --n-digits 512` scores DDPM-1000 at 11.10, DDIM-50 at 8.27
# and DPM-Solver++-20 at 8.18 (floor 6.64 at that size; the README has the whole table).
# That depends on the network being right where a deterministic sampler is most sensitive,
# as the next section shows.

# %% [markdown]
# ## A small error in the network: noise forgives, the ODE remembers
#
# Near $t = T$ the network's job looks trivial, $\epsilon \approx x_t$, but the samplers
# divide by $\sqrt{\bar\alpha_t}$: $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$,
# and $1/\sqrt{\bar\alpha_{T}} \approx 157$ here. A network whose $\hat\epsilon$ is a few
# percent too short there (lesson 05 shows how a fixed EMA decay makes one) puts $\hat x_0$
# far off. DDPM draws fresh noise at every step, so an early mistake is soon diluted; an ODE
# sampler carries it to the end.
#
# The size of the effect has a closed form. Take data $\mathcal{N}(0, s^2\mathbf{I})$, so
# $z = x_0 + \sigma\epsilon \sim \mathcal{N}(0, (s^2+\sigma^2)\mathbf{I})$ and
# $\epsilon^*(z) = \sigma z / (s^2 + \sigma^2)$, and a network that returns $c\,\epsilon^*$.
# The flow $dz/d\sigma = c\,\sigma z/(s^2+\sigma^2)$ gives $z \propto (s^2+\sigma^2)^{c/2}$,
# so from $x_T \sim \mathcal{N}(0, \mathbf{I})$ (that is, $z_T$ with standard deviation
# $\sqrt{1+\sigma_T^2}$) the samples end with standard deviation
#
# $$\frac{\operatorname{std}(x_0)}{s} = \sqrt{1+\sigma_T^2}\; s^{\,c-1}\,(s^2+\sigma_T^2)^{-c/2}
# \approx \Big(\frac{\sigma_T^2}{s^2}\Big)^{(1-c)/2},$$
#
# 1 for $c = 1$ and 29% too wide for $c = 0.965$, $s = 0.1$: the error is raised to a power
# set by the whole range of noise levels the flow crosses. Measured with the exact
# predictor, scaled, over all 1000 levels (so discretisation plays no part):

# %%
s_point, c_short = 0.1, 0.965
point = GaussianMixture(torch.ones(1), torch.zeros(1, 2), s_point**2 * torch.eye(2)[None])  # one Gaussian, std 0.1
exact = point.as_model(schedule)


def short(x, t):
    return c_short * exact(x, t)  # every prediction 3.5% too short


sigma2_T = ((1 - schedule.alpha_bars[-1]) / schedule.alpha_bars[-1]).item()
predicted = math.sqrt(1 + sigma2_T) * s_point ** (c_short - 1) * (s_point**2 + sigma2_T) ** (-c_short / 2)
x_T_point = torch.randn(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED))
spread = {}
for name, model in (("exact", exact), ("3.5% short", short)):
    ddpm = samplers.ddpm_sample(model, schedule, x_T_point, generator=torch.Generator().manual_seed(SEED + 1))
    ddim = samplers.ddim_sample(model, schedule, x_T_point, steps=1000)
    spread[name] = (ddpm.std().item() / s_point, ddim.std().item() / s_point)
    print(f"{name:10s}  std / s:  DDPM (1000 steps) {spread[name][0]:.2f}   deterministic DDIM (1000 steps) {spread[name][1]:.2f}")
print(f"closed form for the ODE with c = {c_short}: {predicted:.2f}")

# %%
se = 1 / math.sqrt(2 * 2 * N_POINTS)  # relative standard error of a std estimated from 2 x N_POINTS values
assert all(abs(r - 1) < 5 * se for r in spread["exact"])
assert abs(spread["3.5% short"][1] / predicted - 1) < 0.02 + 4 * se
assert spread["3.5% short"][0] < 1 + 0.3 * (predicted - 1)
print("exact eps: both samplers give the right spread; 3.5% short: the ODE lands on the closed form, "
      "DDPM keeps less than a third of that error")

# %% [markdown]
# So before trusting a fast sampler, check the network where it is most sensitive.
# `losses.eps_scale` gives $\lVert\hat\epsilon\rVert / \lVert\epsilon\rVert$ for a batch
# noised to one level; here for the shipped model on held-out digits at the highest noise
# levels. This is where the EMA pitfall of lesson 05 shows: an average taken with a fixed decay
# still holds a share of the zero-initialised output layer, so its $\hat\epsilon$ comes out that
# share too short at every level, and the closed form above turns a few percent into tens of
# percent of spread for an ODE sampler (DDPM, drawing fresh noise, is barely affected).

# %%
held_out = dc.digits(16, split="test").images.to(device)
norm_ratio = {t: eps_scale(digits.model, digits.schedule, held_out, t, generator=torch.Generator().manual_seed(t))
              for t in (999, 900, 600)}

# %%
# NBVAL_IGNORE_OUTPUT
print("  ".join(f"t = {t}: |eps_hat| / |eps| = {r:.4f}" for t, r in norm_ratio.items()))

# %%
assert all(abs(r - 1) < 0.01 for r in norm_ratio.values()), norm_ratio
print("the shipped model's noise predictions have the right size (within 1%) at high noise levels")

# %% [markdown]
# ## Agreement with diffusers
#
# The course's samplers are written from the papers; the `diffusers` library's schedulers are
# the implementation most people run. Fed the same model outputs they agree step by step
# (the test suite checks DDPM, DDIM, Euler and DPM-Solver++ for every spacing they support,
# in `tests/test_parity_diffusers.py`). Here is the 20-step DPM-Solver++ loop, both sides
# driven by the oracle on the ring, in float32 as diffusers computes:

# %%
from diffusers import DPMSolverMultistepScheduler

scheduler = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                        algorithm_type="dpmsolver++", solver_order=2)
scheduler.set_timesteps(20)
assert scheduler.timesteps.tolist() == samplers.dpm_solver_timesteps(schedule, 20).tolist()
start = torch.randn(500, 2, generator=torch.Generator().manual_seed(SEED))
x = start.clone()
for t in scheduler.timesteps:
    x = scheduler.step(oracle(x, t.expand(500)), t, x).prev_sample
ours = samplers.dpm_solver_sample(oracle, schedule, start, steps=20)
assert (x - ours).abs().max() < 1e-4
print("diffusers and dc.samplers agree to 1e-4 after 20 DPM-Solver++ steps in float32 (diffusers' float32 tables vs our float64 ones)")

# %% [markdown]
# ## Optional deep dive: why diffusers' default DPM-Solver++ squeezes sharp modes
#
# *This section is optional: the main path of the lesson ends above. It investigates one
# finding of the error plot, with the same tools, and its conclusion fits in one line: for
# sharp data pass `spacing="logsnr"`.*
#
# On a ring of *sharp* Gaussians, DPM-Solver++ with diffusers' default settings puts its
# samples too close to the mode centres. We measure the spread by the distance from each
# sample to the nearest mode centre, divided by the truth's (1 = right): its *median* (the
# typical sample) and its *mean* (which also counts stragglers left between modes), on rings of
# width 0.1, 0.05 and 0.02, for the default and for the candidate fixes:
#
# - *lower-order final steps*: take the last 3 steps at first order (`lower_order_final=3`);
# - *where the last evaluation sits*: keep $t = 0$ in the list (`drop_t0=False`, with the last
#   2 steps first order, since a second-order step into $t = 0$ over-shoots);
# - levels even in log-SNR (`spacing="logsnr"`) or Karras' levels (`spacing="karras"`).

# %%
settings = {
    "DDIM (diffusers default)": dict(fn=samplers.ddim_sample),
    "Euler (diffusers default)": dict(fn=samplers.euler_sample),
    "DPM++ (diffusers default)": dict(fn=samplers.dpm_solver_sample),
    "DPM++ lower_order_final=3": dict(fn=samplers.dpm_solver_sample, lower_order_final=3),
    "DPM++ keep t=0 (lof=2)": dict(fn=samplers.dpm_solver_sample, drop_t0=False, lower_order_final=2),
    "DPM++ karras": dict(fn=samplers.dpm_solver_sample, spacing="karras"),
    "DPM++ logsnr": dict(fn=samplers.dpm_solver_sample, spacing="logsnr"),
}


def run_setting(setting, model, x_T, steps):
    options = {k: v for k, v in setting.items() if k != "fn"}
    return setting["fn"](model, schedule, x_T, steps=steps, **options)


median, mean = {}, {}
for std in (0.1, 0.05, 0.02):
    ring = ring_mixture(8, 1.0, std)
    model = ring.as_model(schedule)
    truth = ring.nearest_mean_distance(ring.sample(20 * N_POINTS, torch.Generator().manual_seed(SEED + 2)))
    print(f"ring std {std}: median / mean ratio (1 = right)" + "".join(f"{n:>14d}" for n in STEPS))
    for name, setting in settings.items():
        d = [ring.nearest_mean_distance(run_setting(setting, model, x_T, n)) for n in STEPS]
        median[std, name] = [(v.median() / truth.median()).item() for v in d]
        mean[std, name] = [(v.mean() / truth.mean()).item() for v in d]
        print(f"  {name:34s}" + "".join(f"{a:8.3f} /{b:5.3f}" for a, b in zip(median[std, name], mean[std, name])))

# %% [markdown]
# Read the default row across: at 10 steps the samples are far too spread (coarse steps
# leave points between modes). At 20 steps the typical sample already sits 40% to 80% too
# close to its centre (median), while the mean still looks fine on the wider rings because a
# few stragglers between modes offset it; from 50 steps both agree, and on the sharpest ring
# the default is still far off at 100 steps. DDIM and Euler with their default lists err the
# same way, less. Lower-order final steps barely help; keeping $t = 0$ helps at 50 steps and
# more; levels even in log-SNR put the spread within a few percent of the truth from 20 steps
# on the two wider rings, and Karras' levels from 50. (On the sharpest ring the log-SNR and
# Karras settings stop near 0.89 of the truth rather than at 1: see the end of the section.) Why?
#
# #### Where the evaluations sit in noise level
#
# Plot the noise level $\sigma_t$ of every evaluation for 20 steps, next to the ring's width.
# Structure at the scale of one mode (width $s$) is decided while $\sigma$ is comparable to $s$.

# %%
def sigma_of(t):
    abar = schedule.alpha_bars[t]
    return ((1 - abar) / abar).sqrt()


grids = {
    "DPM++ default (linspace, t=0 dropped)": samplers.dpm_solver_timesteps(schedule, 20),
    "DDIM default (leading)": samplers.timesteps(schedule, 20, "leading"),
    "logsnr": samplers.timesteps(schedule, 20, "logsnr"),
    "karras": samplers.timesteps(schedule, 20, "karras"),
}
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, ts in grids.items():
    ax.semilogy(range(len(ts)), sigma_of(ts), "o-", ms=3, label=name)
for s in (0.1, 0.05, 0.02):
    ax.axhline(s, color="grey", lw=0.6, ls=":")
    ax.annotate(f"ring width {s}", (0, s), xytext=(0, 2), textcoords="offset points",
                ha="left", va="bottom", fontsize=7, color="grey")
ax.set_xlabel("evaluation")
ax.set_ylabel(r"$\sigma_t$ at the evaluation")
ax.legend(fontsize=7)
plt.show()
for name, ts in grids.items():
    below = int((sigma_of(ts) < 0.15).sum())
    print(f"{name:38s} last evaluation t={int(ts[-1]):3d} (sigma {sigma_of(ts[-1]).item():.3f}); evaluations with sigma < 0.15: {below}")

# %% [markdown]
# Linear-in-$t$ lists spend almost all their evaluations at high noise. With the default
# DPM-Solver++ list the *last* evaluation is at $t = 50$, $\sigma \approx 0.18$, wider than every
# ring here, and the final step jumps from there straight to $\sigma = 0$ by returning $\hat x_0$.
#
# #### What $\mathbb{E}[x_0 \mid x_t]$ does to the spread
#
# $\hat x_0 = \mathbb{E}[x_0 \mid x_t]$ is an *average* over every $x_0$ that could have produced
# $x_t$. For one Gaussian component $\mathcal{N}(\mu, s^2\mathbf{I})$ it is $\mu$ plus the
# deviation of $x_t/\sqrt{\bar\alpha_t}$ shrunk by $s^2/(s^2+\sigma_t^2)$. The deviation
# itself has size $\sqrt{s^2+\sigma_t^2}$, so the spread of $\hat x_0$ is the truth's times
# $s/\sqrt{s^2+\sigma_t^2}$. Even a sampler that were exact all the way down to $t$ would end
# with this shrunken spread if it finished with the jump $\hat x_0$. The oracle confirms it
# with *exact* $x_t$ (true data pushed forward by $q$), as long as $\sigma_t$ is small next to
# the distance between modes (0.77 here):

# %%
for std in (0.1, 0.05, 0.02):
    ring = ring_mixture(8, 1.0, std)
    data = ring.sample(N_POINTS, torch.Generator().manual_seed(SEED + 4))
    true_d = ring.nearest_mean_distance(ring.sample(20 * N_POINTS, torch.Generator().manual_seed(SEED + 2)))
    line = []
    for t in (0, 5, 20):
        x_t, _ = dc.q_sample(schedule, data, t, generator=torch.Generator().manual_seed(SEED + 5))
        d = ring.nearest_mean_distance(ring.x0_mean(x_t, t, schedule))
        measured = d.mean().item() / true_d.mean().item()
        predicted = std / math.sqrt(std**2 + sigma_of(t).item() ** 2)
        se = (d.std() / d.mean()).item() / math.sqrt(N_POINTS)
        assert abs(measured - predicted) < 4 * se, (std, t, measured, predicted, se)
        line.append(f"t={t:2d}: {measured:.3f} (formula {predicted:.3f})")
    print(f"ring std {std}: spread of E[x0|x_t] / truth   " + "   ".join(line))

# %% [markdown]
# At the default's last evaluation, $t = 50$ ($\sigma \approx 0.18$), a second effect joins in:
# some $x_t$ are ambiguous between two neighbouring modes, and their $\hat x_0$, an average,
# lands *between* the modes. The median distance shows the shrink of the typical sample, the
# mean is pulled up by those stragglers:

# %%
for std in (0.1, 0.05, 0.02):
    ring = ring_mixture(8, 1.0, std)
    data = ring.sample(N_POINTS, torch.Generator().manual_seed(SEED + 4))
    true_d = ring.nearest_mean_distance(ring.sample(20 * N_POINTS, torch.Generator().manual_seed(SEED + 2)))
    x_t, _ = dc.q_sample(schedule, data, 50, generator=torch.Generator().manual_seed(SEED + 5))
    d = ring.nearest_mean_distance(ring.x0_mean(x_t, 50, schedule))
    between = (d > 3 * std).double().mean().item()  # more than 3 widths from every centre: between modes
    print(f"ring std {std}: E[x0|x_50] median distance / truth {d.median().item() / true_d.median().item():.3f} "
          f"(formula {std / math.sqrt(std**2 + sigma_of(50).item() ** 2):.3f}), mean / truth {d.mean().item() / true_d.mean().item():.3f}, "
          f"share between modes {between:.3f} (truth {(true_d > 3 * std).double().mean().item():.3f})")

# %% [markdown]
# So the cause has two parts, both about the low-noise end:
#
# 1. **The last jump.** Returning $\hat x_0$ from $\sigma_{\text{last}}$ multiplies the typical
#    spread by about $s/\sqrt{s^2+\sigma_{\text{last}}^2}$ and parks ambiguous points between
#    modes. For the default list at 20 steps ($\sigma \approx 0.18$) the shrink factor is 0.49,
#    0.27 and 0.11 on our three rings. At 20 steps it happens to cancel part of the opposite
#    error of coarse steps (too much spread), which is why the table looks best there; at 50
#    and 100 steps, where the last evaluation sits at $t = 20$ and $t = 10$, the shrink wins.
# 2. **Too few evaluations where the modes form.** The slope $\hat x_0$ changes fastest while
#    $\sigma \sim s$; a linear-in-$t$ list crosses that range in one or two steps, where a
#    first-order step also contracts too much and the second-order extrapolation uses
#    $\hat x_0$ values from very different noise levels. This is why the default loses its
#    second order on the log-log plot.
#
# Lower-order final steps treat neither. Keeping $t = 0$ in the list removes most of part 1
# ($\sigma_{t=0} = 0.01$) but not part 2. Levels even in log-SNR (or Karras') put a fair share
# of evaluations at low noise and end at $t = 0$: they fix both, and restore second order.
# The diffusers-matching setting stays the default of `dc.samplers.dpm_solver_sample` (so the
# course agrees with the library); for sharp data pass `spacing="logsnr"`.

# %%
for std in (0.1, 0.05, 0.02):
    assert median[std, "DPM++ (diffusers default)"][1] < 0.7  # 20 steps: the typical sample is >30% too close
for std in (0.1, 0.05):
    fixed, default = mean[std, "DPM++ logsnr"], mean[std, "DPM++ (diffusers default)"]
    assert all(abs(v - 1) < 0.1 for v in fixed[1:] + median[std, "DPM++ logsnr"][1:]), (std, fixed)  # 20 steps on
    assert abs(default[2] - 1) > 2 * abs(fixed[2] - 1), (std, default, fixed)  # at 50 steps
limit = 0.02 / math.sqrt(0.02**2 + sigma_of(0).item() ** 2)  # the last jump, from t = 0
assert all(abs(v / limit - 1) < 0.05 for v in mean[0.02, "DPM++ logsnr"][2:])
print("default at 20 steps: typical sample more than 30% too close on every ring; logsnr levels: within 10% of the truth "
      "from 20 steps on rings of width 0.1 and 0.05, within 5% of the schedule's limit from 50 steps at width 0.02")

# %% [markdown]
# The sharpest ring shows a limit no sampler can pass: the schedule's first level, $t = 0$,
# already has $\sigma = 0.01$, half the ring's width, and every sampler here (DDPM's last
# step included) ends by returning $\hat x_0$ from there, which shrinks the spread by
# $0.02/\sqrt{0.02^2 + 0.01^2} = 0.894$. Data this sharp needs a schedule that starts with
# less noise.

# %% [markdown]
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Steps are the
# code's 0-based ints, and `t_prev = -1` means the data ($\bar\alpha = 1$). Reference answers
# are in `solutions/07_fast_samplers.py`.
#
# **1. One DDIM step** from level `t` to `t_prev` with the noise guess `eps`, a given `eta` and
# the fresh noise `z` (used only when $\eta > 0$).

# %%
def my_ddim_step(x_t, t, t_prev, eps, eta, z, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("07.ddim_step", my_ddim_step)

# %% [markdown]
# **2. One DPM-Solver++(2M) update** from `t` to `t_prev`, given this evaluation's `eps` and the
# previous evaluation's level `t_last` and data prediction `x0_last`.

# %%
def my_dpm2m_step(x_t, t, t_prev, eps, t_last, x0_last, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("07.dpm2m_step", my_dpm2m_step)

# %% [markdown]
# **3. A number.** A sampler that ends by returning $\hat x_0 = \mathbb{E}[x_0 \mid x_t]$ from level $t$
# shrinks a mode of width $s$ by $s/\sqrt{s^2 + \sigma_t^2}$, with $\sigma_t^2 = (1-\bar\alpha_t)/\bar\alpha_t$
# (the deep dive above derives it). What is that factor for $s = 0.05$ at the code's $t = 50$,
# where diffusers' default 20-step DPM-Solver++ makes its last evaluation?

# %%
my_shrink = None  # your number here

# %%
dc.exercises.check("07.shrink", my_shrink)
