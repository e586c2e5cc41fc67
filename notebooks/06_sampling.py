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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/06_sampling.ipynb)
#
# # 06 · DDPM sampling: running the fog backwards
#
# Lesson 05 trained a network $\epsilon_\theta(x_t, t)$ to guess the noise in a noisy sample.
# This lesson turns that guess into new data. We derive the reverse update from the posterior
# $q(x_{t-1} \mid x_t, x_0)$ of lesson 02, write the 1000-step sampling loop by hand, check it
# against the package, and then ask what its one free choice (the variance of each reverse
# step) does. To measure instead of eyeballing we first drive the sampler with an **exact**
# noise predictor: the Gaussian-mixture oracle, whose true distribution we know. Then we watch
# the fog clear, step by step, and end with reproducibility: what a seed fixes and what it
# does not.

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
# Parameters: how many 2-D points each oracle run draws. Every check below states its
# tolerance in Monte Carlo standard errors, so it holds at any size; more points only tighten
# the numbers. `DATASET = "digits"` samples from the shipped digits model; `"mnist"` or
# `"cifar10"` sample from a model you trained, given as `CHECKPOINT` (the `SAVE_AS` of lesson
# 05, or the `--out` of `ddpm-course train --preset mnist`), with the dataset's files in
# `DATA_ROOT` for comparison.

# %% tags=["parameters"]
N_POINTS = 1500
N_CHAINS = 8  # 1000-step image chains
SEED = 0
DATASET = "digits"
CHECKPOINT = None
DATA_ROOT = "data"

# %%
# NBVAL_IGNORE_OUTPUT
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.checkpoint import load_checkpoint
from ddpm_course.oracle import ring_mixture

device = dc.setup(seed=SEED)
if device.type == "cpu" and DATASET == "digits":
    # On a CPU, this lesson's tensors are small (2-D points, batches of eight 16x16 digits) and
    # splitting each operation across threads costs more than it saves. A GPU is not affected.
    torch.set_num_threads(1)

# %% [markdown]
# ## The reverse update, derived
#
# If we knew the clean image $x_0$, the step back from $x_t$ would be the posterior of
# lesson 02 (maths indices, $t = 1, \dots, T$):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\big(\tilde\mu_t(x_t, x_0),\ \tilde\beta_t \mathbf{I}\big),\qquad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\qquad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
#
# We do not know $x_0$, but the network's noise guess gives an estimate by inverting the jump
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$:
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}} .$$
#
# Substitute $\hat x_0$ for $x_0$ in $\tilde\mu_t$. Since $\sqrt{\bar\alpha_{t-1}}/\sqrt{\bar\alpha_t} = 1/\sqrt{\alpha_t}$
# and $\sqrt{\alpha_t} = \alpha_t/\sqrt{\alpha_t}$, three lines collect the $x_t$ terms:
#
# $$\begin{aligned}
# \tilde\mu_t &= \frac{\beta_t}{(1-\bar\alpha_t)\sqrt{\alpha_t}}\big(x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta\big)
#   + \frac{\alpha_t(1-\bar\alpha_{t-1})}{(1-\bar\alpha_t)\sqrt{\alpha_t}}\,x_t \\
# &= \frac{\beta_t + \alpha_t(1-\bar\alpha_{t-1})}{(1-\bar\alpha_t)\sqrt{\alpha_t}}\,x_t
#   - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}\,\sqrt{\alpha_t}}\,\epsilon_\theta \\
# &= \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta\Big),
# \end{aligned}$$
#
# where the last line uses $\beta_t + \alpha_t(1-\bar\alpha_{t-1}) = 1 - \alpha_t + \alpha_t - \bar\alpha_t = 1-\bar\alpha_t$
# (with $\bar\alpha_t = \alpha_t\bar\alpha_{t-1}$), the identity of lesson 02. Adding the step's noise gives
# the update of Ho et al. (2020), Algorithm 2:
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,
# \qquad z \sim \mathcal{N}(0, \mathbf{I}),$$
#
# with no noise at the very last step. Two ways of writing one mean: the next cell checks
# that they agree, and that the package's `ddpm_step` computes the same.
#
# **Steps in this lesson.** The formulas above count the math's way, $t = 1, \dots, T$. Everything
# the code prints and plots from here on is the code's 0-based `t` (0..999): `t = 999` is the
# math's step $T = 1000$, pure noise, and `t = 0` is the math's step 1, the last one.

