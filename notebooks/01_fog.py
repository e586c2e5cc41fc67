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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/01_fog.ipynb)
#
# # 01 · The fog: destroying an image on purpose
#
# A diffusion model is built around two processes that run in opposite directions.
# The **forward process** takes a photograph and buries it, step by step, under Gaussian
# noise until nothing but static is left, like fog rolling over a landscape. It has no
# parameters to learn: it is a formula we choose. The **reverse process** starts from static
# and removes the fog a little at a time; that is the part a neural network learns.
#
# In this lesson you will
# 1. fog two real photographs with the forward process of DDPM (Ho et al., 2020),
# 2. check the usual story ("step 1: grainy, step 100: barely recognisable, step 1000:
#    pure noise") against numbers,
# 3. drive a slider over the noise level, and
# 4. see precisely what the reverse process has to learn: the noise.

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
# Parameters: the image side in pixels (a GPU is not needed for this lesson; a bigger image
# only makes the pictures sharper).

# %%
IMAGE_SIZE = 64
SEED = 0

# %%
# NBVAL_IGNORE_OUTPUT
import math

import matplotlib.pyplot as plt
import torch

import ddpm_course as dc

device = dc.setup(seed=SEED)

# %% [markdown]
# ## The photographs
#
# scikit-learn ships two sample photos, a flower and a Chinese landscape, so this course
# runs offline. `dc.photo` crops them square, resizes them and maps the pixels to $[-1, 1]$,
# the range DDPM assumes. Each image is a tensor of shape $(3, H, W)$: it is a point in
# $\mathbb{R}^d$ with $d = 3 \cdot 64 \cdot 64 = 12{,}288$ numbers.

# %%
flower = dc.photo("flower", size=IMAGE_SIZE).double()  # (3, H, W) in [-1, 1]
china = dc.photo("china", size=IMAGE_SIZE).double()
d = flower.numel()
print(f"flower: shape {tuple(flower.shape)}, d = {d}, range [{flower.min():.3f}, {flower.max():.3f}]")
print(f"flower pixels: mean {flower.mean():.4f}, std {flower.std():.4f}")
print(f"china  pixels: mean {china.mean():.4f}, std {china.std():.4f}")
_ = dc.viz.show_images(torch.stack([flower, china]), nrow=2, title="x_0: the clean images", size=5)
plt.show()

# %% [markdown]
# ## The forward process in one line
#
# DDPM fixes a **noise schedule**: $T = 1000$ numbers $\beta_1, \dots, \beta_T$ between
# $10^{-4}$ and $0.02$, spaced evenly (the *linear* schedule). Step $t$ shrinks the image a
# little and adds a little Gaussian noise:
#
# $$x_t = \sqrt{1-\beta_t}\, x_{t-1} + \sqrt{\beta_t}\, \epsilon_t, \qquad \epsilon_t \sim \mathcal{N}(0, \mathbf{I}).$$
#
# Lesson 02 shows that the $t$ steps collapse into a single jump. With
# $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \alpha_1 \alpha_2 \cdots \alpha_t$,
#
# $$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon, \qquad \epsilon \sim \mathcal{N}(0, \mathbf{I}).$$
#
# So $x_t$ is a blend of the image and of noise: $\sqrt{\bar\alpha_t}$ is the **signal kept**
# and $\sqrt{1-\bar\alpha_t}$ is the **noise added**. Their squares sum to one.
#
# **A word on indices.** The maths counts steps $1, \dots, T$; code counts from zero. In the
# course's code the math's step $t$ is `t - 1`, and `schedule.alpha_bars[t - 1]` is $\bar\alpha_t$.
# Lesson 02 makes this precise; here we translate at the boundary with `code_t = step - 1`.

# %%
schedule = dc.linear_schedule(T=1000, beta_start=1e-4, beta_end=0.02)
print(schedule)
for step in (1, 1000):
    print(f"math step {step:4d} = code t {step - 1:3d}: beta = {schedule.betas[step - 1].item():.6f}")

