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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/08_guidance.ipynb)
#
# # 08 · Conditioning and classifier-free guidance
#
# The article: *"A standard diffusion model without conditioning generates images that match
# the overall data distribution, but it cannot follow user instructions."* This lesson gives
# the course U-Net an instruction in two ways: a class label added to the time embedding, and
# a prompt of words read through **cross-attention**, the way text-to-image models read a text
# encoder's tokens. Then it builds **classifier-free guidance**: one network trained both with
# and without its condition, whose two predictions are extrapolated at sampling time. We see
# guidance sharpen an exact Gaussian mixture towards the requested component, measure on
# digits how fidelity rises and diversity falls as the guidance scale grows, look at the
# artefacts of too much guidance, and watch where the image attends in a prompt.

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
# Parameters: digits per class in the guidance sweep, the scales swept, the sampler's steps.
# The checks below compare scales with each other and with the bars of the shipped models,
# so they hold at any size.

# %%
PER_CLASS = 12
SCALES = [0.0, 1.0, 2.0, 3.0, 5.0, 8.0]
STEPS = 50  # DDIM with eta = 1 (fresh noise at every step); why, below
SEED = 0

# %%
# NBVAL_IGNORE_OUTPUT
import matplotlib.pyplot as plt
import torch

import ddpm_course as dc
from ddpm_course import guidance, samplers
from ddpm_course.models import text
from ddpm_course.oracle import GaussianMixture

device = dc.setup(seed=SEED)
torch.set_num_threads(1)  # small models and batches: on a CPU one thread avoids hand-off costs

# %% [markdown]
# ## An unconditional model cannot be asked for anything
#
# The `digits` model of lessons 05-07 learned $\epsilon_\theta(x_t, t)$ for the whole data
# set. Its only inputs are the noisy image and the step: there is no argument through which
# to say "a seven". Its samples are sevens as often as sevens are in the data, about one in ten.

# %%
plain = dc.pretrained("digits")
cond = dc.pretrained("digits-cond")
prompt_model = dc.pretrained("digits-prompt")
print("digits:       num_classes =", plain.model.config.num_classes)
print("digits-cond:  num_classes =", cond.model.config.num_classes,
      "| label table", tuple(cond.model.label_embed.weight.shape))
print("digits-prompt:", type(prompt_model.model).__name__, "| prompts", len(text.PROMPTS))

# %% [markdown]
# ## A label, added to the time embedding
#
# The simplest condition is a class label $y \in \{0, \dots, 9\}$. The U-Net already turns
# the step $t$ into a vector $e(t)$ that every residual block adds to its channels as a
# per-channel shift (lesson 04). A label gets a learned vector $e(y)$ from a table of 11 rows,
# and the block sees $e(t) + e(y)$: the label reaches every block through the same door as
# the noise level. Row 10 is the **null label**, "no class given".

# %%
model = cond.model
t = torch.tensor([500, 500])
y = torch.tensor([7, 10])  # a seven, and no label
emb = model.time_embed(t) + model.label_embed(y)  # (B, emb_dim)
print("e(t):", tuple(model.time_embed(t).shape), "  e(y):", tuple(model.label_embed(y).shape),
      "  sum:", tuple(emb.shape))

# %% [markdown]
# ## One network, two tasks: dropping the condition in training
#
# Classifier-free guidance (Ho & Salimans 2022) needs both $\epsilon_\theta(x_t, t, y)$ and
# $\epsilon_\theta(x_t, t, \varnothing)$. Rather than two networks, train one and replace the
# label by the null label with probability $p$ at every step: `train(..., p_uncond=p)`, which
# passes $p$ to `losses.l_simple`. With $p = 0.15$, about one example in seven teaches the
# unconditional task and the rest the conditional one. The shipped model was made by one
# command; its record says how:

# %%
record = cond.record
print(record["command"])
settings = record["train_settings"]
print({k: settings[k] for k in ("p_uncond", "batch_size", "lr", "ema_decay")}, "| steps", record["steps"])

# %% [markdown]
# If the null label were never learned, the two predictions would coincide and guidance
# would do nothing. They do not coincide: at a middle noise level the conditional and the
# unconditional noise predictions of the same noisy image differ by a good fraction of their
# size.

# %%
g = torch.Generator().manual_seed(SEED)
x0 = dc.digits(16, split="test").images[:64]
t = torch.full((64,), 500)
x_t, _ = dc.q_sample(cond.schedule, x0, t, generator=g)
with torch.no_grad():
    eps_c = model(x_t, t, torch.full((64,), 3))
    eps_u = model(x_t, t, torch.full((64,), 10))
