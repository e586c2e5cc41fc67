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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/05_training.ipynb)
#
# # 05 · Loss and training
#
# Lesson 04 built the noise predictor $\epsilon_\theta(x_t, t)$; this one teaches it. We
#
# 1. derive the DDPM loss from the variational bound (the ELBO) and see which weights the
#    simple loss $L_\text{simple}$ throws away, and why that is allowed;
# 2. train a small MLP on a 2-D toy set in seconds and compare its loss with the exact
#    optimum, which the Gaussian-mixture oracle gives us;
# 3. train the course U-Net on the digits with the course recipe for a few hundred steps, with
#    a progress bar, and get digits you can read;
# 4. look at the loss per noise level, at EMA versus raw weights and the EMA's pitfall, and
#    save and reload a checkpoint;
# 5. draw digits from the model shipped with the package, trained the same way for longer.

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

# %%
# NBVAL_IGNORE_OUTPUT
import json
import math
import tempfile
from fractions import Fraction
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import ddpm_course as dc
from ddpm_course import losses, metrics, models, samplers
from ddpm_course.checkpoint import load_checkpoint, save_checkpoint
from ddpm_course.oracle import ring_mixture
from ddpm_course.train import PRESETS, ema_decay_at, train

device = dc.setup(seed=0)

# %% [markdown]
# Parameters. `DATASET` is `"digits"` (offline, 16x16, the course U-Net of the `digits` preset)
# or, with a GPU and a network, `"mnist"` or `"cifar10"` (32x32, downloaded through torchvision
# into `DATA_ROOT`), which train the bigger U-Net and recipe of the preset of that name
# (`ddpm-course train --preset mnist` runs the same recipe to the end). `TRAIN_STEPS = 300`
# takes one to two minutes on two CPU cores for the digits; with a GPU, or more patience, raise
# it towards the preset's own budget (3000 for the digits, 20,000 for MNIST, 100,000 for
# CIFAR-10). The budget is counted in steps, not minutes, so that a run does the same work on
# every machine. `BATCH_SIZE = None` keeps the preset's 128 (lower it if a GPU runs out of
# memory); `N_SAMPLES` is how many samples your run draws at the end; `SAVE_AS`, a path
# without suffix, keeps your trained model as a checkpoint that lesson 06 can load (an
# existing one is never overwritten).

# %% tags=["parameters"]
DATASET = "digits"
DATA_ROOT = "data"
TRAIN_STEPS = 300
BATCH_SIZE = None
N_SAMPLES = 64
TOY_STEPS = 1500
SEED = 0
SAVE_AS = None

# %% [markdown]
# ## 1. From the ELBO to $L_\text{simple}$
#
# The model's reverse chain $p_\theta(x_{0:T})$ is trained by maximising a lower bound on
# $\log p_\theta(x_0)$. Written with the forward process $q$, the negative bound splits
# into one term per step (Ho et al. 2020, eq. 5):
#
# $$
# L = \mathbb{E}_q\Big[\underbrace{D_\text{KL}(q(x_T\mid x_0)\,\|\,p(x_T))}_{L_T}
#   + \sum_{t>1} \underbrace{D_\text{KL}(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))}_{L_{t-1}}
#   \underbrace{-\log p_\theta(x_0\mid x_1)}_{L_0}\Big].
# $$
#
# $L_T$ has no parameters. Each $L_{t-1}$ compares two Gaussians: the posterior
# $q(x_{t-1}\mid x_t, x_0)$ of lesson 02, with variance $\tilde\beta_t$, and the model's step
# $p_\theta(x_{t-1}\mid x_t)$, with a fixed variance $\sigma_t^2$ (lesson 06 discusses the two usual
# choices, $\tilde\beta_t$ and $\beta_t$). Only for $\sigma_t^2 = \tilde\beta_t$ do the two Gaussians
# have the same variance; for any fixed $\sigma_t^2$, though, the KL is the squared distance of
# the means over $2\sigma_t^2$ plus terms without $\theta$.
#
# The posterior mean can be written with the noise instead of $x_0$: substitute
# $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$ (the jump, solved for $x_0$) into
# lesson 02's $\tilde\mu_t$ and collect the $x_t$ terms (lesson 06 writes out the three lines):
# $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\epsilon\big)$.
# The model's mean $\mu_\theta$ takes the same form with $\epsilon_\theta(x_t, t)$ in place of the
# true noise $\epsilon$, so the means differ only through the noise:
#
# $$
# L_{t-1} = \frac{\|\tilde\mu_t - \mu_\theta\|^2}{2\sigma_t^2} + C
#         = \underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}}_{\lambda_t}
#           \,\|\epsilon - \epsilon_\theta(x_t, t)\|^2 + C .
# $$
#
# $L_\text{simple}$ sets every $\lambda_t$ to 1, draws $t$ uniformly and averages over pixels:
#
# $$
# L_\text{simple} = \mathbb{E}_{t,\,x_0,\,\epsilon}\Big[\big\|\epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\|^2\Big].
# $$
#
# First the weights, computed by hand from the schedule's tables and checked against
# `losses.elbo_weights` (with $\sigma_t^2 = \tilde\beta_t$; code steps are 0-based, so code
# step 0 is the math's $t=1$, where the package uses the next step's $\tilde\beta$).

