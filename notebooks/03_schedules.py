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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/03_schedules.ipynb)
#
# # 03 · Noise schedules
#
# Everything in the forward process is decided by one list of numbers, $\beta_1, \dots, \beta_T$.
# This lesson compares the two schedules you will meet most: DDPM's **linear** schedule
# ($T = 1000$, $\beta$ from $10^{-4}$ to $0.02$; Ho et al., 2020) and the **cosine** schedule
# of improved DDPM (Nichol & Dhariwal, 2021). We look at $\bar\alpha_t$ and the
# signal-to-noise ratio, at how fast each one destroys a photo and the handwritten digits,
# at how close the last state $x_T$ gets to pure noise, and at what changing $T$ does.

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
# Parameters: the photo's side in pixels and how many digits to show.

# %%
IMAGE_SIZE = 64
N_DIGITS = 8
SEED = 0

# %%
# NBVAL_IGNORE_OUTPUT
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

import ddpm_course as dc

device = dc.setup(seed=SEED)

# %% [markdown]
# ## Two schedules
#
# **Linear.** $\beta_t$ grows evenly from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$, and
# $\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)$.
#
# **Cosine.** Instead of choosing the $\beta$s, choose the curve $\bar\alpha$ directly and read the
# $\beta$s off it. With $u = t/T$ the fraction of the way through the process,
#
# $$\bar\alpha_t = \frac{f(t/T)}{f(0)}, \qquad f(u) = \cos^2\Big(\frac{u + s}{1 + s}\cdot\frac{\pi}{2}\Big), \qquad
# \beta_t = 1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},$$
#
# with a small offset $s = 0.008$ so that $\beta_1$ is not vanishingly small. Because $f(1) = 0$,
# the last $\beta$ would be exactly 1 (the image wiped out in one step); the $\beta$s are
# therefore clipped at $0.999$.
#
# We build both from scratch in float64 and compare with the package's
# `dc.linear_schedule` and `dc.cosine_schedule` (whose code steps are 0-based:
# `alpha_bars[t-1]` is $\bar\alpha_t$, see lesson 02).

# %%
T = 1000
linear, cosine = dc.linear_schedule(T), dc.cosine_schedule(T)

abar_linear = np.cumprod(1 - np.linspace(1e-4, 0.02, T))  # index t-1 holds alpha_bar_t
s = 0.008
f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2  # f(t/T) for t = 0..T
abar_cosine = f[1:] / f[0]  # unclipped alpha_bar_1..T
betas_cosine = 1 - abar_cosine / np.concatenate([[1.0], abar_cosine[:-1]])
clipped = betas_cosine > 0.999
assert np.allclose(abar_linear, linear.alpha_bars.numpy(), rtol=1e-12, atol=0)
print("linear: alpha_bar from scratch agrees with the package to 1e-12 (relative)")
print(f"cosine: {clipped.sum()} beta(s) above 0.999 get clipped, at math step(s) {[int(k) + 1 for k in np.nonzero(clipped)[0]]}")
assert np.allclose(abar_cosine[:-1], cosine.alpha_bars.numpy()[:-1], rtol=1e-10, atol=0)
assert np.isclose(cosine.alpha_bars[-1].item(), abar_cosine[-2] * (1 - 0.999), rtol=1e-10)
print("cosine: alpha_bar from scratch agrees with the package (the last step uses the clipped beta = 0.999)")

# %% [markdown]
# ## $\bar\alpha$ and the signal-to-noise ratio
#
# $\bar\alpha_t$ is the fraction of the data's **variance** that survives, and
#
# $$\mathrm{SNR}_t = \frac{\bar\alpha_t}{1 - \bar\alpha_t}$$
#
# compares the signal's variance with the noise's (for data of unit variance). SNR spans
# many orders of magnitude, so we plot it on a log scale. Both are plotted against the time
# fraction $t/T$ by `dc.viz.plot_schedules`.

# %%
_ = dc.viz.plot_schedules([linear, cosine])
plt.show()