gap = ((eps_c - eps_u).norm() / eps_u.norm()).item()
assert gap > 0.05, gap
print("conditional and unconditional predictions differ: the null label was learned")

# %% [markdown]
# ## Classifier-free guidance
#
# Guidance extrapolates from the unconditional prediction through the conditional one:
#
# $$\tilde\epsilon = \epsilon_\theta(x_t, t, \varnothing)
#   + s\,\big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t, \varnothing)\big).$$
#
# $s = 0$ is the unconditional model, $s = 1$ the conditional one, $s > 1$ pushes further
# in the direction "more like $y$ than like anything". Since $\epsilon = -\sigma_t \nabla \log p$,
# this is the score of $p(x)\,p(y \mid x)^s$
# (Bayes: $\nabla\log p(x \mid y) = \nabla\log p(x) + \nabla \log p(y\mid x)$):
# guidance raises the implicit classifier $p(y \mid x)$ to the power $s$. Ho & Salimans write
# the same rule with a weight $w$,
#
# $$\tilde\epsilon = (1 + w)\,\epsilon_\theta(x_t, t, y) - w\,\epsilon_\theta(x_t, t, \varnothing),$$
#
# which expands to the first form with $s = 1 + w$: their $w = 0$ is our $s = 1$. Papers and
# libraries use both, so a "guidance scale" always needs its convention. A check in float64:

# %%
g = torch.Generator().manual_seed(SEED)
e_cond, e_uncond = torch.randn(2, 4, 1, 16, 16, generator=g, dtype=torch.float64)
for s in (0.0, 1.0, 3.0, 7.5):
    a = guidance.guided_eps(e_cond, e_uncond, s)
    b = guidance.guided_eps_w(e_cond, e_uncond, guidance.w_from_scale(s))
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
print("eps_u + s (eps_c - eps_u) == (1 + w) eps_c - w eps_u with w = s - 1, for s in 0, 1, 3, 7.5")

# %% [markdown]
# `guidance.cfg(model, s)` wraps a conditional model into a function with the ordinary model
# contract, so every sampler of lesson 07 runs guided without knowing it. It evaluates both
# predictions in **one** forward call on a doubled batch `[x_t; x_t]` with labels `[y; null]`:
# one call of batch $2B$ costs less than two of batch $B$. With `y=` it carries its labels
# and is called as `f(x_t, t)`.


# %%
class CountCalls:
    """Wraps a model, counting its forward calls and their batch sizes."""

    def __init__(self, model):
        self.model, self.config, self.calls = model, model.config, []

    def __call__(self, x, t, y):
        self.calls.append(x.shape[0])
        return self.model(x, t, y)


counting = CountCalls(model)
with torch.no_grad():
    guided = guidance.cfg(counting, 1.0, y=torch.full((64,), 3))(x_t, t)
print("calls:", counting.calls, "(one call, batch 2 x 64)")
assert torch.allclose(guided, eps_c, atol=1e-5)
print("at s = 1 the guided prediction is the conditional one")

# %% [markdown]
# ## Guidance on the exact oracle
#
# Before trusting numbers from a trained network, look at guidance where everything is known.
# Take three classes on a line, each a Gaussian with standard deviation 0.5, centres one unit
# apart: they overlap, so even a perfect class-conditional sample of class 2 sometimes looks
# like class 1. `guidance.class_oracle` gives the exact conditional $\epsilon$ (class $k$:
# the $\epsilon$ of component $k$ alone) and the exact unconditional one (the whole mixture).
# We sample class 2 at several scales and measure $\mathbb{E}[p(k{=}2 \mid x)]$, how sure an
# ideal classifier is that a sample belongs to class 2.

# %%
means = torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
covs = 0.25 * torch.eye(2, dtype=torch.float64).expand(3, 2, 2).clone()
line = GaussianMixture(torch.full((3,), 1 / 3, dtype=torch.float64), means, covs)
oracle = guidance.class_oracle(line, cond.schedule)
oracle_scales = [0.0, 1.0, 2.0, 4.0, 8.0]
points, sure, dist = {}, [], []
for s in oracle_scales:
    x = samplers.dpm_solver_sample(guidance.cfg(oracle, s, y=2), cond.schedule, (2000, 2), steps=30, spacing="logsnr",
                                   generator=torch.Generator().manual_seed(SEED))
    points[s] = x
    sure.append(line._component_log_probs(x).softmax(1)[:, 2].mean().item())
    dist.append((x - means[2]).norm(dim=1).mean().item())