# %% [markdown]
# A strip of the fog: the same noise draw $\epsilon$ for every step, so that only the blend
# changes. `dc.q_sample` takes a batch $(B, C, H, W)$ and a batch of 0-based steps $(B,)$.

# %%
steps = [1, 10, 100, 250, 500, 1000]  # math steps
code_t = torch.tensor(steps) - 1  # (6,) 0-based
gen = torch.Generator().manual_seed(SEED)
eps = dc.noise_like(flower, gen)  # (3, H, W), one draw reused at every step


def fog_strip(x0: torch.Tensor) -> torch.Tensor:
    batch = x0.expand(len(steps), *x0.shape)  # (6, 3, H, W)
    x_t, _ = dc.q_sample(schedule, batch, code_t, noise=eps.expand_as(batch))
    return torch.cat([x0[None], x_t])  # (7, 3, H, W)


labels = ["x_0 (clean)"] + [f"step {s}" for s in steps]
_ = dc.viz.show_strip(fog_strip(flower), labels, title="the flower in the fog (linear schedule)")
_ = dc.viz.show_strip(fog_strip(china), labels, title="the landscape in the fog")
plt.show()

# %% [markdown]
# ## Checking the story with numbers
#
# The usual telling goes: at step 0 you have a clear flower; at step 1 it is grainy; at step
# 100 it is *barely recognisable*; at step 1000 it is *pure noise*. Let us measure it.
#
# One number says how much of the picture survives: the correlation, over the $d$ pixels,
# between $x_t$ and $x_0$. Write $\sigma^2$ for the variance of the clean pixels. The noise is
# independent of the image, so
#
# $$\operatorname{Cov}(x_t, x_0) = \sqrt{\bar\alpha_t}\,\sigma^2, \qquad
#   \operatorname{Var}(x_t) = \bar\alpha_t \sigma^2 + (1 - \bar\alpha_t), \qquad
#   \rho_t = \frac{\sqrt{\bar\alpha_t}\,\sigma}{\sqrt{\bar\alpha_t \sigma^2 + 1 - \bar\alpha_t}}.$$
#
# The cell below prints the signal kept, the noise added, the prediction $\rho_t$ and the
# correlation measured on the fogged flower (float64).

# %%
def predicted_correlation(alpha_bar: float, sigma: float) -> float:
    return math.sqrt(alpha_bar) * sigma / math.sqrt(alpha_bar * sigma**2 + 1 - alpha_bar)


def measured_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


sigma = flower.std(unbiased=False).item()
print(f"{'step':>5} {'signal kept':>12} {'noise added':>12} {'rho predicted':>14} {'rho measured':>13}")
print(f"{0:>5} {1.0:>12.4f} {0.0:>12.4f} {1.0:>14.4f} {1.0:>13.4f}")
rows = []
for step in (1, 100, 1000):
    abar = schedule.alpha_bars[step - 1].item()
    x_t, _ = dc.q_sample(schedule, flower[None], step - 1, noise=eps[None])
    rho, rho_hat = predicted_correlation(abar, sigma), measured_correlation(x_t[0], flower)
    rows.append((rho, rho_hat))
    print(f"{step:>5} {math.sqrt(abar):>12.4f} {math.sqrt(1 - abar):>12.4f} {rho:>14.4f} {rho_hat:>13.4f}")

# %% [markdown]
# The measured correlation is an estimate from $d$ pixels, so it should sit within a few
# standard errors, $(1-\rho^2)/\sqrt{d}$, of the prediction.

# %%
for rho, rho_hat in rows:
    assert abs(rho_hat - rho) < 4 * (1 - rho**2) / math.sqrt(d) + 1e-12, (rho, rho_hat)
print("measured correlations agree with the formula within 4 standard errors")

