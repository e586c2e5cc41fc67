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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/02_forward_chain.ipynb)
#
# # 02 · The forward process as a Markov chain
#
# Lesson 01 used the jump formula $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$
# without proof. Here we start from the one-step chain $q(x_t \mid x_{t-1})$, derive the jump
# $q(x_t \mid x_0)$ step by step, and check every algebraic step with numbers: first exactly
# (float64 arithmetic), then by Monte Carlo (running many chains). We end with the
# distribution the reverse process is built on, the posterior $q(x_{t-1} \mid x_t, x_0)$,
# derived by completing the square and checked twice: by Bayes' rule on a grid and by
# linear regression on simulated pairs.

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
# Parameters: how many independent chains the Monte Carlo checks run. More chains give
# tighter estimates; every check below states its tolerance in standard errors, so it holds
# at any size.

# %%
N_CHAINS = 10_000
N_PAIRS = 200_000
SEED = 0

# %%
# NBVAL_IGNORE_OUTPUT
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats
from sklearn.linear_model import LinearRegression

import ddpm_course as dc

device = dc.setup(seed=SEED)

# %% [markdown]
# ## One step of the chain
#
# A schedule $\beta_1, \dots, \beta_T \in (0, 1)$ defines the chain $x_0 \to x_1 \to \dots \to x_T$:
#
# $$q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t \mathbf{I}\big)
# \quad\Longleftrightarrow\quad
# x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t,\qquad \alpha_t = 1-\beta_t,$$
#
# with a **fresh, independent** $\epsilon_t \sim \mathcal{N}(0, \mathbf{I})$ at every step. "Markov"
# means that $x_t$ depends on the past only through $x_{t-1}$. Each coordinate (pixel) is
# noised independently with the same numbers, so every check below can be done on scalars.
#
# ### The index convention (read this once)
#
# The maths numbers the noisy states $x_1, \dots, x_T$ and the data $x_0$. The code numbers
# steps from zero, like every Python array:
#
# | math | code |
# |---|---|
# | step $t \in \{1, \dots, T\}$, producing $x_t$ | `t = ` step $- 1 \in \{0, \dots, T-1\}$ |
# | $\beta_t$, $\alpha_t$, $\bar\alpha_t$ | `betas[t-1]`, `alphas[t-1]`, `alpha_bars[t-1]` |
# | $\bar\alpha_{t-1}$ (with $\bar\alpha_0 = 1$) | `alpha_bars_prev[t-1]` |
# | $x_1$ | the output of code step `t = 0` |
#
# So code `t = 0` is the math's $x_1$, and `alpha_bars[t]` is the math's $\bar\alpha_{t+1}$.
# Calling `dc.q_step(schedule, x, t)` applies code step `t`.

# %%
schedule = dc.linear_schedule(T=1000)  # beta from 1e-4 to 0.02
alphas, alpha_bars = schedule.alphas, schedule.alpha_bars
print(f"beta_1 = betas[0] = {schedule.betas[0].item():.6f}, beta_T = betas[{schedule.T - 1}] = {schedule.betas[-1].item():.6f}")
print(f"alpha_bar_1 = alpha_bars[0] = {alpha_bars[0].item():.6f} (= alpha_1 = {alphas[0].item():.6f})")
print(f"alpha_bar_0 = alpha_bars_prev[0] = {schedule.alpha_bars_prev[0].item():.1f}")
assert torch.equal(schedule.alpha_bars_prev[1:], alpha_bars[:-1])

# %% [markdown]
# One step by hand equals `dc.q_step` with the same noise (float64, exact):

# %%
gen = torch.Generator().manual_seed(SEED)
x_prev = torch.linspace(-1, 1, 5, dtype=torch.float64)[None]  # (1, 5): five pixel values
eps = dc.noise_like(x_prev, gen)
t = 41  # code step 41 = math step 42
by_hand = math.sqrt(1 - schedule.betas[t].item()) * x_prev + math.sqrt(schedule.betas[t].item()) * eps
assert torch.allclose(dc.q_step(schedule, x_prev, t, noise=eps), by_hand, rtol=0, atol=1e-15)
print("q_step equals sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps_t")