# %%
schedule = dc.linear_schedule()  # the article's: beta from 1e-4 to 0.02, T = 1000
g = torch.Generator().manual_seed(SEED)
x_t = torch.randn(64, 2, dtype=torch.float64, generator=g)
eps = torch.randn(64, 2, dtype=torch.float64, generator=g)  # any noise guess will do for algebra

worst = 0.0
for t in (999, 500, 100, 1):  # code steps are 0-based: t here is the maths' t + 1
    beta, alpha, abar = schedule.betas[t].item(), schedule.alphas[t].item(), schedule.alpha_bars[t].item()
    eps_form = (x_t - beta / math.sqrt(1 - abar) * eps) / math.sqrt(alpha)
    x0_hat = dc.predict_x0(schedule, x_t, t, eps)
    posterior_form, _ = dc.q_posterior(schedule, x0_hat, x_t, t)
    package = samplers.ddpm_step(schedule, x_t, t, eps, torch.zeros_like(x_t)).x_prev  # zero noise: just the mean
    worst = max(worst, (eps_form - posterior_form).abs().max().item(), (eps_form - package).abs().max().item())
assert worst < 1e-9, worst  # float64 round-off is ~1e-13; a wrong coefficient shows at 1e-3
print("eps form = posterior form = package, up to float64 round-off (< 1e-9)")
assert worst < 1e-12

# %% [markdown]
# ## The whole loop, by hand
#
# Start from pure noise $x_T \sim \mathcal{N}(0, \mathbf{I})$ and apply the update for
# $t = T, \dots, 1$: $T = 1000$ network evaluations. Every random draw comes from one explicit
# generator, in a fixed order (first $x_T$, then one $z$ per step), which is what makes a seed
# reproduce a sample.
#
# The "network" here is the oracle of a ring of 8 Gaussians: because the data is a Gaussian
# mixture, every noised marginal $q(x_t)$ is a Gaussian mixture too and
# $\mathbb{E}[\epsilon \mid x_t]$, the best any network could learn, has a closed form. Any
# error left in the samples is then the sampler's own.

# %%
mixture = ring_mixture(k=8, radius=1.0, std=0.1)
oracle = mixture.as_model(schedule)  # model(x_t, t) -> eps, exactly E[eps | x_t]


def ddpm_by_hand(model, schedule, n, generator, variance="beta"):
    x = torch.randn(n, 2, dtype=torch.float64, generator=generator)  # x_T
    for t in range(schedule.T - 1, -1, -1):
        eps = model(x, torch.full((n,), t))
        beta, alpha, abar = schedule.betas[t], schedule.alphas[t], schedule.alpha_bars[t]
        mean = (x - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
        if t == 0:
            return mean  # the last step adds no noise
        var = beta if variance == "beta" else schedule.posterior_variance[t]
        x = mean + var.sqrt() * torch.randn(n, 2, dtype=torch.float64, generator=generator)


mine = ddpm_by_hand(oracle, schedule, 200, torch.Generator().manual_seed(1))
gen = torch.Generator().manual_seed(1)
x_T = torch.randn(200, 2, dtype=torch.float64, generator=gen)  # the same first draw...
package = samplers.ddpm_sample(oracle, schedule, x_T, generator=gen)  # ...then the same 999 noises
assert (mine - package).abs().max().item() < 1e-9
print("hand-written loop = dc.samplers.ddpm_sample, up to float64 round-off (< 1e-9)")
assert torch.allclose(mine, package, atol=1e-10)

# %% [markdown]
# ## Does it reproduce the data?
#
# 1000 steps with the exact noise predictor on `N_POINTS` points, against fresh draws from the
# mixture. Two numbers summarise the picture: the share of samples near each of the 8 modes,
# and how tightly the samples hug their mode (the mean distance to the nearest mode centre,
# as a ratio to the truth's; 1 is right). The callback records the chain every 50 steps for
# the pictures further down.

# %%
frames = {}  # t -> (x_t, x0_hat)


def record(i, t, x_t, x0_hat):
    if t % 50 == 0 or t in (999, 25, 10, 5):
        frames[t] = (x_t.clone(), x0_hat.clone())


x_T = torch.randn(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED))
samples = {
    "beta": samplers.ddpm_sample(oracle, schedule, x_T, generator=torch.Generator().manual_seed(SEED + 1), callback=record),
    "posterior": samplers.ddpm_sample(oracle, schedule, x_T, generator=torch.Generator().manual_seed(SEED + 1), variance="posterior"),
}
truth = mixture.sample(20 * N_POINTS, torch.Generator().manual_seed(SEED + 2))
truth_spread = mixture.nearest_mean_distance(truth).mean().item()