# %% [markdown]
# What the numbers say about the story:
#
# * **Step 1** keeps 99.995 % of the amplitude and adds noise of standard deviation 0.01,
#   about one grey level in a 256-level image: "grainy" is generous, the change is invisible.
# * **Step 100** still keeps about 95 % of the amplitude and the correlation with the clean
#   flower is above 0.8: under the linear schedule the flower is *clearly* recognisable at
#   step 100 (look at the strip). The noise has merely started to win.
# * **Step 1000**: the signal kept is $\sqrt{\bar\alpha_{1000}} \approx 0.006$, not zero.
#   "Pure noise" is an excellent approximation, and lesson 03 measures how good.
#
# So when does the flower become "barely recognisable"? Solve for the steps where the
# predicted correlation falls below 0.5 and below 0.1:

# %%
rho_all = [predicted_correlation(a, sigma) for a in schedule.alpha_bars.tolist()]
for level in (0.5, 0.1):
    first = next(t for t, r in enumerate(rho_all) if r < level)
    print(f"rho falls below {level}: from math step {first + 1} (signal kept {schedule.alpha_bars[first].sqrt().item():.4f})")

x_T, _ = dc.q_sample(schedule, flower[None], schedule.T - 1, noise=eps[None])
print(f"x_T pixels: mean {x_T.mean().item():+.4f}, std {x_T.std().item():.4f} (N(0, 1): mean 0, std 1)")

# %% [markdown]
# ## A slider over the fog
#
# `dc.widgets.fog_explorer` wraps a pure function, `dc.widgets.fog_frame(x0, schedule, t,
# noise)`, in an ipywidgets slider over the **code's 0-based step** `t` (slider value 99 is the
# math's step 100, the one in the table above); it keeps one noise draw, so you watch the same
# static fade in. Setting the slider from code calls the function, and
# `.result` holds what it returned. We check it against the formula before showing it.

# %%
explorer = dc.widgets.fog_explorer(flower, schedule, noise=eps)
explorer.children[0].value = 99  # math step 100
frame = explorer.result
abar = schedule.alpha_bars[99].item()
by_hand = math.sqrt(abar) * flower + math.sqrt(1 - abar) * eps
assert torch.allclose(frame.x_t, by_hand, rtol=0, atol=1e-12)
print(f"slider at code t = 99 (math step 100): signal kept {frame.signal:.4f}, noise std {frame.noise_std:.4f}, "
      f"corr {frame.correlation:.4f}")

# %%
# NBVAL_IGNORE_OUTPUT
display(explorer)

# %% [markdown]
# ## What the reverse process must learn
#
# Running the fog backwards means: given only a noisy $x_t$ and the step $t$, get back to a
# cleaner image. DDPM turns this into one question a network answers at every step:
#
# > *Which noise $\epsilon$ was mixed in to produce this $x_t$?*
#
# Why the noise? Because the jump formula can be solved for $x_0$:
#
# $$x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon}{\sqrt{\bar\alpha_t}}.$$
#
# With the *true* noise, this recovers the image exactly, at any step, even at step 1000.
# `dc.predict_x0` implements it; the check is to floating-point precision (float64).

# %%
for step in (1, 100, 1000):
    x_t, noise = dc.q_sample(schedule, flower[None], step - 1, generator=gen)
    x0_back = dc.predict_x0(schedule, x_t, step - 1, noise)
    err = (x0_back[0] - flower).abs().max().item()
    assert err < 1e-9, err
    print(f"step {step:4d}: true noise -> max |x0_hat - x0| below 1e-9")