# %%
fractions = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
print(f"{'t/T':>5} | {'alpha_bar linear':>16} {'cosine':>10} | {'log10 SNR linear':>16} {'cosine':>8}")
for frac in fractions:
    k = round(frac * T) - 1  # code index of math step frac * T
    print(f"{frac:>5.2f} | {linear.alpha_bars[k].item():>16.4e} {cosine.alpha_bars[k].item():>10.4e} | "
          f"{linear.snr[k].log10().item():>16.3f} {cosine.snr[k].log10().item():>8.3f}")

for name, sch in (("linear", linear), ("cosine", cosine)):
    nearly_noise = (sch.snr < 1e-3).sum().item()
    half = int((sch.alpha_bars < 0.5).nonzero()[0].item()) + 1
    print(f"{name}: alpha_bar falls below 1/2 at step {half}; {nearly_noise} of {T} steps have SNR < 1e-3")

# %% [markdown]
# Reading the curves:
#
# * The linear schedule destroys the signal early: half the variance is gone after about a
#   quarter of the steps, and the last sixth of the steps all sit at an SNR below $10^{-3}$,
#   where $x_t$ is practically noise and little is left to learn.
# * The cosine schedule keeps $\bar\alpha$ close to one for longer, falls through the middle
#   almost linearly, and its log SNR is nearly a straight line in $t/T$ over most of the range
#   ($\mathrm{SNR} \approx \cot^2\big(\frac{\pi}{2}\cdot\frac{u+s}{1+s}\big)$; only approximately, because
#   $\bar\alpha = f(u)/f(0)$ and $f(0) = \cos^2\big(\frac{\pi}{2}\cdot\frac{s}{1+s}\big) \approx 0.99984$ is not
#   quite 1, and the last step is clipped). Steps are spread more evenly over the noise levels
#   that matter.
#
# ## How fast each destroys an image
#
# Lesson 01 derived the correlation between $x_t$ and $x_0$ over the pixels of an image with
# pixel variance $\sigma^2$:
# $\rho_t = \sqrt{\bar\alpha_t}\,\sigma / \sqrt{\bar\alpha_t\sigma^2 + 1 - \bar\alpha_t}$. The photo
# and the digits have different $\sigma$, so the same schedule erases them at different speeds.

# %%
flower = dc.photo("flower", size=IMAGE_SIZE).double()  # (3, H, W)
digits = dc.digits().images[:N_DIGITS].double()  # (N_DIGITS, 1, 16, 16)
gen = torch.Generator().manual_seed(SEED)


def correlation_curve(sch: dc.Schedule, sigma: float) -> torch.Tensor:
    ab = sch.alpha_bars
    return ab.sqrt() * sigma / (ab * sigma**2 + 1 - ab).sqrt()  # (T,)


def measured_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


data = {"flower": flower[None], "digits": digits}
sigmas = {name: x.std(unbiased=False).item() for name, x in data.items()}
print(f"{'data':>7} {'sigma':>6} {'schedule':>9} | {'rho < 0.5 from step':>19} {'rho < 0.1 from step':>19} | {'rho at step 500: formula':>24} {'measured':>8}")
for name, x in data.items():
    for sch in (linear, cosine):
        rho = correlation_curve(sch, sigmas[name])
        below = [int((rho < level).nonzero()[0].item()) + 1 for level in (0.5, 0.1)]
        x_t, _ = dc.q_sample(sch, x, 499, generator=gen)
        measured = measured_correlation(x_t, x)
        n_pixels = x.numel()
        assert abs(measured - rho[499].item()) < 4 * (1 - rho[499].item() ** 2) / math.sqrt(n_pixels)
        print(f"{name:>7} {sigmas[name]:>6.3f} {sch.name:>9} | {below[0]:>19} {below[1]:>19} | {rho[499].item():>24.4f} {measured:>8.4f}")
print("measured correlations at step 500 agree with the formula within 4 standard errors")

# %% [markdown]
# The same noise draw, the same steps, both schedules (photo first, then the digits, one row
# per step):

# %%
steps = [1, 100, 250, 500, 750, 1000]  # math steps
labels = ["x_0"] + [f"step {k}" for k in steps]
eps_flower = dc.noise_like(flower, gen)
eps_digits = dc.noise_like(digits, gen)
for sch in (linear, cosine):
    batch = flower.expand(len(steps), *flower.shape)  # (6, 3, H, W)
    x_t, _ = dc.q_sample(sch, batch, torch.tensor(steps) - 1, noise=eps_flower.expand_as(batch))
    _ = dc.viz.show_strip(torch.cat([flower[None], x_t]), labels, title=f"{sch.name} schedule")