labels = torch.cdist(samples["beta"], mixture.means).argmin(1)
shares = torch.bincount(labels, minlength=8).double() / N_POINTS
se = math.sqrt(0.125 * 0.875 / N_POINTS)
print("share per mode:", " ".join(f"{s:.3f}" for s in shares.tolist()), f"(truth 0.125 each, standard error {se:.3f})")
assert torch.all((shares - 0.125).abs() < 4 * se)
spread_se = mixture.nearest_mean_distance(truth).std().item() / math.sqrt(N_POINTS) / truth_spread
for name, x in samples.items():
    ratio = mixture.nearest_mean_distance(x).mean().item() / truth_spread
    print(f"sigma^2 = {name:9s}: spread ratio {ratio:.3f} (standard error {spread_se:.3f})")

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
dc.viz.plot_points(truth[:N_POINTS], ax=axes[0], title="data (fresh draws)", lim=1.6)
dc.viz.plot_points(samples["beta"], ax=axes[1], title=r"DDPM, $\sigma_t^2=\beta_t$", lim=1.6)
dc.viz.plot_points(samples["posterior"], ax=axes[2], title=r"DDPM, $\sigma_t^2=\tilde\beta_t$", lim=1.6)
plt.show()

# %% [markdown]
# ## The one free choice: $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$
#
# The derivation fixed the mean of each reverse step but not its variance. Ho et al. tried
# two values and saw similar results:
#
# - $\sigma_t^2 = \tilde\beta_t$, the posterior's variance: right if the data were a single
#   point (then $q(x_{t-1} \mid x_t)$ *is* the posterior);
# - $\sigma_t^2 = \beta_t$: right if the data were pure Gaussian noise $\mathcal{N}(0, \mathbf{I})$.
#
# Real data sits in between, so one adds a little too much noise and the other a little too
# little. The two differ only where $\bar\alpha_{t-1}$ is close to 1, the last few dozen steps:

# %%
ratio = schedule.posterior_variance / schedule.betas
for t in (0, 1, 5, 20, 100, 999):
    print(f"t={t:4d}: beta_tilde / beta = {ratio[t].item():.4f}")
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.semilogx(torch.arange(1, schedule.T), ratio[1:])
ax.set_xlabel("code step t (0-based, log scale; t = 0, where the ratio is 0, left out)")
ax.set_ylabel(r"$\tilde\beta_t / \beta_t$")
plt.show()

# %% [markdown]
# With 1000 steps the posterior choice lands on the truth and $\beta_t$ is a few percent too
# wide (above). The difference grows when the chain is short: the same schedule shape squeezed into fewer steps (betas scaled up so that
# the chain still ends in noise). The oracle measures the spread each choice produces:

# %%
rows = [(1000, v, mixture.nearest_mean_distance(x).mean().item() / truth_spread) for v, x in samples.items()]
for T, beta_end in ((100, 0.2), (50, 0.4)):
    short = dc.linear_schedule(T, 1e-4 * 1000 / T, beta_end)
    model = mixture.as_model(short)
    start = torch.randn(N_POINTS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED))
    for variance in ("beta", "posterior"):
        x = samplers.ddpm_sample(model, short, start, generator=torch.Generator().manual_seed(SEED + 1), variance=variance)
        rows.append((T, variance, mixture.nearest_mean_distance(x).mean().item() / truth_spread))