# %% [markdown]
# ## Two steps merge into one
#
# Write two consecutive steps and substitute the first into the second:
#
# $$\begin{aligned}
# x_t &= \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t \\
#     &= \sqrt{\alpha_t}\big(\sqrt{\alpha_{t-1}}\,x_{t-2} + \sqrt{1-\alpha_{t-1}}\,\epsilon_{t-1}\big) + \sqrt{1-\alpha_t}\,\epsilon_t \\
#     &= \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \underbrace{\sqrt{\alpha_t(1-\alpha_{t-1})}\,\epsilon_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t}_{\text{two independent Gaussians}}.
# \end{aligned}$$
#
# The two noises are **different** draws; it is their independence that lets them merge. A sum
# of independent zero-mean Gaussians is a zero-mean Gaussian whose variance is the sum of the
# variances:
#
# $$\alpha_t(1-\alpha_{t-1}) + (1-\alpha_t) = 1 - \alpha_t\alpha_{t-1}
# \quad\Longrightarrow\quad
# x_t = \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \sqrt{1-\alpha_t\alpha_{t-1}}\,\bar\epsilon,\qquad \bar\epsilon \sim \mathcal{N}(0, \mathbf{I}).$$
#
# Three checks, one per line of the derivation. First the substitution: two calls of
# `q_step` with noises $\epsilon_{t-1}, \epsilon_t$ equal the expanded expression.

# %%
t = 500  # code step of x_t; x_{t-1} comes from code step t-1
a_t, a_prev = alphas[t].item(), alphas[t - 1].item()
e1, e2 = dc.noise_like(x_prev, gen), dc.noise_like(x_prev, gen)
two_steps = dc.q_step(schedule, dc.q_step(schedule, x_prev, t - 1, noise=e1), t, noise=e2)
expanded = math.sqrt(a_t * a_prev) * x_prev + math.sqrt(a_t * (1 - a_prev)) * e1 + math.sqrt(1 - a_t) * e2
assert torch.allclose(two_steps, expanded, rtol=0, atol=1e-15)
print("substitution: two q_steps == sqrt(a_t a_{t-1}) x + sqrt(a_t (1 - a_{t-1})) e1 + sqrt(1 - a_t) e2")

# %% [markdown]
# Second, the variance identity, at every pair of consecutive steps of the schedule:

# %%
lhs = alphas[1:] * (1 - alphas[:-1]) + (1 - alphas[1:])
rhs = 1 - alphas[1:] * alphas[:-1]
assert torch.allclose(lhs, rhs, rtol=0, atol=1e-15)
print("a_t (1 - a_(t-1)) + (1 - a_t) == 1 - a_t a_(t-1) at every t, to 1e-15")

# %% [markdown]
# Third, that the merged noise really is $\mathcal{N}(0,\, 1-\alpha_t\alpha_{t-1})$. With the
# tiny betas of the linear schedule the effect is hard to see, so take two large steps,
# $\beta = 0.3$ and $\beta = 0.5$, and compare many draws of the noise term with the claim:
# its variance within Monte Carlo error, and its shape by a Kolmogorov-Smirnov test (scipy).

# %%
big = dc.Schedule.from_betas(torch.tensor([0.3, 0.5], dtype=torch.float64), name="two big steps")
x_start = torch.full((N_CHAINS, 1), 0.8, dtype=torch.float64)  # (N, 1)
x_two = dc.q_step(big, dc.q_step(big, x_start, 0, generator=gen), 1, generator=gen)
a1, a2 = big.alphas.tolist()
merged_noise = (x_two - math.sqrt(a1 * a2) * x_start).flatten()  # what is left after the signal
var_claim = 1 - a1 * a2
var_hat = merged_noise.var().item()
se = var_claim * math.sqrt(2 / (N_CHAINS - 1))
ks = stats.kstest(merged_noise.numpy(), "norm", args=(0.0, math.sqrt(var_claim)))
print(f"variance of the merged noise: {var_hat:.3f} (claim 1 - a1 a2 = {var_claim:.3f}, standard error {se:.3f})")
assert abs(var_hat - var_claim) < 4 * se
assert ks.pvalue > 1e-3, ks
print("Kolmogorov-Smirnov: the merged noise is consistent with N(0, 1 - a1 a2)")