# %% [markdown]
# A network will never know the noise exactly; it estimates it, $\hat\epsilon = \epsilon_\theta(x_t, t)$.
# Plugging the estimate in gives
#
# $$\hat x_0 - x_0 = -\sqrt{\frac{1-\bar\alpha_t}{\bar\alpha_t}}\,(\hat\epsilon - \epsilon)
#   = -\frac{\hat\epsilon - \epsilon}{\sqrt{\mathrm{SNR}_t}}, \qquad \mathrm{SNR}_t = \frac{\bar\alpha_t}{1-\bar\alpha_t}.$$
#
# The error in the noise is multiplied by $1/\sqrt{\mathrm{SNR}_t}$: harmless near the data,
# about 157 times at step 1000. We check the factor with a deliberately wrong estimate,
# $\hat\epsilon = \epsilon + 0.05\,z$.

# %%
z = dc.noise_like(flower, gen)
recoveries = []
print(f"{'step':>5} {'1/sqrt(SNR)':>12} {'rms error of x0_hat':>20} {'predicted':>10}")
for step in (1, 100, 500, 1000):
    x_t, noise = dc.q_sample(schedule, flower[None], step - 1, generator=gen)
    x0_hat = dc.predict_x0(schedule, x_t, step - 1, noise + 0.05 * z[None])
    gain = 1 / schedule.snr[step - 1].sqrt().item()
    rms = (x0_hat[0] - flower).pow(2).mean().sqrt().item()
    predicted = gain * 0.05 * z.pow(2).mean().sqrt().item()
    assert abs(rms - predicted) < 1e-9 * max(1.0, predicted)
    recoveries.append(x0_hat[0].clamp(-1, 1))
    print(f"{step:>5} {gain:>12.4f} {rms:>20.4f} {predicted:>10.4f}")

# %%
_ = dc.viz.show_strip(
    torch.stack([flower, *recoveries]),
    ["x_0"] + [f"x0_hat from step {s}" for s in (1, 100, 500, 1000)],
    title="one jump back with a noise estimate that is off by 5 %",
)
plt.show()

# %% [markdown]
# This is why the reverse process takes **many small steps** instead of one jump: from deep
# in the fog, a single jump amplifies every error in the noise estimate, while a small step
# only has to remove a little noise and can be corrected by the steps after it. The network
# is trained on pairs that the forward process gives for free: pick an image and a step, draw
# $\epsilon$, form $x_t$, and ask the network for $\epsilon$ (the loss
# $\lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2$ of lesson 05).
#
# ## Summary
# * The forward process is a fixed formula: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$.
# * Under the linear schedule the photo survives longer than the story says: step 100 keeps
#   95 % of the amplitude; the correlation with the clean flower falls below 0.5 only after
#   about 240 steps (printed above); step 1000 keeps 0.6 % of the amplitude.
# * Knowing the noise is knowing the image; the reverse process learns to predict the noise,
#   and walks back in small steps because errors are amplified by $1/\sqrt{\mathrm{SNR}_t}$.
#
# Next, lesson 02 derives the jump formula from the one-step chain and checks it by Monte Carlo.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. It tries your
# function on images and on batches of 2-D points, at levels from almost clean to almost pure
# noise. Reference answers are in `solutions/01_fog.py`; look there after trying.
#
# **1. Fog at a level.** Given a clean batch `x0`, a level `alpha_bar` (a float, the math's
# $\bar\alpha_t$) and a noise draw `noise` of the same shape, return
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$.

# %%
def my_add_noise(x0, alpha_bar, noise):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("01.add_noise", my_add_noise)

# %% [markdown]
# **2. Back out of the fog.** Given `x_t`, the level and the true `noise`, return $x_0$.

# %%
def my_recover_x0(x_t, alpha_bar, noise):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("01.recover_x0", my_recover_x0)

# %% [markdown]
# **3. A number.** Under the linear schedule above ($T = 1000$), by what factor
# $1/\sqrt{\mathrm{SNR}_t}$ is an error in the noise estimate multiplied at the **math's step
# $t = 500$**? Compute it from `schedule` (mind the index) and assign it.

# %%
my_amplification = None  # your number here

# %%
dc.exercises.check("01.amplification", my_amplification)