for T, variance, r in rows:
    print(f"T={T:5d}  sigma^2 = {variance:9s}  spread ratio {r:.3f}")
short_rows = {(T, v): r for T, v, r in rows}
assert abs(short_rows[(1000, "posterior")] - 1) < 4 * spread_se
assert all(short_rows[(T, "beta")] > short_rows[(T, "posterior")] for T in (1000, 100, 50))
assert short_rows[(50, "beta")] > 1 + 4 * spread_se and short_rows[(50, "posterior")] < 1 - 4 * spread_se
print("short chains: beta_t spreads the samples too wide, beta_tilde_t too narrow; the truth lies between")

# %% [markdown]
# ## Watching the fog clear
#
# Each step also yields the model's current guess of the clean data, $\hat x_0$. Early on
# (large $t$) the guess is the average of everything $x_t$ could have come from: for the ring
# that is a point near the centre. As the noise drops, $\hat x_0$ first commits to a mode,
# then to a place inside it, while $x_t$ itself only sharpens at the very end.

# %%
show = [999, 600, 300, 150, 50, 10, 0]
_ = dc.viz.plot_chain([frames[t][0] for t in show], [frames[t][1] for t in show], show, lim=1.8)
plt.show()

# %% [markdown]
# The same recorded chain behind a slider: a pure function draws frame `k` and returns its
# step, and `widgets.interactive` wires it to the slider; the cell moves the slider the way
# a test would and checks what the function returned.

# %%
recorded = sorted(frames, reverse=True)  # t from noisy to clean


def chain_frame(k: int) -> int:
    t = recorded[k]
    x_t, x0_hat = frames[t]
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.2))
    dc.viz.plot_points(x_t, ax=axes[0], title=f"x_t at t={t}", lim=1.8)
    dc.viz.plot_points(x0_hat, ax=axes[1], title="x0_hat", lim=1.8)
    plt.show()
    return t


# %%
# NBVAL_IGNORE_OUTPUT
explorer = widgets.interactive(chain_frame, k=widgets.IntSlider(value=0, min=0, max=len(recorded) - 1, description="frame"))
explorer.children[0].value = len(recorded) - 1
assert explorer.result == 0
explorer.children[0].value = 0
assert explorer.result == 999
display(explorer)

# %% [markdown]
# ## A trained network instead of the oracle
#
# The shipped `toy2d` model is the small MLP of lesson 05 trained on points from this same
# ring, with batches of 1024 for 3000 steps (lesson 05 shows that a short run with small
# batches smears the modes into a continuous ring). Same sampler, same 1000 steps; only the
# noise predictor changes. A trained network's $\hat\epsilon$ is smoother than the exact one, so we
# expect eight separate modes, each somewhat wider than the data's. Three checks: every mode's
# share, the spread ratio, and the share of samples *between* modes (farther than 3 widths,
# 0.3, from every centre); a smeared ring passes the first and fails the other two. A smeared
# ring, points at uniform angles with the modes' radial width, is scored first; the trained
# model's numbers go through an assert with stated thresholds rather than being printed.

# %%
def between_modes(x):
    return (mixture.nearest_mean_distance(x) > 0.3).double().mean().item()


g_smear = torch.Generator().manual_seed(SEED + 3)
angle = 2 * math.pi * torch.rand(N_POINTS, generator=g_smear, dtype=torch.float64)
smeared = torch.stack([angle.cos(), angle.sin()], dim=1) + 0.1 * torch.randn(N_POINTS, 2, generator=g_smear, dtype=torch.float64)
print(f"between modes: data {between_modes(truth[:N_POINTS]):.3f}, exact-eps samples {between_modes(samples['beta']):.3f}, "
      f"smeared ring {between_modes(smeared):.3f}; spread ratio of the smeared ring "
      f"{mixture.nearest_mean_distance(smeared).mean().item() / truth_spread:.2f}")
assert between_modes(smeared) > 0.05 and mixture.nearest_mean_distance(smeared).mean().item() / truth_spread > 1.5