# %% [markdown]
# ## From two steps to $t$ steps: the jump
#
# Repeat the merge. Suppose $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,x_0 + \sqrt{1-\bar\alpha_{t-1}}\,\bar\epsilon$.
# One more step gives signal $\sqrt{\alpha_t}\sqrt{\bar\alpha_{t-1}} = \sqrt{\bar\alpha_t}$ and noise variance
#
# $$\alpha_t(1-\bar\alpha_{t-1}) + (1-\alpha_t) = 1 - \bar\alpha_t,$$
#
# the same identity as before with $\alpha_{t-1}$ replaced by $\bar\alpha_{t-1}$. With $\bar\alpha_0 = 1$
# the induction starts, and we get the closed form
#
# $$q(x_t \mid x_0) = \mathcal{N}\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\mathbf{I}\big),
# \qquad \bar\alpha_t = \prod_{s=1}^{t} \alpha_s.$$
#
# The check: iterate the two recursions (mean coefficient $m_t = \sqrt{\alpha_t}\,m_{t-1}$,
# variance $v_t = \alpha_t v_{t-1} + \beta_t$, from $m_0 = 1, v_0 = 0$) through all 1000 steps
# and compare with $\sqrt{\bar\alpha_t}$ and $1 - \bar\alpha_t$ from the schedule.

# %%
m, v = 1.0, 0.0
m_all, v_all = [], []
for beta in schedule.betas.tolist():
    m, v = math.sqrt(1 - beta) * m, (1 - beta) * v + beta
    m_all.append(m)
    v_all.append(v)
m_err = (torch.tensor(m_all, dtype=torch.float64) - alpha_bars.sqrt()).abs().max().item()
v_err = (torch.tensor(v_all, dtype=torch.float64) - (1 - alpha_bars)).abs().max().item()
assert m_err < 1e-12 and v_err < 1e-12
print("after 1000 steps of the recursions: m_t == sqrt(alpha_bar_t) and v_t == 1 - alpha_bar_t, to 1e-12")

# %% [markdown]
# ## Monte Carlo: walking the chain vs jumping
#
# Now the real thing: start `N_CHAINS` chains at each of three pixel values $x_0 \in \{-1, 0, 1\}$,
# apply `q_step` 1000 times, and record the states at a few steps. Separately, draw the same
# steps with one `q_sample` jump each. Both must match the closed form: mean
# $\sqrt{\bar\alpha_t}\,x_0$ and variance $1-\bar\alpha_t$. The tolerance is stated in standard
# errors: $\sqrt{v/N}$ for a mean and $v\sqrt{2/(N-1)}$ for a variance (Gaussian data).

# %%
x0 = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64).expand(N_CHAINS, 3)  # (N, 3)
record_steps = [1, 10, 100, 500, 1000]  # math steps
chain_gen, jump_gen = torch.Generator().manual_seed(SEED + 1), torch.Generator().manual_seed(SEED + 2)

x = x0
walked = {}
for t in range(schedule.T):  # code steps 0..T-1, i.e. math steps 1..T
    x = dc.q_step(schedule, x, t, generator=chain_gen)
    if t + 1 in record_steps:
        walked[t + 1] = x
jumped = {step: dc.q_sample(schedule, x0, step - 1, generator=jump_gen)[0] for step in record_steps}