for s, p, d in zip(oracle_scales, sure, dist):
    print(f"s = {s:3.0f}: E[p(class 2 | x)] = {p:.3f}, mean distance to the class-2 centre {d:.3f}")
assert sure == sorted(sure) and abs(sure[0] - 1 / 3) < 0.04 and sure[-1] > 0.99
assert dist[-1] > dist[1]
print("guidance concentrates on the requested class; at large s it overshoots past the centre")

# %%
fig, axes = plt.subplots(1, len(oracle_scales), figsize=(3.0 * len(oracle_scales), 3.0), sharey=True)
for ax, s in zip(axes, oracle_scales):
    ax.scatter(*points[s][:600].T, s=3, alpha=0.4)
    ax.scatter(*means.T, c=["grey", "grey", "red"], marker="x", s=60)
    ax.set_title(f"s = {s:g}")
    ax.set_xlim(-3, 4)
    ax.set_aspect("equal")
fig.suptitle("class 2 (red cross) of three overlapping Gaussians, exact eps, guided at scale s")
fig.tight_layout()

# %% [markdown]
# At $s = 0$ the samples cover all three classes; at $s = 1$ they are exact class-2
# samples, a Gaussian around the red cross; at $s > 1$ they are pushed **away from the other
# classes**, to the right of the centre: the tilted law $p(x \mid 2)\,p(2 \mid x)^{s-1}$ has
# its mass where the classifier is surest, not where class 2 is densest. Fidelity to the
# label rises; the samples stop being typical of the class. That is the whole trade-off of
# guidance, seen exactly.
#
# ## Guidance on digits: which sampler
#
# Now the shipped conditional model. It is small and was trained briefly (700 steps, see its
# record). Lesson 07 showed that a deterministic sampler carries the network's errors all
# the way into the picture, while a stochastic one, adding fresh noise at every step, washes
# much of them out. For this model the difference is large. We compare 20 steps of
# DPM-Solver++ with 50 steps of DDIM at $\eta = 1$, both guided at $s = 3$, counting the
# samples rougher (total variation) than 99% of real digits (`guidance.speckled`).

# %%
few = torch.arange(10).repeat_interleave(4)  # four of each digit


def guided_ddim(scale, y, steps=STEPS, seed=SEED):
    return samplers.ddim_sample(guidance.cfg(model, scale, y=y), cond.schedule, (len(y), 1, 16, 16), steps=steps,
                                eta=1.0, generator=torch.Generator().manual_seed(seed))


x_ode = samplers.dpm_solver_sample(guidance.cfg(model, 3.0, y=few), cond.schedule, (40, 1, 16, 16), steps=20,
                                   generator=torch.Generator().manual_seed(SEED))
x_sde = guided_ddim(3.0, few)
rough = {"DPM-Solver++ 20": guidance.speckled(x_ode).double().mean().item(),
         "DDIM 50, eta 1": guidance.speckled(x_sde).double().mean().item()}
assert rough["DDIM 50, eta 1"] < rough["DPM-Solver++ 20"], rough
print("fresh noise at every step (DDIM, eta = 1) leaves fewer speckled digits than the ODE sampler")

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
dc.viz.show_images(x_ode.clamp(-1, 1), nrow=8, ax=axes[0], title="DPM-Solver++, 20 steps")
dc.viz.show_images(x_sde.clamp(-1, 1), nrow=8, ax=axes[1], title="DDIM, 50 steps, eta = 1")
fig.tight_layout()

# %% [markdown]
# The rest of the lesson samples with DDIM at $\eta = 1$ (`benchmarks/guidance.py` measures
# all three samplers). The size of this model's noise prediction at high noise is right
# (`losses.eps_scale` is about 1 at t = 999), so the speckle comes from errors elsewhere;
# the remedy is a better-trained network, and the stochastic sampler only hides them.
#
# ## Guidance on digits: fidelity against diversity
#
# For each scale we draw `PER_CLASS` digits of every class and score them with
# `guidance.score_digits`: **accuracy** (the course's digit classifier reads the requested
# digit), **FD class** (Frechet distance of each class's samples to the real digits of that
# class, averaged), and **spread** (how far samples lie from their class centroid in the
# classifier's features, relative to real digits: 1 is as varied as the data).

# %%
labels = torch.arange(10).repeat_interleave(PER_CLASS)  # (10 * PER_CLASS,)
samples, scores = {}, {}
for s in SCALES:
    x = guided_ddim(s, labels)
    samples[s], scores[s] = x, guidance.score_digits(x, labels)