# %%
toy = dc.pretrained("toy2d", device=device)
toy_samples = samplers.ddpm_sample(toy.model, toy.schedule, (N_POINTS, 2), generator=torch.Generator().manual_seed(SEED)).cpu()
toy_shares = torch.bincount(torch.cdist(toy_samples.double(), mixture.means).argmin(1), minlength=8).double() / N_POINTS
toy_spread = mixture.nearest_mean_distance(toy_samples).mean().item() / truth_spread
assert torch.all((toy_shares > 0.125 / 2) & (toy_shares < 0.125 * 1.5)), toy_shares
assert 0.8 < toy_spread < 1.5, toy_spread
assert between_modes(toy_samples) < 0.05, between_modes(toy_samples)
print("trained MLP: every mode gets between half and 1.5x its share; modes at most 1.5x as wide as the data's; "
      "fewer than 5% of the samples between modes (a smeared ring fails the last two)")

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
dc.viz.plot_points(truth[:N_POINTS], ax=axes[0], title="data", lim=1.6)
dc.viz.plot_points(samples["beta"], ax=axes[1], title="DDPM + exact eps", lim=1.6)
dc.viz.plot_points(toy_samples, ax=axes[2], title="DDPM + trained MLP", lim=1.6)
plt.show()

# %% [markdown]
# ## Digits from the shipped model
#
# The shipped `digits` model is the course U-Net trained in lesson 05 on the 16x16 digits.
# Here are `N_CHAINS` full 1000-step chains, $x_t$ on top and $\hat x_0$ below: the guess
# settles on a digit long before the state itself looks like one.

# %%
train_set = dc.data.load_images(DATASET, "train", root=DATA_ROOT, download=True)
if DATASET == "digits" and CHECKPOINT is None:
    ckpt = dc.pretrained("digits", device=device)
else:
    if CHECKPOINT is None:
        raise ValueError(f"DATASET = {DATASET!r} needs CHECKPOINT: the path of a model trained on it "
                         "(SAVE_AS in lesson 05, or --out of `ddpm-course train --preset ...`)")
    ckpt = load_checkpoint(CHECKPOINT, device=device)
    if tuple(ckpt.sample_shape) != tuple(train_set.images.shape[1:]):
        raise ValueError(f"CHECKPOINT makes samples of shape {tuple(ckpt.sample_shape)}, "
                         f"but {DATASET} images have shape {tuple(train_set.images.shape[1:])}")
digit_frames = {}


def record_digits(i, t, x_t, x0_hat):
    if t in show:
        digit_frames[t] = (x_t.clone(), x0_hat.clone())


digit_samples = samplers.ddpm_sample(
    ckpt.model, ckpt.schedule, (N_CHAINS, *ckpt.sample_shape), generator=torch.Generator().manual_seed(SEED), callback=record_digits
).cpu()
_ = dc.viz.plot_chain([digit_frames[t][0] for t in show], [digit_frames[t][1] for t in show], show)
plt.show()

# %% [markdown]
# A trained model's output goes through an assert, against two baselines: every chain should
# end nearer (in pixels) to some training digit than a blank canvas is, and the course's digit
# classifier (the one behind the Frechet distances of lessons 05 and 07, and of lesson 10 on
# evaluation) should be confident (probability
# above 0.9) on at least half the samples. It is on almost all real held-out digits and on
# hardly any noise images; the cell checks both baselines too. A model of your own
# (`CHECKPOINT`) gets a report instead of an assert: a short run may not be there yet, and the
# classifier knows only the 16x16 digits.

# %%
train_images = train_set.images.flatten(1)  # (N, C * H * W)


def nearest_train_distance(images):
    return torch.cdist(images.flatten(1).float(), train_images).min(dim=1).values