# %%
worst = 0.0
print(f"x_0 = 1.0 | {'step':>4} | {'mean: theory':>12} {'walk':>8} {'jump':>8} | {'var: theory':>11} {'walk':>8} {'jump':>8}")
for step in record_steps:
    abar = alpha_bars[step - 1].item()
    mean_th = math.sqrt(abar) * x0[0]  # (3,)
    var_th = 1 - abar
    se_mean, se_var = math.sqrt(var_th / N_CHAINS), var_th * math.sqrt(2 / (N_CHAINS - 1))
    for sample in (walked[step], jumped[step]):
        z_mean = (sample.mean(0) - mean_th).abs().max().item() / se_mean
        z_var = (sample.var(0) - var_th).abs().max().item() / se_var
        worst = max(worst, z_mean, z_var)
    w, j = walked[step][:, -1], jumped[step][:, -1]
    print(f"{'':10}| {step:>4} | {mean_th[-1].item():>12.4f} {w.mean().item():>8.4f} {j.mean().item():>8.4f} | "
          f"{var_th:>11.4f} {w.var().item():>8.4f} {j.var().item():>8.4f}")
assert worst < 4.5, worst
print("all 3 pixels x 5 steps x (walk, jump) x (mean, variance) agree with the closed form within 4.5 standard errors")

# %% [markdown]
# The walk took 1000 calls; the jump took one. Since they give the same distribution, training
# can draw $x_t$ for a random $t$ in one line, which is what makes DDPM training cheap.
#
# ## Signal kept vs noise added
#
# The jump splits $x_t$ into $\sqrt{\bar\alpha_t}\,x_0$ (signal) and $\sqrt{1-\bar\alpha_t}\,\epsilon$
# (noise). Their variances always add to one, so data with unit variance keeps unit
# variance at every step: the process is **variance preserving**. The signal and noise
# amplitudes are equal where $\bar\alpha_t = 1/2$.

# %%
step_axis = torch.arange(1, schedule.T + 1)
cross = int((alpha_bars < 0.5).nonzero()[0].item()) + 1
print(f"signal = noise (alpha_bar = 1/2) is crossed at math step {cross}")

unit_data = torch.where(torch.rand(N_CHAINS, 1, generator=gen) < 0.5, -1.0, 1.0).double()  # variance 1
for step in (100, 500, 1000):
    abar = alpha_bars[step - 1].item()
    x_t, _ = dc.q_sample(schedule, unit_data, step - 1, generator=gen)
    # standard error of a sample variance: sqrt((E[x^4] - 1) / N); here E[x^4] = s^4 + 6 s^2 n^2 + 3 n^4
    fourth = abar**2 + 6 * abar * (1 - abar) + 3 * (1 - abar) ** 2
    se = math.sqrt((fourth - 1) / N_CHAINS)
    print(f"step {step:4d}: variance of x_t {x_t.var().item():.4f} (claim 1, standard error {se:.4f})")
    assert abs(x_t.var().item() - 1) < 4.5 * se

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(step_axis, alpha_bars.sqrt(), label=r"signal kept $\sqrt{\bar\alpha_t}$")
ax.plot(step_axis, (1 - alpha_bars).sqrt(), label=r"noise added $\sqrt{1-\bar\alpha_t}$")
ax.axvline(cross, color="grey", ls=":", label=f"equal at step {cross}")
ax.set_xlabel("math step t")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## The posterior $q(x_{t-1} \mid x_t, x_0)$
#
# The reverse process needs to go from $x_t$ back to $x_{t-1}$. Without knowing $x_0$ that is
# hard (it depends on the whole data distribution), but **given** $x_0$ it is a Gaussian we
# can write down. Bayes' rule, with the Markov property
# $q(x_t \mid x_{t-1}, x_0) = q(x_t \mid x_{t-1})$:
#
# $$q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0).$$
#
# Both factors are Gaussian in $x_{t-1}$. Taking logs and dropping terms without $x_{t-1}$,
#
# $$-2\log q = \frac{(x_t - \sqrt{\alpha_t}\,x_{t-1})^2}{\beta_t} + \frac{(x_{t-1} - \sqrt{\bar\alpha_{t-1}}\,x_0)^2}{1-\bar\alpha_{t-1}} + \text{const}
# = \Big(\frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}\Big)x_{t-1}^2
#   - 2\Big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\Big)x_{t-1} + \text{const}.$$
#
# **Completing the square**: a Gaussian $\mathcal{N}(\mu, \sigma^2)$ has $-2\log q = x^2/\sigma^2 - 2x\mu/\sigma^2 + \text{const}$,
# so the precision is the coefficient of $x_{t-1}^2$ and the mean is (linear coefficient) / precision.
# The precision simplifies with the identity $\alpha_t(1-\bar\alpha_{t-1}) + \beta_t = 1-\bar\alpha_t$ from the jump:
#
# $$\frac{1}{\tilde\beta_t} = \frac{\alpha_t(1-\bar\alpha_{t-1}) + \beta_t}{\beta_t(1-\bar\alpha_{t-1})} = \frac{1-\bar\alpha_t}{\beta_t(1-\bar\alpha_{t-1})}
# \quad\Longrightarrow\quad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t,$$
#
# $$\tilde\mu_t(x_t, x_0) = \tilde\beta_t\Big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\Big)
# = \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t + \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0.$$
#
# At $t = 1$ the "previous state" is the data: $\bar\alpha_0 = 1$ gives $\tilde\beta_1 = 0$ and $\tilde\mu_1 = x_0$.
#
# First check, the precision identity and the coefficients, against the schedule's tables
# (`posterior_variance`, `posterior_mean_coef_xt`, `posterior_mean_coef_x0`), computed here
# from the un-simplified formulas (the first step, where $1-\bar\alpha_0 = 0$, is left out of
# the division and checked on its own):