# %%
# NBVAL_IGNORE_OUTPUT
for s in SCALES:
    a, fd, spread = scores[s]
    print(f"s = {s:3g}: accuracy {a:.3f}, FD class {fd:6.1f}, spread {spread:.2f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
acc = [scores[s].accuracy for s in SCALES]
spread = [scores[s].spread for s in SCALES]
ax.plot(spread, acc, "o-")
for s, a, d in zip(SCALES, acc, spread):
    ax.annotate(f"s={s:g}", (d, a), textcoords="offset points", xytext=(6, -10))
ax.set_xlabel("diversity: within-class spread (real digits = 1)")
ax.set_ylabel("fidelity: accuracy on the requested digit")
ax.set_title("classifier-free guidance on digits")
ax.invert_xaxis()
fig.tight_layout()

# %% [markdown]
# Reading right to left along the curve: without guidance ($s = 0$) about one digit in ten
# is the requested one, by chance; the conditional model ($s = 1$) follows the label most of
# the time; a moderate scale gets it right nearly always, and stronger guidance buys no more
# accuracy but keeps shrinking the spread within each class, far below the real digits' own.
# The checks are the bar of the shipped model, at least 95% of digits as requested at
# $s = 3$, and the spread falling from the conditional model to the strongest guidance.

# %%
assert scores[0.0].accuracy < 0.3, scores[0.0]
assert scores[3.0].accuracy >= 0.95, scores[3.0]
assert scores[8.0].spread < scores[1.0].spread, (scores[1.0], scores[8.0])
print("s = 0 ignores the label; s = 3 follows it in >= 95% of digits; strong guidance narrows each class")

# %%
show = [0.0, 1.0, 3.0, 8.0]
fig, axes = plt.subplots(1, len(show), figsize=(3.2 * len(show), 3.4))
for ax, s in zip(axes, show):
    first = torch.cat([samples[s][labels == c][:4] for c in range(10)])  # (40, 1, 16, 16)
    dc.viz.show_images(first.clamp(-1, 1), nrow=4, ax=ax, title=f"s = {s:g}")
fig.suptitle("four digits per class (rows 0-9, read across), same noise at every scale")
fig.tight_layout()

# %% [markdown]
# ## Artefacts at large scales
#
# Guidance is an extrapolation, and extrapolated predictions leave the range the network was
# trained on. Past a moderate scale the digits get thick, blotchy strokes and saturated
# pixels: the sampler's $\hat x_0$ leaves $[-1, 1]$ and the picture is clipped. We count the
# pixels the sampler puts outside $[-1.05, 1.05]$ before clipping, and show a very large scale.

# %%
big = 15.0
x_big = guided_ddim(big, labels[::PER_CLASS])
outside = {s: (samples[s].abs() > 1.05).double().mean().item() for s in (1.0, 3.0, 8.0)}
outside[big] = (x_big.abs() > 1.05).double().mean().item()
assert outside[big] > outside[1.0], outside
print("pixels pushed outside [-1, 1] grow with the scale")
fig = dc.viz.show_strip(x_big.clamp(-1, 1), [str(c) for c in range(10)], title=f"s = {big:g}: saturated strokes")

# %% [markdown]
# ## Text in miniature: prompts through cross-attention
#
# Text-to-image models condition on a sentence: a text encoder turns the prompt's tokens into
# vectors, and **cross-attention** blocks in the U-Net let every image position read them
# (Rombach et al. 2022). We build the same at the size of our digits. A prompt is a stroke
# word and a digit name, `"thin seven"`, `"thick three"`, or part of one (`"seven"`,
# `"thick"`, `""`). The captions of the training digits are **computed, not written**: the
# stroke word comes from how much ink the digit uses compared with the other digits of its
# class (lowest third "thin", highest third "thick", the middle third no word).

# %%
train = dc.digits(16, split="train")
captions = text.captions(train.images, train.labels)
pick = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
fig = dc.viz.show_strip(train.images[pick], [captions[i] for i in pick], size=1.3)
print("vocabulary:", text.VOCAB)
counts = {w: sum(c.startswith(w) for c in captions) for w in ("thin", "thick")}
print("captions in the train split:", counts, "of", len(captions))

# %% [markdown]
# The tokenizer maps a prompt to indices into that vocabulary, always starting with
# `<start>` and padded to 3 tokens; the mask marks the real tokens. The start token matters:
# the empty prompt (the null condition) is then one real token, and attention always has
# something to attend to.

# %%
tokens, mask = text.tokenize(["thin seven", "three", ""])
print(tokens)
print(mask)

# %% [markdown]
# **Shapes through one cross-attention block.** The prompt encoder (token and position
# embeddings and one Transformer layer) gives $L = 3$ vectors of width 32 per prompt. At a
# U-Net level of $C$ channels and $H \times W$ positions, the block projects the image to
# queries $Q$ of shape $(B, HW, C)$ and the token vectors to keys and values $K, V$ of shape
# $(B, L, C)$; each position takes $\mathrm{softmax}(QK^\top/\sqrt{C})\,V$ with the padding
# columns masked to $-\infty$, so padding gets weight exactly 0; a zero-initialised
# projection adds the result back to the image. We check on a block of the trained model
# that padding vectors do not reach the image, whatever they hold.

# %%
pm = prompt_model.model
block = pm.unet.mid_cross
print(f"{type(block).__name__}: q {tuple(block.q.weight.shape[:2])}, kv {tuple(block.kv.weight.shape)}, "
      f"proj {tuple(block.proj.weight.shape[:2])}")
with torch.no_grad():
    context, cmask = pm.encode(text.prompt_ids(["thin seven", "three", ""]))
    h = torch.randn(3, block.q.in_channels, 4, 4, generator=torch.Generator().manual_seed(SEED))
    out = block(h, context, cmask)
    garbage = context.masked_fill(~cmask[..., None], 1e3)
    weights = block.weights(h, context, cmask)  # (B, HW, L)
print("image", tuple(h.shape), "+ tokens", tuple(context.shape), "->", tuple(out.shape),
      "| attention", tuple(weights.shape))
assert torch.allclose(block(h, garbage, cmask), out, atol=1e-5)
assert torch.all(weights[1, :, 2] == 0) and torch.all(weights[2, :, 0] == 1)
print("padding tokens get weight 0 and cannot change the output")

# %% [markdown]
# The prompt model (`digits-prompt`) has cross-attention after each self-attention, at the
# 8x8 and 4x4 levels, and no label embedding: the prompt reaches the image only through
# cross-attention. It was trained like the labelled model, with the empty prompt as the null
# condition (`p_uncond=0.15`); the prompt's index in `text.PROMPTS` plays the role of the
# label, so `train` and `cfg` need no change. Do its samples follow both words? We ask for
# "thin D" and "thick D" for every digit, guided at $s = 3$ (DDIM, $\eta = 1$), and check the digit with the
# classifier and the stroke with the ink: a thin digit should use less ink than the median
# real digit of its class, a thick one more.

# %%
prompts = [f"{stroke} {word}" for stroke in ("thin", "thick") for word in text.DIGIT_WORDS for _ in range(4)]
plabels = torch.arange(10).repeat_interleave(4).repeat(2)
strokes = [p.split()[0] for p in prompts]
xp = samplers.ddim_sample(guidance.cfg(pm, 3.0, y=text.prompt_ids(prompts)), prompt_model.schedule,
                          (len(prompts), 1, 16, 16), steps=STEPS, eta=1.0,
                          generator=torch.Generator().manual_seed(SEED))
follows = text.follows_stroke(xp, plabels, strokes).double().mean().item()
digit_ok = (dc.metrics.digit_classifier()(xp.clamp(-1, 1)).argmax(1) == plabels).double().mean().item()
assert follows >= 0.9 and digit_ok >= 0.9, (follows, digit_ok)
print("the samples follow both words: the digit (classifier) and the stroke (ink) in >= 90% of samples")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
dc.viz.show_images(xp[:40:2].clamp(-1, 1), nrow=10, ax=axes[0], title='"thin zero" ... "thin nine"')
dc.viz.show_images(xp[40::2].clamp(-1, 1), nrow=10, ax=axes[1], title='"thick zero" ... "thick nine"')
fig.tight_layout()

# %% [markdown]
# **Where does the image attend?** `text.cross_attention_maps` runs the model once with
# hooks on its cross-attention blocks and returns, for each block, the weight every image
# position gives every token. We look at the 8x8 block of the decoder, in the middle of
# sampling (t = 500), for the prompt "thick seven": each map shows, over the image, the share
# of attention one token receives (the three maps add up to 1 at every position).

# %%
with torch.no_grad():
    y_seven = text.prompt_ids(["thick seven"])
    x_seven = samplers.ddim_sample(guidance.cfg(pm, 3.0, y=y_seven), prompt_model.schedule, (1, 1, 16, 16),
                                   steps=STEPS, eta=1.0, generator=torch.Generator().manual_seed(SEED))
    x_mid, _ = dc.q_sample(prompt_model.schedule, x_seven, torch.tensor([500]),
                           generator=torch.Generator().manual_seed(1))
    maps = dict(text.cross_attention_maps(pm, x_mid, torch.tensor([500]), y_seven))
names = list(maps)
print("cross-attention blocks:", names)
w8 = maps["unet.up.4.cross"][0]  # (8, 8, L)
torch.testing.assert_close(w8.sum(-1), torch.ones(8, 8))
fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
dc.viz.show_images(x_seven.clamp(-1, 1), nrow=1, ax=axes[0], title="sample")
for ax, (i, tok) in zip(axes[1:], enumerate(["<start>", "thick", "seven"])):
    im = ax.imshow(w8[..., i].numpy(), vmin=0, vmax=1, cmap="magma")
    ax.set_title(f"to '{tok}'")
    ax.set_axis_off()
_ = fig.colorbar(im, ax=axes[1:].tolist(), shrink=0.8)

# %% [markdown]
# ## Explore: the words and the scale
#
# `guidance.prompt_explorer` puts the stroke word, the digit and $s$ on controls; it wraps the
# pure function `guidance.prompt_samples(model, schedule, prompt, s)`, which returns the
# images, their ink and what the classifier reads. Try $s = 0$ (the prompt is ignored),
# $s = 1$, and $s = 10$ (artefacts), and a partial prompt such as "thick".

# %%
explorer = guidance.prompt_explorer(pm, prompt_model.schedule)
stroke_w, digit_w, scale_w = explorer.children[:3]
stroke_w.value, digit_w.value, scale_w.value = "thick", "two", 4.0
result = explorer.result
assert result.prompt == "thick two" and result.images.shape == (8, 1, 16, 16)
print(f"explorer: '{result.prompt}' at s = {result.scale:g}, {result.images.shape[0]} digits")

# %%
# NBVAL_IGNORE_OUTPUT
from IPython.display import display

display(explorer)

# %% [markdown]
# ## Summary
#
# - A condition enters the network as an input: a label as a vector added to the time
#   embedding, a prompt as token vectors that the image reads through cross-attention with
#   padding masked out.
# - Dropping the condition with probability $p$ during training makes one network both
#   conditional and unconditional; the null label or empty prompt is a learned input like
#   any other.
# - Classifier-free guidance, $\epsilon_\varnothing + s(\epsilon_y - \epsilon_\varnothing)$,
#   or $(1+w)\epsilon_y - w\epsilon_\varnothing$ with $w = s - 1$, samples the tilted law
#   $p(x \mid y)\,p(y \mid x)^{s-1}$: on the exact oracle it concentrates on the requested
#   class and overshoots past its centre; on digits accuracy rises to nearly 100% by a
#   moderate scale while the within-class spread keeps falling, and large scales saturate.
# - A briefly trained network leaves speckle in deterministic samples; a stochastic sampler
#   (DDIM with $\eta = 1$) hides much of it.
# - `guidance.cfg(model, s)` is a model like any other, so every sampler runs guided.
#
# The shipped models and the sweep over both samplers are in `benchmarks/guidance.py`, whose
# table is in the README. Next, lesson 09 moves diffusion into the latent space of an
# autoencoder.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Reference answers
# are in `solutions/08_guidance.py`; look there after trying.
#
# **1. The guidance rule.** Given the conditional and the unconditional predictions and a
# scale `s`, return the guided prediction in this lesson's convention.

# %%
def my_cfg(eps_cond, eps_uncond, s):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("08.cfg_combine", my_cfg)

# %% [markdown]
# **2. A guided model.** Given a conditional `model(x_t, t, y)` whose null label is `null`,
# return the guided prediction at scale `s` for `x_t`, `t` (B,) and labels `y` (B,). One
# forward call on a doubled batch is the efficient way; two calls are correct too.

# %%
def my_guided(model, x_t, t, y, s, null):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("08.guided_model", my_guided)

# %% [markdown]
# **3. Conventions.** Ho & Salimans report their best Frechet distance on ImageNet 64x64 at
# guidance weight $w = 0.3$ in their convention $(1+w)\epsilon_y - w\epsilon_\varnothing$.
# What is that scale $s$ in this lesson's convention? Replace `None` by the number.

# %%
my_scale = None
dc.exercises.check("08.scale_from_w", my_scale)