plt.show()

fig, axes = plt.subplots(1, 2, figsize=(9, 7))
for ax, sch in zip(axes, (linear, cosine)):
    rows = [digits] + [dc.q_sample(sch, digits, k - 1, noise=eps_digits)[0] for k in steps]
    dc.viz.show_images(torch.cat(rows), nrow=N_DIGITS, ax=ax, title=f"{sch.name}: rows x_0, " + ", ".join(map(str, steps)))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Terminal SNR: how close does $x_T$ get to pure noise?
#
# Sampling starts from $x_T \sim \mathcal{N}(0, \mathbf{I})$, which is only right if the forward
# process really ends there. For one pixel, $q(x_T \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_T}\,x_0,\ 1 - \bar\alpha_T)$,
# and the KL divergence between two Gaussians gives
#
# $$\mathrm{KL}\big(q(x_T \mid x_0)\,\|\,\mathcal{N}(0, 1)\big) = \tfrac12\big(\bar\alpha_T x_0^2 - \bar\alpha_T - \log(1 - \bar\alpha_T)\big) \approx \tfrac12 \bar\alpha_T x_0^2 \quad (\bar\alpha_T \ll 1).$$
#
# Summed over the pixels of an image it is the $L_T$ term of the training objective (lesson 05);
# it has no parameters, so it is whatever the schedule makes it. We compute it from the
# formula and check it against `torch.distributions.kl_divergence`. The residual correlation
# $\rho_T$ says how much of the image a perfect observer could still see in $x_T$.

# %%
def terminal_kl(sch: dc.Schedule, x0: torch.Tensor) -> float:
    ab = sch.alpha_bars[-1].item()
    return (0.5 * (ab * x0**2 - ab - math.log1p(-ab))).sum().item()


print(f"{'schedule':>9} | {'alpha_bar_T':>11} {'SNR_T':>10} {'sqrt(abar_T)':>12} | {'KL flower (nats)':>16} {'per pixel':>10} | {'rho_T flower':>12}")
for sch in (linear, cosine):
    ab = sch.alpha_bars[-1].item()
    kl = terminal_kl(sch, flower)
    q = torch.distributions.Normal(math.sqrt(ab) * flower, math.sqrt(1 - ab))
    kl_torch = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum().item()
    assert abs(kl - kl_torch) <= 1e-9 * max(kl, 1e-300) + 1e-15
    rho_T = correlation_curve(sch, sigmas["flower"])[-1].item()
    print(f"{sch.name:>9} | {ab:>11.3e} {sch.snr[-1].item():>10.3e} {math.sqrt(ab):>12.3e} | {kl:>16.3e} {kl / flower.numel():>10.3e} | {rho_T:>12.3e}")
print("KL from the formula agrees with torch.distributions.kl_divergence")

# %% [markdown]
# Both schedules end very close to $\mathcal{N}(0, \mathbf{I})$, but not exactly there: under the
# linear schedule $x_T$ still carries $0.6\,\%$ of the image's amplitude ($\sqrt{\bar\alpha_T}$),
# a KL of about a tenth of a nat over the whole photo. The cosine schedule's clipped last
# step leaves about $5 \times 10^{-5}$ of the amplitude. A non-zero terminal SNR means that
# training never sees perfectly pure noise, while sampling starts from it; the mismatch is
# small here, and it is why some later schedules force $\bar\alpha_T = 0$ exactly
# (Lin et al., 2024, "Common diffusion noise schedules and sample steps are flawed").
#
# ## The effect of $T$
#
# What if we want fewer steps? Keeping the linear schedule's endpoints and only setting
# $T = 100$ is a trap. For small $\beta$, $\log \bar\alpha_T = \sum_t \log(1-\beta_t) \approx -\sum_t \beta_t$,
# and the sum of a linear ramp is $T(\beta_1 + \beta_T)/2$: it shrinks with $T$. Scaling both
# endpoints by $1000/T$ keeps the sum, and hence the end point, about the same.