# %%
b, a, ab, ab_prev = schedule.betas, schedule.alphas, schedule.alpha_bars, schedule.alpha_bars_prev
precision = a[1:] / b[1:] + 1 / (1 - ab_prev[1:])  # (T-1,)
var_tilde = 1 / precision
mean_xt = var_tilde * a[1:].sqrt() / b[1:]
mean_x0 = var_tilde * ab_prev[1:].sqrt() / (1 - ab_prev[1:])
for name, ours, table in [
    ("variance", var_tilde, schedule.posterior_variance[1:]),
    ("coef of x_t", mean_xt, schedule.posterior_mean_coef_xt[1:]),
    ("coef of x_0", mean_x0, schedule.posterior_mean_coef_x0[1:]),
]:
    rel = ((ours - table).abs() / table).max().item()
    assert rel < 1e-10, (name, rel)
    print(f"{name:>12}: completing the square vs the simplified formula agree, max relative difference < 1e-10")
assert schedule.posterior_variance[0] == 0 and schedule.posterior_mean_coef_xt[0] == 0
assert abs(schedule.posterior_mean_coef_x0[0].item() - 1) < 1e-12
print("step 1: variance 0, mean x_0")

# %% [markdown]
# ### Check 2: Bayes' rule on a grid
#
# An independent route that uses no algebra at all: fix $x_0$ and $x_t$, evaluate
# prior $\times$ likelihood on a fine grid of $x_{t-1}$ values, normalise numerically, and
# read off the mean and variance. `dc.q_posterior` takes the code step (math $t$ = code `t + 1`).