# %%
schedule = dc.linear_schedule(1000)
sigma2 = schedule.posterior_variance.clone()
sigma2[0] = sigma2[1]
lam_by_hand = schedule.betas**2 / (2 * sigma2 * schedule.alphas * (1 - schedule.alpha_bars))
lam = losses.elbo_weights(schedule)
assert torch.allclose(lam_by_hand, lam, rtol=1e-12)
for t in (0, 9, 99, 499, 999):
    print(f"t = {t:3d}: lambda_t = {lam[t].item():.4g}")
print(f"lambda at t=0 over lambda at t=999: {(lam[0] / lam[-1]).item():.1f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(lam.numpy(), label=r"ELBO weight $\lambda_t$")
ax.axhline(1.0, color="k", ls="--", lw=1, label=r"$L_\mathrm{simple}$: 1")
ax.set_xlabel("t (0-based)")
ax.set_ylabel("weight per pixel error")
ax.legend()
plt.show()

# %% [markdown]
# **Why dropping the weights still works.** For each $t$, the function that minimises
# $\mathbb{E}\|\epsilon - \epsilon_\theta(x_t, t)\|^2$ is the conditional mean
# $\mathbb{E}[\epsilon \mid x_t]$, whatever positive weight sits in front: the network sees
# $t$ as an input, so it can fit each noise level separately and every weighting has the same
# optimum. The weights only decide where the finite capacity and the gradient steps go. The
# ELBO's $\lambda_t$ puts most of them on the smallest $t$, where the images are almost clean
# and the errors are invisible; $L_\text{simple}$ moves effort to the noisier steps that shape
# the sample, and Ho et al. found better samples that way (a worse bound, though).
#
# The loss in code is a few lines. By hand, for fixed $t$ and noise, against `losses.l_simple`:

# %%
toy_model = models.MLPDenoiser(models.MLPConfig(dim=2, hidden=32, depth=2, time_dim=16, num_classes=None))
g = torch.Generator().manual_seed(SEED)
x0 = dc.toy2d("mixture", n=256, generator=g)
t = torch.randint(0, schedule.T, (256,), generator=g)
eps = torch.randn(x0.shape, generator=g)
abar = schedule.alpha_bars[t].float()[:, None]  # (B, 1)
x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
with torch.no_grad():
    by_hand = (eps - toy_model(x_t, t)).pow(2).mean()
    package = losses.l_simple(toy_model, schedule, x0, t=t, noise=eps)
assert torch.allclose(by_hand, package, atol=1e-6)
print("l_simple equals the mean squared noise error computed by hand")

# %% [markdown]
# ## 2. A 2-D toy in seconds
#
# The course's 2-D toy, a ring of 8 Gaussians (`dc.toy2d("mixture")`, which lesson 06 samples
# step by step), comes with an exact noise predictor (the oracle), so we
# know the lowest loss any network can reach: $\mathbb{E}[\epsilon\mid x_t]$ leaves an
# irreducible error wherever $x_t$ does not tell which noise was added. `train` is the loop
# used everywhere in the course: AdamW, a learning-rate warm-up then a cosine decay, gradient
# clipping, an exponential moving average (EMA) of the weights, a progress bar, and a guard that
# stops on a NaN loss. Every random draw comes from the generator we pass.

# %%
# NBVAL_IGNORE_OUTPUT
toy_data = dc.toy2d("mixture", n=8192, generator=torch.Generator().manual_seed(SEED))
torch.manual_seed(SEED)
mlp = models.build_model("MLPDenoiser", PRESETS["toy2d"].model_config)
toy = train(mlp, schedule, toy_data, steps=TOY_STEPS, batch_size=256, lr=1e-3, warmup_steps=100, ema_decay=0.99,
            generator=torch.Generator().manual_seed(SEED))
print(f"{toy.steps} steps in {toy.seconds:.1f} s, loss {sum(toy.losses[:50]) / 50:.3f} -> {sum(toy.losses[-50:]) / 50:.3f}")

# %% [markdown]
# The loss per noise level (`losses.loss_by_t`: the same images and noise in every bucket of
# $t$) for the trained MLP and for the oracle. The oracle's curve is the floor: at large $t$
# the noise is almost all of $x_t$ and easy to name, at small $t$ it is tangled with the data.

# %%
test_points = dc.toy2d("mixture", n=2048, generator=torch.Generator().manual_seed(SEED + 1))
oracle = ring_mixture().as_model(schedule)
by_t_model = losses.loss_by_t(toy.final_model, schedule, test_points, generator=torch.Generator().manual_seed(2))
by_t_oracle = losses.loss_by_t(oracle, schedule, test_points, generator=torch.Generator().manual_seed(2))
print("oracle (the floor) per bucket of 100 steps:", " ".join(f"{v:.3f}" for v in by_t_oracle.loss.tolist()))
excess = by_t_model.loss.mean().item() / by_t_oracle.loss.mean().item()
assert excess < 1.15, excess
print("the MLP's loss averaged over t is within 15% of the oracle's")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
centres = (by_t_model.edges[:-1] + by_t_model.edges[1:]) / 2
ax.plot(centres, by_t_model.loss, "o-", label="trained MLP")
ax.plot(centres, by_t_oracle.loss, "k--", label="oracle (lowest possible)")
ax.set_xlabel("t")
ax.set_ylabel(r"$L_\mathrm{simple}$ in bucket")
ax.legend()
plt.show()

# %% [markdown]
# **Samples, and how to tell a good ring from a smeared one.** Before sampling the MLP (the plain
# DDPM loop, which lesson 06 takes apart), two references: fresh data, and a *smeared ring*,
# points spread evenly around the circle with the modes' radial width. A model that has learnt
# the ring but not the gaps between its modes draws something like the second. Two measures:
# the sliced Wasserstein distance to held-out data (the average over random 1-D projections)
# and the share of points *between modes*, farther than 3 widths (0.3) from every mode centre
# (about 1% for the data).

# %%
ring = ring_mixture()
fresh = dc.toy2d("mixture", n=1000, generator=torch.Generator().manual_seed(4))
g_smear = torch.Generator().manual_seed(5)
angle = 2 * math.pi * torch.rand(1000, generator=g_smear, dtype=torch.float64)
smeared = torch.stack([angle.cos(), angle.sin()], dim=1) + 0.1 * torch.randn(1000, 2, generator=g_smear, dtype=torch.float64)


def sliced_w2(x):
    return metrics.sliced_wasserstein(x, test_points[:1000], generator=torch.Generator().manual_seed(0))


def between_modes(x):
    return (ring.nearest_mean_distance(x) > 0.3).double().mean().item()


print(f"{'':13s} {'sliced W2':>9s} {'between modes':>14s}")
for name, x in (("fresh data", fresh), ("smeared ring", smeared)):
    print(f"{name:13s} {sliced_w2(x):9.4f} {between_modes(x):14.3f}")
assert sliced_w2(smeared) < 2.5 * sliced_w2(fresh)  # a check on sliced W2 alone lets a smeared ring pass
assert between_modes(smeared) > 0.05 > between_modes(fresh)
print("sliced W2 cannot tell the smeared ring from the data; the share between modes can (threshold 5%)")

# %% [markdown]
# Now the MLP just trained, and the shipped `toy2d` model: the same network trained by
# `ddpm-course train --preset toy2d`, with batches of 1024 points for 3000 steps (about a
# minute on a quiet CPU, too long for this lesson).

# %%
toy_samples = samplers.ddpm_sample(toy.final_model, schedule, (1000, 2), generator=torch.Generator().manual_seed(3))
shipped_toy = dc.pretrained("toy2d")
shipped_samples = samplers.ddpm_sample(shipped_toy.model, shipped_toy.schedule, (1000, 2), generator=torch.Generator().manual_seed(3))
assert between_modes(shipped_samples) < 0.05, between_modes(shipped_samples)
print("shipped toy2d model: fewer than 5% of its samples between modes, the eight modes are separate")
separated = between_modes(toy_samples) < 0.05
print(f"this lesson's {toy.steps}-step run: " + ("the modes are separate too" if separated else
      "more than 5% between modes, the gaps are filled in (a smeared ring)"))

# %%
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.5))
dc.viz.plot_points(test_points[:1000], ax=axes[0], title="data")
dc.viz.plot_points(toy_samples, ax=axes[1], title=f"DDPM, MLP after {toy.steps} steps")
dc.viz.plot_points(shipped_samples, ax=axes[2], title="DDPM, shipped toy2d")
plt.show()