# %%
variants = {
    "linear, T=1000": dc.linear_schedule(1000, 1e-4, 0.02),
    "linear, T=100, same betas": dc.linear_schedule(100, 1e-4, 0.02),
    "linear, T=100, betas x10": dc.linear_schedule(100, 1e-3, 0.2),
}
print(f"{'schedule':>26} | {'sum of betas':>12} {'-log alpha_bar_T':>16} | {'alpha_bar_T':>11} {'KL flower (nats)':>16}")
for name, sch in variants.items():
    sum_beta = sch.betas.sum().item()
    neg_log = -sch.alpha_bars[-1].log().item()
    print(f"{name:>26} | {sum_beta:>12.4f} {neg_log:>16.4f} | {sch.alpha_bars[-1].item():>11.3e} {terminal_kl(sch, flower):>16.3e}")
    # -log(1 - b) = b + b^2/2 + ...: the sum of betas is a lower bound, off by about sum(b^2)/2
    assert sum_beta <= neg_log <= sum_beta + (sch.betas**2).sum().item()

# %% [markdown]
# With the same betas and $T = 100$, a third of the variance survives: $x_T$ is not noise at
# all, and a sampler starting from $\mathcal{N}(0, \mathbf{I})$ would start from the wrong
# place. Scaled by 10, the end point is back near pure noise (a little closer, since the
# second-order terms $\beta^2/2$ grow with the larger betas).
#
# The cosine schedule is defined through $t/T$, so it is the *same curve* at every $T$: at
# shared time fractions, $T = 100$ and $T = 1000$ give the same $\bar\alpha$ (apart from the clipped
# last step). In the plot below the $T = 100$ cosine is drawn as dots lying on the wide
# $T = 1000$ line, since the two curves coincide; the rescaled linear $T = 100$ schedule (dashed)
# nearly coincides with the linear $T = 1000$ one as well.

# %%
cos100 = dc.cosine_schedule(100)
same = cos100.alpha_bars[:-1]  # math steps 1..99 of T=100
same_1000 = cosine.alpha_bars[9:-1:10]  # math steps 10, 20, ..., 990 of T=1000
assert torch.allclose(same, same_1000, rtol=1e-10, atol=0)
print("cosine: alpha_bar at t/T = k/100 is the same for T = 100 and T = 1000 (k = 1..99)")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
_ = dc.viz.plot_schedules([*variants.values(), cos100, cosine], labels=[*variants, "cosine, T=100", "cosine, T=1000"], axes=axes)
for ax in axes:  # two pairs of curves (nearly) coincide: keep both of each pair visible
    ax.lines[2].set(linestyle="--")  # linear, T=100, betas x10, over linear, T=1000
    ax.lines[3].set(linestyle="none", marker="o", markersize=2, zorder=3)  # cosine, T=100 as dots...
    ax.lines[4].set(linewidth=4, alpha=0.5, zorder=1)  # ...on a wide cosine, T=1000 line
    ax.legend(fontsize=8)
plt.show()

last = torch.stack([dc.q_sample(sch, flower[None], sch.T - 1, noise=eps_flower[None])[0][0] for sch in variants.values()])
_ = dc.viz.show_strip(last, [f"x_T: {name}" for name in variants], size=2.6)
plt.show()

# %% [markdown]
# ## Explore a schedule
#
# `dc.widgets.schedule_explorer()` puts the settings on sliders: the kind, $T$, the linear
# endpoints and the cosine offset $s$. Behind it is a pure function,
# `dc.widgets.schedule_stats(kind, T, beta_start, beta_end, s)`, which returns the schedule,
# $\bar\alpha_T$, $\mathrm{SNR}_T$, the first step where $\bar\alpha < 1/2$ as a code index
# (`half_step`, 0-based; we print it as a math step, `half_step + 1`, like every step in this
# lesson), and the
# worst-case KL of $x_T$ from $\mathcal{N}(0,1)$ per pixel (at $|x_0| = 1$, where
# $\tfrac12(\bar\alpha_T x_0^2 - \bar\alpha_T - \log(1-\bar\alpha_T))$ peaks, giving $-\tfrac12\log(1-\bar\alpha_T)$).
# We drive the sliders from code and check the results independently.