# %%
grid = torch.linspace(-8, 8, 400_001, dtype=torch.float64)  # values of x_{t-1}
dx = (grid[1] - grid[0]).item()
x0_val, xt_val = 0.7, -0.3
print(f"{'math t':>6} | {'mean: grid':>10} {'formula':>10} | {'variance: grid':>14} {'formula':>10}")
for step in (2, 10, 100, 500, 1000):
    k = step - 1  # code index of step t; step t-1 is code k-1
    log_prior = torch.distributions.Normal(ab[k - 1].sqrt() * x0_val, (1 - ab[k - 1]).sqrt()).log_prob(grid)
    log_lik = torch.distributions.Normal(a[k].sqrt() * grid, b[k].sqrt()).log_prob(torch.tensor(xt_val, dtype=torch.float64))
    w = (log_prior + log_lik - (log_prior + log_lik).max()).exp()
    w = w / (w.sum() * dx)
    mean_grid = (grid * w).sum().item() * dx
    var_grid = ((grid - mean_grid) ** 2 * w).sum().item() * dx
    mean, var = dc.q_posterior(schedule, torch.tensor([[x0_val]], dtype=torch.float64), torch.tensor([[xt_val]], dtype=torch.float64), k)
    assert abs(mean_grid - mean.item()) < 1e-7 and abs(var_grid / var.item() - 1) < 1e-5
    print(f"{step:>6} | {mean_grid:>10.6f} {mean.item():>10.6f} | {var_grid:>14.8f} {var.item():>10.8f}")
print("grid Bayes agrees with q_posterior: mean within 1e-7, variance within 1e-5 relative")

# %% [markdown]
# ### Check 3: regression on simulated pairs
#
# A second independent route, by simulation. Draw $x_0$ from a distribution that is not
# Gaussian at all (uniform on $[-1, 1]$), walk the chain to $x_{t-1}$ and take one more step
# to $x_t$. If the posterior is $\mathcal{N}(c_t x_t + c_0 x_0,\ \tilde\beta_t)$, then an ordinary
# least-squares regression of $x_{t-1}$ on $(x_t, x_0)$ must find the coefficients $c_t, c_0$,
# an intercept of zero, and a residual variance of $\tilde\beta_t$. We use scikit-learn's
# `LinearRegression` and compare within 4.5 of the regression's own standard errors.

# %%
reg_gen = torch.Generator().manual_seed(SEED + 3)
print(f"{'math t':>6} | {'c_t: OLS':>9} {'formula':>9} | {'c_0: OLS':>9} {'formula':>9} | {'resid. var':>10} {'beta~_t':>9}")
for step in (2, 50, 300, 1000):
    k = step - 1
    x0_s = torch.rand(N_PAIRS, 1, generator=reg_gen, dtype=torch.float64) * 2 - 1  # (N, 1) uniform
    x_prev_s, _ = dc.q_sample(schedule, x0_s, k - 1, generator=reg_gen)  # x_{t-1}
    x_t_s = dc.q_step(schedule, x_prev_s, k, generator=reg_gen)  # x_t
    X = torch.cat([x_t_s, x0_s], dim=1).numpy()  # (N, 2)
    y = x_prev_s.flatten().numpy()
    ols = LinearRegression().fit(X, y)
    resid = y - ols.predict(X)
    resid_var = resid.var(ddof=3)
    design = np.column_stack([np.ones(N_PAIRS), X])  # (N, 3): intercept, x_t, x_0
    se_int, *se_coef = np.sqrt(resid_var * np.diag(np.linalg.inv(design.T @ design)))  # OLS standard errors
    c_t, c_0, var_t = (schedule.posterior_mean_coef_xt[k].item(), schedule.posterior_mean_coef_x0[k].item(),
                       schedule.posterior_variance[k].item())
    assert abs(ols.coef_[0] - c_t) < 4.5 * se_coef[0] and abs(ols.coef_[1] - c_0) < 4.5 * se_coef[1]
    assert abs(resid_var - var_t) < 4.5 * var_t * math.sqrt(2 / N_PAIRS)
    assert abs(ols.intercept_) < 4.5 * se_int
    print(f"{step:>6} | {ols.coef_[0]:>9.4f} {c_t:>9.4f} | {ols.coef_[1]:>9.4f} {c_0:>9.4f} | {resid_var:>10.6f} {var_t:>9.6f}")
print("regression recovers the posterior coefficients and variance within 4.5 standard errors")