blank = nearest_train_distance(-torch.ones(1, *ckpt.sample_shape))
nearer = (nearest_train_distance(digit_samples.clamp(-1, 1)) < blank).double().mean().item()
if CHECKPOINT is None:
    assert nearer == 1, nearer
    classifier = dc.metrics.digit_classifier()
    noise_images = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(SEED)).clamp(-1, 1)
    with torch.no_grad():
        confident = (classifier(digit_samples.clamp(-1, 1)).softmax(1).max(1).values > 0.9).double().mean()
        confident_real = (classifier(dc.digits(16, split="test").images).softmax(1).max(1).values > 0.9).double().mean()
        confident_noise = (classifier(noise_images).softmax(1).max(1).values > 0.9).double().mean()
    assert confident_real > 0.8 and confident_noise < 0.2
    assert confident >= 0.5, confident
    print("every chain ends nearer to a training digit than a blank canvas is; "
          "the classifier is confident on at least half of them (as on real digits, unlike on noise)")
else:
    print(f"your model: {nearer:.0%} of the chains end nearer to a training image than a blank canvas is"
          + ("" if nearer == 1 else "; train longer"))

# %% [markdown]
# ## Seeds and reproducibility
#
# A sample is a deterministic function of the model and of the random numbers it consumed:
# $x_T$ and the 999 step noises. Fix the generator's seed and everything is fixed. With a
# shape instead of a starting tensor, the package draws $x_T$ itself, as float32 on the
# model's device; all noise is drawn on the CPU and then moved, so a seed gives the same
# noise on a laptop and on a GPU.

# %%
def draw(seed: int, n: int = 300) -> torch.Tensor:
    return samplers.ddpm_sample(oracle, schedule, (n, 2), generator=torch.Generator().manual_seed(seed))


a, b, c = draw(7), draw(7), draw(8)
assert torch.equal(a, b)
assert not torch.allclose(a, c)
d1, d2 = (samplers.ddim_sample(ckpt.model, ckpt.schedule, (4, *ckpt.sample_shape), steps=20, generator=torch.Generator().manual_seed(7)) for _ in range(2))
assert torch.equal(d1, d2)
print("same seed: identical samples (points and digits); another seed: different samples")

# %% [markdown]
# What a seed cannot fix is arithmetic. A GPU adds numbers in another order than a CPU
# (and may use lower precision), so its results differ in the last digits, and a 1000-step
# chain carries those differences along. We can imitate that on the CPU: nudge $x_T$ by one
# part in $10^7$ (float32's round-off) and run the same chain with the same noise.

# %%
gen = torch.Generator().manual_seed(7)
start = torch.randn(300, 2, dtype=torch.float64, generator=gen)
state = gen.get_state()
base = samplers.ddpm_sample(oracle, schedule, start, generator=torch.Generator().set_state(state))
nudged = samplers.ddpm_sample(oracle, schedule, start * (1 + 1e-7), generator=torch.Generator().set_state(state))
drift = (nudged - base).norm(dim=1)
assert drift.max() < 1e-4
print("a 1e-7 nudge of x_T moves the final samples by less than 1e-4: "
      "same seed on another device gives the same samples up to round-off, not bit for bit")

# %% [markdown]
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Steps are the
# code's, 0-based. Reference answers are in `solutions/06_sampling.py`.
#
# **1. One DDPM reverse step** with $\sigma_t^2 = \beta_t$, for a batch: `x_t`, `eps` (the network's
# guess) and `z` (fresh noise) of shape $(B, \dots)$, and `t` of shape $(B,)$, one step per
# sample, from 0 to $T-1$. Remember the last step.

# %%
def my_ddpm_step(x_t, t, eps, z, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("06.ddpm_step", my_ddpm_step)

# %% [markdown]
# **2. The whole loop.** Run the reverse chain from `x_T` down to $x_0$ with the noise predictor
# `model(x_t, t)`, using `noises[k]` as the fresh noise of the $k$-th step you take (`noises` has
# $T - 1$ entries: the last step needs none). The check uses a short schedule, $T = 20$.

# %%
def my_ddpm_loop(model, x_T, noises, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("06.ddpm_loop", my_ddpm_loop)

# %% [markdown]
# **3. A number.** At the **math's step $t = 2$** of the linear schedule, by what factor is the
# standard deviation of the reverse step's noise larger with $\sigma_t^2 = \beta_t$ than with
# $\sigma_t^2 = \tilde\beta_t$?

# %%
my_std_ratio = None  # your number here

# %%
dc.exercises.check("06.std_ratio", my_std_ratio)