# %%
explorer = dc.widgets.schedule_explorer()
kind_w, T_w, beta_start_w, beta_end_w, s_w = explorer.children[:5]
T_w.value = 100  # the trap from above
stats = explorer.result
abar_T = np.prod(1 - np.linspace(beta_start_w.value, beta_end_w.value, 100))
assert stats.schedule.T == 100 and math.isclose(stats.alpha_bar_T, abar_T, rel_tol=1e-12)
assert math.isclose(stats.prior_kl, -0.5 * math.log(1 - abar_T), rel_tol=1e-12)
print(f"linear, T=100: alpha_bar_T {stats.alpha_bar_T:.4f}, alpha_bar < 1/2 from math step {stats.half_step + 1}, "
      f"worst KL per pixel {stats.prior_kl:.4f}")

kind_w.value = "cosine"
stats = explorer.result
assert math.isclose(stats.alpha_bar_T, cos100.alpha_bars[-1].item(), rel_tol=1e-12)
print(f"cosine, T=100: alpha_bar_T {stats.alpha_bar_T:.3e}, alpha_bar < 1/2 from math step {stats.half_step + 1}, "
      f"worst KL per pixel {stats.prior_kl:.3e}")

beta_start_w.value = 0.05  # above beta_end: invalid for a linear schedule
kind_w.value = "linear"
assert explorer.result is None
print("invalid settings give no result and a message:", explorer.children[-2].value)
beta_start_w.value = 1e-4
T_w.value = 1000

# %%
# NBVAL_IGNORE_OUTPUT
display(explorer)

# %% [markdown]
# ## Summary
# * The linear schedule loses half the signal's variance in its first quarter and spends its
#   last sixth at SNR below $10^{-3}$; the cosine schedule spreads the noise levels
#   more evenly in log SNR.
# * How fast an image disappears depends on the schedule and on the data's pixel variance:
#   $\rho_t = \sqrt{\bar\alpha_t}\sigma/\sqrt{\bar\alpha_t\sigma^2 + 1-\bar\alpha_t}$.
# * Neither schedule reaches pure noise exactly: $\bar\alpha_T \approx 4\times10^{-5}$ (linear) and
#   $2.4\times10^{-9}$ (cosine, thanks to the clipped last step); the KL to $\mathcal{N}(0, \mathbf{I})$ is small but not zero.
# * Changing $T$ without rescaling the linear betas changes where the process ends
#   ($-\log\bar\alpha_T \approx \sum_t \beta_t$); the cosine schedule is the same curve at every $T$.
#
# Next, lesson 04 builds the network that will learn to predict the noise.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Steps are the
# code's, 0-based (`t` of shape $(B,)$, several different steps per call, the edges included).
# Reference answers are in `solutions/03_schedules.py`.
#
# **1. The cosine schedule from its formula.** Return $\bar\alpha$ at the code steps `t` for a
# cosine schedule with `T` steps and offset `s`, as float64, without calling
# `dc.cosine_schedule` (the checks leave out the last step, `t = T - 1`, whose $\beta$ is clipped).

# %%
def my_cosine_alpha_bar(t, T, s):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("03.cosine_alpha_bar", my_cosine_alpha_bar)

# %% [markdown]
# **2. The signal-to-noise ratio** $\mathrm{SNR}_t$ at the code steps `t` of any `schedule`
# (without `schedule.snr`).

# %%
def my_snr(t, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("03.snr", my_snr)

# %% [markdown]
# **3. Two numbers.** (a) Under the linear schedule with $T = 1000$, from which **math step** on
# is $\mathrm{SNR}_t$ below $0.01$? (b) What is the cosine schedule's ($T = 1000$, $s = 0.008$)
# exact $\mathrm{SNR}$ at the **math's step 500**, and how far is the $\cot^2$ approximation
# from it?

# %%
my_linear_snr_step = None  # your number here
my_cosine_snr_500 = None  # your number here

# %%
print(dc.exercises.check("03.linear_snr_step", my_linear_snr_step))
print(dc.exercises.check("03.cosine_snr_500", my_cosine_snr_500))