# %% [markdown]
# How the posterior behaves across the chain: its variance $\tilde\beta_t$ is always below the
# forward step's $\beta_t$ (the ratio $(1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$ is below one, far below
# in the first steps) and the two agree once $\bar\alpha_t$ is small. Both axes of the left plot
# are logarithmic: on a linear axis the first steps, where the two differ by a factor of about
# two, are squeezed into the corner. They are the two classic
# choices for the variance of the learned reverse step (lesson 06). In the first steps the
# posterior is very narrow and leans on $x_0$; later the weight of $x_0$ fades and $x_t$ carries
# almost all the information.

# %%
ratio = (schedule.posterior_variance[1:] / b[1:])
print(f"beta~_t / beta_t: step 2 {ratio[0].item():.4f}, step 10 {ratio[8].item():.4f}, "
      f"step 100 {ratio[98].item():.4f}, step 1000 {ratio[-1].item():.4f}")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].loglog(step_axis[1:], b[1:], label=r"$\beta_t$ (forward step)")
axes[0].loglog(step_axis[1:], schedule.posterior_variance[1:], "--", label=r"$\tilde\beta_t$ (posterior)")
axes[0].set_xlabel("math step t")
axes[0].set_ylabel("variance (log scale)")
axes[0].legend()
axes[1].plot(step_axis, schedule.posterior_mean_coef_xt, label=r"weight of $x_t$")
axes[1].plot(step_axis, schedule.posterior_mean_coef_x0, label=r"weight of $x_0$")
axes[1].set_xscale("log")
axes[1].set_xlabel("math step t")
axes[1].legend()
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
# * One step: $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t$ with fresh noise each step.
# * Two steps merge because independent Gaussians add their variances:
#   $\alpha_t(1-\alpha_{t-1}) + (1-\alpha_t) = 1-\alpha_t\alpha_{t-1}$; by induction
#   $q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t)\mathbf{I})$.
#   1000 chain steps and one jump agree by Monte Carlo.
# * Code steps are 0-based: code `t` is the math's step $t+1$, `alpha_bars[t]` is $\bar\alpha_{t+1}$.
# * The posterior $q(x_{t-1} \mid x_t, x_0) = \mathcal{N}(\tilde\mu_t, \tilde\beta_t \mathbf{I})$ is linear in
#   $(x_t, x_0)$; completing the square, a grid and a regression all agree.
#
# Next, lesson 03 compares noise schedules: how the choice of $\beta_t$ shapes all of this.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Steps are the
# code's, 0-based: `t` is a tensor of shape $(B,)$, one step per sample, and the checks use
# batches of *different* steps, including the edges `t = 0` and `t = T - 1`. Reference answers
# are in `solutions/02_forward_chain.py`.
#
# **1. Walk the chain.** Starting from `x0`, apply the one-step chain at the code steps
# $0, 1, \dots, K-1$, using `noises[k]` (shape of `x0`) as the noise of step `k`; return the
# state after the last step. (`noises` has shape $(K, B, \dots)$.)

# %%
def my_walk(x0, noises, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("02.walk", my_walk)

# %% [markdown]
# **2. The jump.** Return $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ for a batch:
# `x0` and `noise` of shape $(B, \dots)$, `t` of shape $(B,)$.

# %%
def my_q_sample(x0, t, noise, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("02.q_sample", my_q_sample)

# %% [markdown]
# **3. The posterior mean** $\tilde\mu_t(x_t, x_0)$ for a batch (mind what $\bar\alpha_{t-1}$ is at
# the first step).

# %%
def my_posterior_mean(x0, x_t, t, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("02.posterior_mean", my_posterior_mean)

# %% [markdown]
# **4. A number.** The posterior variance $\tilde\beta_t$ of the linear schedule ($T = 1000$)
# at the **math's step $t = 10$**.

# %%
my_beta_tilde = None  # your number here

# %%
dc.exercises.check("02.beta_tilde", my_beta_tilde)