# %% [markdown]
# What the middle panel shows: the short run has learnt the ring, and its loss is within 15%
# of the floor on average, but it fills the gaps between the modes. The loss-by-$t$ figure
# says where: its excess over the oracle sits at small $t$, where the noise is small and the
# best $\hat\epsilon$ changes quickly across the edge of a mode. Getting that right needs
# more accurate gradients (bigger batches) and more steps, which is what the shipped model
# had; its modes are separate, a little wider than the data's (lesson 06 measures by how
# much).

# %% [markdown]
# ## 3. The digits, with the course recipe
#
# The same loop trains the course U-Net of lesson 04 on the digits' train split (the test
# split stays held out for scoring), with the course recipe: the `digits` preset's settings
# (AdamW at $10^{-3}$, a cosine decay, gradient clipping, batches of 128, an EMA with decay
# 0.999 and its warm-up), except that the learning-rate warm-up is cut from 200 steps to a
# fifteenth of the run (20 steps here), since the run is short. The README's training-budget
# benchmark measures this recipe: four minutes on two CPU cores reach a Frechet distance 1.35
# times the real-data floor. With `DATASET = "mnist"` or `"cifar10"` the preset of that name
# supplies the model and the recipe instead.

# %%
if DATASET not in ("digits", "mnist", "cifar10"):
    raise ValueError(f'DATASET must be "digits", "mnist" or "cifar10"; got {DATASET!r}')
preset = PRESETS[DATASET]
images = dc.data.load_images(DATASET, "train", root=DATA_ROOT, download=True)
config = preset.model_config
torch.manual_seed(SEED)
unet = models.build_model("UNet", config)
print(f"{len(images.images)} training images of shape {tuple(images.images.shape[1:])}; "
      f"U-Net with {models.count_parameters(unet):,} parameters")

# %%
# NBVAL_IGNORE_OUTPUT
recipe = dict(preset.train_kwargs(), warmup_steps=min(preset.warmup_steps, TRAIN_STEPS // 15))
if BATCH_SIZE is not None:
    recipe["batch_size"] = BATCH_SIZE
print({key: recipe[key] for key in ("batch_size", "lr", "warmup_steps", "grad_clip", "ema_decay", "optimizer")})
run = train(unet, schedule, images, steps=TRAIN_STEPS, generator=torch.Generator().manual_seed(SEED), device=device, **recipe)
print(f"{run.steps} steps in {run.seconds:.0f} s ({run.images_per_second:.0f} images/s)")

# %%
k = min(20, run.steps // 2)
first, last = sum(run.losses[:k]) / k, sum(run.losses[-k:]) / k
assert last < 0.5 * first, (first, last)
print("the loss fell to less than half of its starting value")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(run.losses, lw=0.5, alpha=0.5, label="per step")
smooth = torch.tensor(run.losses).unfold(0, 10, 1).mean(1) if run.steps >= 10 else torch.tensor(run.losses)
ax.plot(range(len(run.losses) - len(smooth), len(run.losses)), smooth, label="mean of 10")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel(r"$L_\mathrm{simple}$")
ax.legend()
plt.show()

# %% [markdown]
# **EMA versus raw weights.** The raw weights jump around with every noisy batch; their
# moving average $w_\text{ema} \leftarrow d\,w_\text{ema} + (1-d)\,w$ (here through
# `torch.optim.swa_utils`) smooths that out, and it averages about the last $1/(1-d)$ steps.
# That is a benefit once the raw weights have settled and only jitter around a good
# solution. In a short run the loss is still falling, so the average also remembers worse,
# earlier weights; the decay's warm-up (below) keeps the average short early on, about the
# last ninth of the run here. The held-out loss (same $t$ and noise for both) tells which set
# is better for this run. Both numbers come from a freshly trained network, whose last digits
# differ between CPUs and GPUs, so they are shown, not checked.

# %%
# NBVAL_IGNORE_OUTPUT
held_out = dc.data.load_images(DATASET, "test", root=DATA_ROOT).images[:256]
for name, net in (("raw", run.model), ("EMA", run.ema_model)):
    by_t = losses.loss_by_t(net.to(device), schedule, held_out.to(device), generator=torch.Generator().manual_seed(5))
    print(f"{name:3s} weights: held-out L_simple {by_t.loss.mean().item():.4f}")

# %% [markdown]
# **A pitfall: a fixed EMA decay and a zero-initialised layer.** With a fixed decay $d$ the
# average keeps the weight $d^{\,n-1}$ on the starting weights after $n$ updates (the first
# update copies them). The U-Net's output convolution starts at zero (lesson 04), so whatever
# share of the start the average keeps, it keeps of a network that predicts $\hat\epsilon = 0$:
# its noise predictions come out too short at every noise level. A sampler that re-injects
# noise shrugs a few percent off; a deterministic one (lesson 07) turns a too-short
# $\hat\epsilon$ at $t$ near $T$ into a far-off
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$ and never recovers. The
# cure, which `train` uses, is a decay that warms up: $d_k = \min(d, (1+k)/(10+k))$ for the
# $k$-th update (the rule of diffusers' `EMAModel`). The weight left on the start is then
# $\prod_{k=1}^{n-1} d_k = 10!\,n!/(n+9)!$, which the cell computes exactly, for this run and
# for the shipped model's 3000 updates.

# %%
for n_updates in (TRAIN_STEPS, 3000):
    fixed = 0.999 ** (n_updates - 1)  # the first update copies the start; n - 1 averaging updates follow
    warm = math.prod(ema_decay_at(k, 0.999) for k in range(1, n_updates))
    exact = Fraction(math.factorial(10) * math.factorial(n_updates), math.factorial(n_updates + 9))
    print(f"weight on the starting weights after {n_updates} updates: fixed decay {fixed:.4f}, with warm-up {warm:.2e}")
    assert abs(warm / float(exact) - 1) < 1e-9
print("with warm-up it equals 10! n! / (n + 9)! (to 1e-9)")

# %% [markdown]
# What a fixed decay would have done to this run, measured. The untrained network is rebuilt
# from the same seed, and a stand-in for the fixed-decay average is formed: the share
# $c = 0.999^{\,n-1}$ of the starting weights plus $1 - c$ of the warmed-up average (the part
# the raw weights contribute is approximated by the average we have). `losses.eps_scale`
# measures $\lVert\hat\epsilon\rVert / \lVert\epsilon\rVert$ on held-out digits at a high and a middle
# noise level; near $t = T$ the right answer is almost exactly 1.

# %%
torch.manual_seed(SEED)
start = models.build_model("UNet", config).to(device)  # the same initial weights as the run's
c = 0.999 ** (run.steps - 1)
fixed_ema = models.build_model("UNet", config).to(device)
with torch.no_grad():
    for p_fixed, p_start, p_ema in zip(fixed_ema.parameters(), start.parameters(), run.ema_model.parameters()):
        p_fixed.copy_(c * p_start + (1 - c) * p_ema.to(device))
scales = {name: [losses.eps_scale(net, schedule, held_out.to(device), t, generator=torch.Generator().manual_seed(t))
                 for t in (999, 500)] for name, net in (("warmed-up EMA", run.ema_model.to(device)), ("fixed decay", fixed_ema))}

# %%
# NBVAL_IGNORE_OUTPUT
for name, (high, mid) in scales.items():
    print(f"{name:14s} |eps_hat| / |eps|: t = 999 {high:.3f}, t = 500 {mid:.3f}")

# %%
assert scales["fixed decay"][0] < scales["warmed-up EMA"][0] and scales["fixed decay"][1] < scales["warmed-up EMA"][1]
print(f"with a fixed decay the average keeps {c:.0%} of the zero output layer: its noise predictions are shorter "
      "at both levels")

# %% [markdown]
# Samples from your run's averaged weights. To keep this lesson quick they take 100 steps of
# DDIM with $\eta = 1$, which re-injects noise at every step as DDPM does (lesson 07 derives
# it); the shipped model below runs the full 1000-step DDPM chain. A trained model's output is
# checked, not printed: the course's digit classifier (lesson 06 uses it too) should be
# confident on more of these samples than on noise images, and the line below says whether it
# is confident on most of them.

# %%
quick = samplers.ddim_sample(run.ema_model.to(device), schedule, (N_SAMPLES, *images.images.shape[1:]), steps=100, eta=1.0,
                             generator=torch.Generator().manual_seed(6)).cpu()
_ = dc.viz.show_images(quick, nrow=8, title=f"your run: {N_SAMPLES} samples after {run.steps} training steps", size=7)
plt.show()

# %%
if DATASET == "digits":
    classifier = metrics.digit_classifier()
    noise_images = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(SEED)).clamp(-1, 1)
    with torch.no_grad():
        confident, confident_noise = ((classifier(x).softmax(1).max(1).values > 0.9).double().mean().item()
                                      for x in (quick.clamp(-1, 1), noise_images))
    assert confident > confident_noise, (confident, confident_noise)
    print("the classifier is more often confident on your samples than on noise images; on "
          + ("most of them (over half): they read as digits" if confident > 0.5 else "fewer than half: train longer"))

# %% [markdown]
# ## 4. Saving and loading
#
# A checkpoint is two files: the weights in **safetensors** (plain tensors, so loading one
# cannot run code, unlike a pickle) and a JSON file with the architecture, its config, the
# schedule and a record of the training run. Loading rebuilds the network from the JSON and
# checks every tensor; an existing checkpoint is never overwritten unless asked.

# %%
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "digits_run"
    record = {"steps": run.steps, "batch_size": 64}
    save_checkpoint(path, run.ema_model.cpu(), schedule, sample_shape=tuple(images.images.shape[1:]), record=record)
    print("files:", sorted(p.name for p in Path(tmp).iterdir()))
    meta = json.loads(path.with_suffix(".json").read_text())
    print("JSON keys:", sorted(meta))
    ckpt = load_checkpoint(path)
    x = held_out[:4]
    t = torch.tensor([0, 300, 600, 999])
    with torch.no_grad():
        assert torch.equal(ckpt.model(x, t), run.ema_model.eval()(x, t))
    print("reloaded model gives identical outputs; image size", ckpt.image_size)
    try:
        save_checkpoint(path, run.ema_model, schedule, sample_shape=(1, 16, 16))
    except FileExistsError as err:
        print("saving again:", type(err).__name__, "(pass overwrite=True to replace it)")
    weights = path.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    try:
        load_checkpoint(path)
    except ValueError as err:
        print("truncated file:", type(err).__name__, "-", str(err).split(": ", 1)[-1])

# %% [markdown]
# With `SAVE_AS` set, your run's averaged weights are kept (lesson 06 samples from them when
# given the same path as its `CHECKPOINT`).

# %%
if SAVE_AS is not None:
    saved = save_checkpoint(SAVE_AS, run.ema_model.cpu(), schedule, sample_shape=tuple(images.images.shape[1:]),
                            record={"lesson": "05_training", "dataset": DATASET, "steps": run.steps,
                                    "batch_size": recipe["batch_size"]})
    print("saved", ", ".join(str(p) for p in saved))

# %% [markdown]
# ## 5. The shipped model
#
# `dc.pretrained("digits")` is the same U-Net with the same recipe trained longer:
# `ddpm-course train --preset digits` (3000 steps, ten times this lesson's run, with the full
# 200-step warm-up), stored as float16. Its record says how and where it was trained:

# %%
shipped = dc.pretrained("digits")
for key in ("command", "steps", "train_seconds", "hardware"):
    print(f"{key:14s} {shipped.record[key]}")

# %% [markdown]
# A few DDPM chains: the current $x_t$ every 100 steps, from pure noise (left) to the sample.

# %%
frames = []
keep = set(range(999, -1, -100)) | {0}
def grab(i, t, x_t, x0_hat):
    if t in keep:
        frames.append(x_t.clone())

chains = samplers.ddpm_sample(shipped.model, shipped.schedule, (4, 1, 16, 16), generator=torch.Generator().manual_seed(7), callback=grab)
strip = torch.stack(frames + [chains], dim=1).reshape(-1, 1, 16, 16)  # (4 * 12, 1, 16, 16), one chain per row
_ = dc.viz.show_images(strip, nrow=len(frames) + 1, title="code t = 999, 899, ..., 99, 0, then the sample", size=11)
plt.show()

# %% [markdown]
# **Quality check.** Scoring needs a few hundred samples, and 1000 DDPM steps for each take
# minutes on a CPU (the README's number, a Frechet distance 1.25x the floor, comes from
# `benchmarks/train_budget.py --checkpoint ddpm_course/pretrained/digits`). Here we draw 300
# samples with 50 DDIM steps and $\eta = 1$, which adds fresh noise at every step as DDPM
# does (lesson 07 explains both). `metrics.digits_fd` compares digit-classifier features of
# the samples with the held-out digits, next to the floor that real digits reach at the same
# sizes; with 300 images either number varies by about 30% from draw to draw, hence the
# margin in the threshold. (The deterministic $\eta = 0$ version of the same 50 steps does as
# well only if the network is accurate at the highest noise levels; lesson 07 shows why and
# checks that this one is.)

# %%
fast = samplers.ddim_sample(shipped.model, shipped.schedule, (300, 1, 16, 16), steps=50, eta=1.0,
                            generator=torch.Generator().manual_seed(8))
score = metrics.digits_fd(fast.clamp(-1, 1), generator=torch.Generator().manual_seed(9))
assert score.ratio < 2.0, score
print("Frechet distance of 300 samples (DDIM, 50 steps, eta = 1) is under 2x the real-vs-real floor")

# %%
_ = dc.viz.show_images(fast[:64], nrow=8, title="dc.pretrained('digits'): 64 samples, DDIM 50 steps, eta = 1", size=7)
plt.show()

# %% [markdown]
# ## Summary
# - $L_\text{simple}$ is the ELBO with its per-step weights $\lambda_t$ set to 1: same optimum
#   for each $t$, effort moved from nearly clean to noisier steps.
# - `train` wraps the textbook loop with warm-up, cosine decay, clipping, EMA, a budget in
#   steps or minutes and a NaN guard; a generator makes it repeatable. With the course recipe
#   a few hundred steps on a CPU give readable digits.
# - A fixed EMA decay keeps a share of the zero-initialised output layer and shortens every
#   noise prediction; a decay that warms up forgets the start.
# - A 2-D toy needs a sharper test than sliced W2: a smeared ring passes it, the share of
#   samples between modes does not.
# - Checkpoints are safetensors plus JSON: no pickles, clear errors for bad files.
# - Next, lesson 06 derives the sampling loop we used here.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Reference answers
# are in `solutions/05_training.py`.
#
# **1. $L_\text{simple}$ on one batch.** Given a noise predictor `model(x_t, t)`, clean `x0`
# $(B, \dots)$, the 0-based steps `t` $(B,)$ and the noise, return the loss as a scalar tensor
# (without `losses.l_simple`). The check's model is a fixed smooth function of $(x_t, t)$.

# %%
def my_l_simple(model, x0, t, noise, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("05.l_simple", my_l_simple)

# %% [markdown]
# **2. One ELBO weight.** Return $\lambda_t$ at the code steps `t` $(B,)$, all $\ge 1$, with
# $\sigma_t^2 = \tilde\beta_t$ (without `losses.elbo_weights`).

# %%
def my_elbo_weight(t, schedule):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("05.elbo_weight", my_elbo_weight)

# %% [markdown]
# **3. A number.** An EMA with a *fixed* decay $d = 0.995$ (no warm-up) starts by copying the
# initial weights. What weight does it keep on them after 500 updates in all?

# %%
my_ema_start = None  # your number here

# %%
dc.exercises.check("05.ema_start", my_ema_start)
