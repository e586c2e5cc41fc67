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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-course/ddpm-course/blob/main/notebooks/04_unet.ipynb)
#
# # 04 · The U-Net noise predictor
#
# Training a diffusion model means fitting one function, the noise predictor
# $\epsilon_\theta(x_t, t)$: given a noisy image and the step it was noised to, return the
# noise. Its output has the shape of its input, which is what an encoder-decoder with skip
# connections, a **U-Net**, is built for. This lesson takes the network apart:
#
# 1. the **sinusoidal time embedding** that tells the network how noisy its input is;
# 2. the article's **small U-Net**, built exactly as it is described, with every shape, every
#    parameter and its receptive field checked by hand;
# 3. the **course U-Net**, and what each of its additions (GroupNorm, several resolutions,
#    self-attention at the lowest one, dropout, class labels, a zero output layer) is for.
#
# Nothing is trained here (that is lesson 05), so everything printed is a shape, a count or
# a formula checked against the code.

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
import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import ddpm_course as dc
from ddpm_course.models import (
    SimpleUNet, SimpleUNetConfig, TimeEmbedding, UNet, UNetConfig, count_parameters, sinusoidal_embedding,
)

device = dc.setup(seed=0)

# %% [markdown]
# Everything below runs on the CPU: the networks are small and we only look at their shapes,
# so there is nothing to gain from a GPU here.
#
# ## 1. Telling the network the time
#
# The same pixel values can be a slightly noisy image or a very noisy one, and the right
# amount of noise to remove differs by orders of magnitude between $t = 10$ and $t = 900$.
# So $t$ is an input. Feeding the integer itself works badly: a single number ranging over
# 0..999 enters every unit through one weight, and a network of smooth activations has a hard
# time reacting sharply to small changes of one large input.
#
# The fix, borrowed from the Transformer's positional encoding, is to spread $t$ over
# $d$ numbers, sines and cosines of $d/2$ frequencies:
#
# $$e(t) = \big[\sin(\omega_0 t), \dots, \sin(\omega_{d/2-1} t),\ \cos(\omega_0 t), \dots, \cos(\omega_{d/2-1} t)\big],
# \qquad \omega_k = \exp\!\Big(-\frac{k}{d/2-1}\log 10000\Big).$$
#
# The frequencies are **log-spaced** from 1 (a period of $2\pi \approx 6$ steps) down to
# $10^{-4}$ (a period of about 63,000 steps). Fast channels tell neighbouring steps apart,
# slow ones vary monotonically over the whole chain, and every scale in between gets the
# same number of channels per factor of ten. We compute it by hand in float64 and compare it
# with the package's version.

# %%
DIM = 128
half = DIM // 2
omega = np.exp(-np.linspace(0.0, math.log(10000.0), half))  # (half,)
steps = np.arange(1000)
by_hand = np.concatenate([np.sin(steps[:, None] * omega), np.cos(steps[:, None] * omega)], axis=1)  # (1000, DIM)

package = sinusoidal_embedding(torch.arange(1000), DIM).double().numpy()
assert np.abs(by_hand - package).max() < 1e-3  # the package computes in float32
print(f"{DIM} channels: frequencies from {omega[0]:.4f} to {omega[-1]:.6f} rad/step")
print(f"periods from {2 * math.pi / omega[0]:.2f} to {2 * math.pi / omega[-1]:,.0f} steps")
print(f"at t=0: sines all {by_hand[0, :half].max():.1f}, cosines all {by_hand[0, half:].min():.1f}")
print("hand-made embedding matches dc.models.sinusoidal_embedding")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
im = axes[0].imshow(by_hand.T, aspect="auto", cmap="RdBu", interpolation="nearest")
axes[0].set(xlabel="timestep t", ylabel="channel (sines, then cosines)", title="e(t) for t = 0..999")
fig.colorbar(im, ax=axes[0])
for k in (16, 24, 32, 48, 63):
    axes[1].plot(steps, by_hand[:, k], label=f"sin, k={k}: period {2 * math.pi / omega[k]:,.0f} steps")
axes[1].set(xlabel="timestep t", title="a few sine channels, fast to slow")
axes[1].legend(fontsize=7, loc="lower left")
plt.tight_layout()
plt.show()

# %% [markdown]
# A useful consequence of using both a sine and a cosine per frequency: the dot product of
# two embeddings depends only on the *distance* between the steps,
# $e(t)\cdot e(s) = \sum_k \cos\big(\omega_k (t-s)\big)$, because
# $\sin a \sin b + \cos a \cos b = \cos(a-b)$. Nearby steps get similar codes, far-apart steps
# dissimilar ones, and the code looks the same everywhere along the chain.

# %%
gram = by_hand @ by_hand.T  # (1000, 1000)
t_idx, s_idx = np.meshgrid(steps, steps, indexing="ij")
formula = np.cos((t_idx - s_idx)[..., None] * omega).sum(-1)
assert np.abs(gram - formula).max() < 1e-9
print(f"e(t).e(t) = {gram[0, 0]:.1f} = d/2; e(0).e(1) = {gram[0, 1]:.2f}; e(0).e(500) = {gram[0, 500]:.2f}")
print("e(t).e(s) = sum_k cos(omega_k (t - s)) for every pair")

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.6))
im = ax.imshow(gram / half, cmap="viridis", origin="lower")
ax.set(xlabel="s", ylabel="t", title="cosine similarity of e(t) and e(s)")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ### Why a small MLP after the sinusoids
#
# The sinusoidal code is fixed: nothing in it knows what "noisy" means for this data. Each
# residual block of the U-Net will turn the embedding into one number per channel, a linear
# map. A linear map of sines cannot build, say, a smooth ramp in $\log$ SNR or a switch that
# turns on for the last 100 steps. One hidden layer with a SiLU in between (Linear - SiLU -
# Linear) can, and it is shared by every block, so the whole network agrees on one learned
# description of the noise level. Its parameter cost is two $d \times d$ matrices:

# %%
emb = TimeEmbedding(DIM)
t = torch.tensor([0, 250, 999])
manual = emb.fc2(F.silu(emb.fc1(sinusoidal_embedding(t, DIM))))
assert torch.equal(emb(t), manual)
print(f"TimeEmbedding({DIM}): {count_parameters(emb):,} parameters = 2 x ({DIM}*{DIM} + {DIM}) = {2 * (DIM * DIM + DIM):,}")
print(f"input t {tuple(t.shape)} -> sinusoid {tuple(sinusoidal_embedding(t, DIM).shape)} -> MLP {tuple(emb(t).shape)}")

# %% [markdown]
# ## 2. The article's small U-Net, as described
#
# The article's network, `dc.models.SimpleUNet`, has one change of resolution:
#
# | stage | what it does | channels | resolution |
# |---|---|---|---|
# | `time_embed` | sinusoid + MLP | 128 | - |
# | `down1` | residual block | $C \to c$ | $H$ |
# | `pool` | 2x2 max-pool | $c$ | $H/2$ |
# | `down2` | residual block | $c \to 2c$ | $H/2$ |
# | `bottleneck` | residual block | $2c \to 2c$ | $H/2$ |
# | `up` | nearest upsampling x2 | $2c$ | $H$ |
# | concat with `down1`'s output | skip connection | $3c$ | $H$ |
# | `up1` | residual block | $3c \to c$ | $H$ |
# | `out_conv` | 3x3 conv | $c \to C$ | $H$ |
#
# Each residual block computes $\mathrm{SiLU}\big(\mathrm{conv}_2(\mathrm{SiLU}(\mathrm{conv}_1(x) + W e(t))) + \mathrm{skip}(x)\big)$:
# the time embedding, projected to one value per channel, is added as a bias after the
# first convolution, and the skip is a 1x1 conv when the channel count changes. We first
# write one block with `F.conv2d` from its weights and check it against the package.

# %%
def residual_block_by_hand(block, x, t_emb):
    """The article's block from its weights: x (B, Cin, H, W), t_emb (B, D) -> (B, Cout, H, W)."""
    h = F.conv2d(x, block.conv1.weight, block.conv1.bias, padding=1)
    h = h + (t_emb @ block.time_proj.weight.T + block.time_proj.bias)[:, :, None, None]  # per-channel bias
    h = F.conv2d(F.silu(h), block.conv2.weight, block.conv2.bias, padding=1)
    skip = x if isinstance(block.skip, nn.Identity) else F.conv2d(x, block.skip.weight, block.skip.bias)
    return F.silu(h + skip)


article = SimpleUNet()  # the article's defaults: RGB in, 64 base channels, time embedding 128
print(article.config)
g = torch.Generator().manual_seed(0)
x = torch.randn(4, 3, 32, 32, generator=g)  # a batch of four 32x32 RGB "noisy images"
t = torch.tensor([0, 10, 500, 999])
with torch.no_grad():
    t_emb = article.time_embed(t)
    assert torch.allclose(residual_block_by_hand(article.down1, x, t_emb), article.down1(x, t_emb), atol=1e-6)
print("hand-written residual block matches SimpleUNet.down1")

# %% [markdown]
# Now the forward pass, one stage per line, printing every shape.

# %%
with torch.no_grad():
    t_emb = article.time_embed(t)
    print(f"{'t':12s} {tuple(t.shape)} -> time embedding {tuple(t_emb.shape)}")
    print(f"{'x':12s} {tuple(x.shape)}")
    h1 = article.down1(x, t_emb)
    print(f"{'down1':12s} {tuple(h1.shape)}")
    pooled = article.pool(h1)
    print(f"{'pool':12s} {tuple(pooled.shape)}")
    h2 = article.down2(pooled, t_emb)
    print(f"{'down2':12s} {tuple(h2.shape)}")
    hb = article.bottleneck(h2, t_emb)
    print(f"{'bottleneck':12s} {tuple(hb.shape)}")
    up = article.up(hb)
    print(f"{'up':12s} {tuple(up.shape)}")
    cat = torch.cat([up, h1], dim=1)
    print(f"{'concat h1':12s} {tuple(cat.shape)}")
    hu = article.up1(cat, t_emb)
    print(f"{'up1':12s} {tuple(hu.shape)}")
    eps_hat = article.out_conv(hu)
    print(f"{'out_conv':12s} {tuple(eps_hat.shape)}")
    assert eps_hat.shape == x.shape and torch.allclose(eps_hat, article(x, t), atol=1e-6)
print("stage by stage == article(x, t), and the output has the input's shape")

# %% [markdown]
# ### Counting its parameters by hand
#
# A $k\times k$ convolution from $C_\text{in}$ to $C_\text{out}$ channels has
# $C_\text{in} C_\text{out} k^2 + C_\text{out}$ parameters (weights and biases), a linear
# layer $d_\text{in} d_\text{out} + d_\text{out}$. Pooling and upsampling have none.

# %%
def conv(cin, cout, k):
    return cin * cout * k * k + cout


def linear(din, dout):
    return din * dout + dout


def res_block(cin, cout, d):
    return conv(cin, cout, 3) + conv(cout, cout, 3) + linear(d, cout) + (conv(cin, cout, 1) if cin != cout else 0)


def simple_unet_by_hand(C, c, d):
    return {
        "time_embed": 2 * linear(d, d),
        "down1": res_block(C, c, d),
        "down2": res_block(c, 2 * c, d),
        "bottleneck": res_block(2 * c, 2 * c, d),
        "up1": res_block(3 * c, c, d),
        "out_conv": conv(c, C, 3),
    }


hand = simple_unet_by_hand(3, 64, 128)
for name, n in hand.items():
    n_code = count_parameters(getattr(article, name))
    assert n == n_code, (name, n, n_code)
    print(f"{name:12s} {n:>9,}")
print(f"{'total':12s} {sum(hand.values()):>9,}  (count_parameters: {count_parameters(article):,})")
assert sum(hand.values()) == count_parameters(article)
digits_article = SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=64, time_dim=128))
assert sum(simple_unet_by_hand(1, 64, 128).values()) == count_parameters(digits_article)
print(f"the same net for grey digits (in_channels=1): {count_parameters(digits_article):,} parameters")

# %% [markdown]
# Most of the weights sit at half resolution, in `down2` and the bottleneck, where the width
# is doubled: a 3x3 conv from $2c$ to $2c$ channels has $4c^2 \cdot 9$ weights, four times one
# at width $c$. The time projections are cheap by comparison ($128 \cdot 2c$ per block).
#
# ### Its receptive field
#
# An output pixel can only depend on a window of the input, its **receptive field**. Going
# from the input towards the output, each layer widens the window by $(k-1)\,j$ input
# pixels, where $k$ is its kernel size and $j$ is the distance, in input pixels, between
# neighbouring positions of the layer's input ($j$ doubles after a stride-2 layer and halves
# after an upsampling). Along the longest path of `SimpleUNet` (the 1x1 skips only make
# shorter paths):

# %%
layers = [  # (name, kernel, stride); upsampling is a "kernel 1, stride 1/2" layer
    ("down1.conv1", 3, 1), ("down1.conv2", 3, 1), ("pool", 2, 2),
    ("down2.conv1", 3, 1), ("down2.conv2", 3, 1), ("bottleneck.conv1", 3, 1), ("bottleneck.conv2", 3, 1),
    ("up", 1, 0.5), ("up1.conv1", 3, 1), ("up1.conv2", 3, 1), ("out_conv", 3, 1),
]
r, j = 1, 1.0
for name, k, s in layers:
    r += (k - 1) * j
    j *= s
    print(f"{name:18s} receptive field {int(r):3d} px   spacing {j:g}")
rf_formula = int(r)

# %% [markdown]
# Now measure it: back-propagate one output pixel to the input and see which input pixels get
# a non-zero gradient. We use float64 and a 48x48 input so that the window fits, and check
# two output pixels of different parity (the max-pool could shift the window).

# %%
probe = SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=8, time_dim=16)).double()
grads = []
for pixel in (20, 21):
    x_in = torch.randn(1, 1, 48, 48, dtype=torch.float64, generator=g, requires_grad=True)
    probe(x_in, torch.tensor([100]))[0, 0, pixel, pixel].backward()
    grads.append(x_in.grad[0, 0].abs())
    rows = torch.nonzero(grads[-1].sum(1)).flatten()
    cols = torch.nonzero(grads[-1].sum(0)).flatten()
    print(f"output pixel ({pixel},{pixel}): depends on rows {rows.min().item()}..{rows.max().item()}, "
          f"cols {cols.min().item()}..{cols.max().item()} -> {rows.numel()} x {cols.numel()} pixels")
    assert rows.numel() == cols.numel() == rf_formula
print(f"measured receptive field = formula = {rf_formula} px")

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
for ax, grad, pixel in zip(axes, grads, (20, 21)):
    ax.imshow(grad.log10().clamp(min=-12).numpy(), cmap="magma")
    ax.plot([pixel], [pixel], "c+", ms=12)
    ax.set(title=f"log10 |d out[{pixel},{pixel}] / d x|", xticks=[], yticks=[])
plt.tight_layout()
plt.show()

# %% [markdown]
# 28 pixels covers a 16x16 digit whole, but not a 32x32 or a 64x64 image, the sizes the
# article has in mind: there, one output pixel decides how much noise to remove without
# seeing the rest of the object. Global structure (is this a face? where is the other eye?)
# is exactly what the heavy-noise steps must get right.
#
# ## 3. The course U-Net
#
# `dc.models.UNet` keeps the article's plan (residual blocks, time as a per-channel bias,
# skips by concatenation) and adds what the DDPM paper's network has, at a small scale. Its
# configuration is a dataclass; the defaults are the digits preset of lesson 05.

# %%
digits_config = UNetConfig()
unet = UNet(digits_config)
print(digits_config)
print(f"time embedding width {digits_config.emb_dim}, H and W must be multiples of {digits_config.size_multiple}")

# %% [markdown]
# ### Shapes through the network
#
# Forward hooks record every stage's output for a batch of two 16x16 grey images. The
# encoder keeps every output on a stack; each decoder block concatenates one of them
# (hence the channel counts of the up blocks' inputs), so there is a skip connection at
# every level, not only at the top.

# %%
records = []
stages = [("in_conv", unet.in_conv)]
stages += [(f"down[{i}] {type(m).__name__}", m) for i, m in enumerate(unet.down)]
stages += [("mid1", unet.mid1), ("mid_attn", unet.mid_attn), ("mid2", unet.mid2)]
stages += [(f"up[{i}] {type(m).__name__}", m) for i, m in enumerate(unet.up)]
stages += [("out_conv", unet.out_conv)]
hooks = [m.register_forward_hook(lambda m, inp, out, name=name: records.append((name, tuple(inp[0].shape), tuple(out.shape))))
         for name, m in stages]
x = torch.randn(2, 1, 16, 16, generator=g)
with torch.no_grad():
    out = unet(x, torch.tensor([3, 700]))
for h in hooks:
    h.remove()
for name, shape_in, shape_out in records:
    print(f"{name:26s} {str(shape_in):18s} -> {shape_out}")
assert out.shape == x.shape

# %% [markdown]
# What each addition is for:
#
# **GroupNorm, before each convolution.** Activations of a deep net drift in scale, and the
# inputs here range from clean images to pure noise. Normalising keeps every layer in the
# range where SiLU and the learning rate behave. BatchNorm would normalise with statistics
# of the whole batch, which mixes images at different noise levels and behaves differently
# in training and at sampling time; GroupNorm normalises each image on its own, over groups of
# channels. The check below makes that concrete: a sample's GroupNorm output does not depend
# on what else is in the batch, its BatchNorm output does.

# %%
feats = torch.randn(4, 32, 8, 8, generator=g)
gn, bn = nn.GroupNorm(8, 32), nn.BatchNorm2d(32)
assert torch.allclose(gn(feats)[:1], gn(feats[:1]), atol=1e-6)
assert not torch.allclose(bn(feats)[:1], bn(feats[:1]), atol=1e-3)
group_stats = gn(feats).reshape(4, 8, -1)  # (B, groups, 4 * 8 * 8)
assert group_stats.mean(-1).abs().max() < 1e-5 and (group_stats.var(-1, unbiased=False) - 1).abs().max() < 1e-3
print("GroupNorm: each image on its own, mean 0 and variance 1 per group; BatchNorm: depends on the batch")

# %% [markdown]
# **Several resolutions.** Each downsampling (a stride-2 convolution, learned rather than a
# fixed max-pool) doubles the reach of every later 3x3 convolution. We measure the
# receptive field of the convolution path of the digits configuration the same way as
# before, on a copy without GroupNorm (a normalisation's mean and variance are computed over
# the whole image, which makes every output depend a little on every input and would hide
# the window) and without attention, with a random output layer (the real one starts at
# zero, see below).

# %%
def conv_path_copy(config):
    """A copy of UNet(config) without attention, GroupNorm replaced by identity, random output conv."""
    model = UNet(dataclasses.replace(config, attention_levels=())).double()
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.GroupNorm):
                setattr(module, name, nn.Identity())
    nn.init.normal_(model.out_conv.weight, generator=g)
    return model.eval()


def receptive_field(model, size, pixel):
    x_in = torch.zeros(1, model.config.in_channels, size, size, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        x_in += torch.randn(x_in.shape, dtype=torch.float64, generator=g)
    model(x_in, torch.tensor([100]))[0, 0, pixel, pixel].backward()
    rows = torch.nonzero(x_in.grad[0].abs().sum((0, 2))).flatten()
    return rows.max().item() - rows.min().item() + 1


small = UNetConfig(base_channels=4, groups=4, dropout=0.0)  # narrower than the digits net: same receptive field, less compute
for mults in [(1,), (1, 2), (1, 2, 2)]:
    rf = receptive_field(conv_path_copy(dataclasses.replace(small, channel_mults=mults, attention_levels=())), 160, 80)
    print(f"channel_mults={str(mults):13s} {len(mults)} level(s): conv receptive field {rf:3d} px")

# %% [markdown]
# Each extra level roughly doubles the reach: with three levels the convolutions alone see
# 133 pixels, far more than a 16x16 digit or a 32x32 image. The middle of the network works on a 4x4 grid where one pixel stands for a
# 4x4 patch of the input, so a few cheap convolutions there relate distant parts of the image.
#
# **Self-attention at the lowest resolution.** A convolution mixes neighbours; attention
# lets every position read every other one in a single layer: with the queries, keys and
# values $Q, K, V$ (1x1 convolutions of the normalised features, one row per position),
# $\mathrm{softmax}(QK^\top/\sqrt{C})\,V$. Its cost grows with the square of the number of
# positions, which is why it goes where the grid is smallest:

# %%
for level in range(len(digits_config.channel_mults)):
    side = 16 // 2**level
    n = side * side
    marker = "  <- attention here" if level in digits_config.attention_levels else ""
    print(f"level {level}: {side:2d}x{side:<2d} grid, {n:3d} positions, {n * n:6,} attention weights per image{marker}")

# %% [markdown]
# With attention and GroupNorm kept, every output pixel depends on every input pixel, even on
# a large image (here with the attention's output projection made non-zero, since it too
# starts at zero so that each attention block begins as the identity):

# %%
full = UNet(dataclasses.replace(small, channel_mults=(1, 2, 2))).double().eval()
for module in full.modules():
    if isinstance(module, dc.models.unet.SelfAttention):
        nn.init.normal_(module.proj.weight, std=0.1, generator=g)
nn.init.normal_(full.out_conv.weight, generator=g)
x_in = torch.randn(1, 1, 160, 160, dtype=torch.float64, generator=g).requires_grad_()
full(x_in, torch.tensor([100]))[0, 0, 80, 80].backward()
assert bool((x_in.grad != 0).all())
print("with attention: one output pixel depends on all 160 x 160 input pixels")

# %% [markdown]
# **Dropout** (inside each residual block, before the second convolution). The digits
# dataset has 1,797 images, and a noise predictor trained long enough on it starts to
# memorise them. Dropping 10% of the activations during training is a cheap regulariser;
# in evaluation mode (`model.eval()`, which samplers use) it is switched off and the network
# is deterministic again.

# %%
noisy = UNet(UNetConfig(base_channels=8, dropout=0.5))
nn.init.normal_(noisy.out_conv.weight, std=0.1, generator=g)
x, t = torch.randn(2, 1, 16, 16, generator=g), torch.tensor([5, 600])
noisy.train()
assert not torch.allclose(noisy(x, t), noisy(x, t))
noisy.eval()
assert torch.equal(noisy(x, t), noisy(x, t))
print("train mode: two calls differ (dropout); eval mode: identical")

# %% [markdown]
# **Optional class labels.** With `num_classes=K`, a label embedding (a table of $K+1$ rows of
# the time embedding's width) is added to the time embedding, so the label reaches every
# block through the same per-channel bias. The extra row, label $K$, is the **null label**
# "no class given": lesson 08, on guidance, trains one network for both the conditional and
# the unconditional task by sometimes replacing the label by it (classifier-free guidance).

# %%
cond = UNet(UNetConfig(num_classes=10))
extra = count_parameters(cond) - count_parameters(unet)
print(f"label table {tuple(cond.label_embed.weight.shape)}: {extra:,} extra parameters = 11 x {digits_config.emb_dim}")
assert extra == 11 * digits_config.emb_dim
nn.init.normal_(cond.out_conv.weight, std=0.1, generator=g)
cond.eval()
x, t = torch.randn(3, 1, 16, 16, generator=g), torch.tensor([400, 400, 400])
with torch.no_grad():
    outs = [cond(x, t, torch.full((3,), label)) for label in (3, 7, 10)]  # 10 is the null label
assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
print("labels 3, 7 and the null label 10 give three different predictions")
try:
    cond(x, t)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# **A zero output layer.** The last convolution starts with zero weights and bias, so the
# untrained network predicts $\hat\epsilon = 0$ for every input. That is the best constant
# guess (the noise has mean zero), so the first loss is exactly $\mathbb{E}\|\epsilon\|^2$, one
# per element, instead of that plus the error of a random output that training would first
# have to unlearn. The gradient still flows: the output layer's weights get a gradient from
# its (non-zero) inputs at the first step, and the rest follows.

# %%
schedule = dc.linear_schedule()
x0 = dc.digits(size=16).images[:8]
noise = dc.noise_like(x0, torch.Generator().manual_seed(1))
with torch.no_grad():
    eps_hat = unet(x0, torch.full((8,), 500))
loss0 = dc.losses.l_simple(unet, schedule, x0, t=torch.full((8,), 500), noise=noise)
assert torch.count_nonzero(eps_hat) == 0 and torch.equal(loss0, noise.pow(2).mean())
print("untrained UNet: eps_hat == 0 everywhere, first L_simple == mean(noise^2)")

# %% [markdown]
# ### Its parameters
#
# Where the digits configuration spends its parameters, next to the article's network for
# the same grey 16x16 digits:

# %%
groups = {
    "time_embed": [unet.time_embed],
    "in_conv": [unet.in_conv],
    "encoder (down)": [unet.down],
    "middle": [unet.mid1, unet.mid_attn, unet.mid2],
    "decoder (up)": [unet.up],
    "out_norm + out_conv": [unet.out_norm, unet.out_conv],
}
total = 0
for name, modules in groups.items():
    n = sum(count_parameters(m) for m in modules)
    total += n
    print(f"{name:20s} {n:>10,}")
print(f"{'UNet (digits)':20s} {total:>10,}")
assert total == count_parameters(unet)
n_attn = sum(count_parameters(m) for m in unet.modules() if isinstance(m, dc.models.unet.SelfAttention))
n_norm = sum(count_parameters(m) for m in unet.modules() if isinstance(m, nn.GroupNorm))
print(f"{'  of which attention':20s} {n_attn:>10,}")
print(f"{'  of which GroupNorm':20s} {n_norm:>10,}")
print(f"{'SimpleUNet (digits)':20s} {count_parameters(digits_article):>10,}")
print(f"float32 checkpoint of the UNet: {4 * total / 1e6:.2f} MB")

# %% [markdown]
# ### It checks its input
#
# A U-Net with $L$ levels halves the resolution $L-1$ times, so the image side must be a
# multiple of $2^{L-1}$. Wrong shapes are caught before the first convolution, with a message
# that says what was expected. MNIST's 28x28 works with three levels (28 = 7 x 4) but not with
# four; pad it to 32x32 then.

# %%
four_levels = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2, 2, 2), attention_levels=(3,)))
for bad in (torch.zeros(2, 1, 28, 28), torch.zeros(2, 3, 32, 32)):
    try:
        four_levels(bad, torch.tensor([0, 1]))
    except ValueError as err:
        print("ValueError:", err)
padded = F.pad(torch.zeros(2, 1, 28, 28), (2, 2, 2, 2))  # (2, 1, 32, 32)
print("padded to 32x32:", tuple(four_levels(padded, torch.tensor([0, 1])).shape))

# %% [markdown]
# ## Summary
#
# - The timestep enters as sines and cosines of log-spaced frequencies (every scale from a few
#   steps to the whole chain), then a shared Linear-SiLU-Linear MLP, then one learned bias per
#   channel in every residual block.
# - The article's U-Net: one max-pool, a bottleneck, one skip; 808,131 parameters at its
#   defaults, every one accounted for, and a receptive field of 28 pixels.
# - The course U-Net adds GroupNorm (stable, per-image), several resolutions with skips at each
#   (a receptive field of 133 pixels for three levels), attention where the grid is 4x4 (every
#   pixel sees every other), dropout, an optional label embedding with a null label, and a zero
#   output layer (the first prediction is the best constant).
#
# Lesson 05 trains the course U-Net with $L_\text{simple}$. The article's `SimpleUNet` trains with the
# same loop (`ddpm-course train --preset article-digits`); the README's training-budget table
# compares the two recipes on the digits.
#
# ## Your turn
#
# Write each function, then run the cell under it: the check answers `correct`, a hint when it
# recognises a classic mistake, or the first case where your answer differs. Reference answers
# are in `solutions/04_unet.py`.
#
# **1. The sinusoidal embedding.** For integer steps `t` of shape $(B,)$ and an even `dim`, return
# $e(t)$ of shape $(B, \text{dim})$, sines first, then cosines, with the frequencies of section 1
# (without calling `sinusoidal_embedding`).

# %%
def my_embedding(t, dim):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("04.sinusoidal", my_embedding)

# %% [markdown]
# **2. Parameters of a convolution.** How many parameters (weights and biases) has a $k \times k$
# `nn.Conv2d(c_in, c_out, k)`?

# %%
def my_conv_params(c_in, c_out, k):
    raise NotImplementedError("your code here")


# %%
dc.exercises.check("04.conv_params", my_conv_params)

# %% [markdown]
# **3. A number.** How many parameters has `SimpleUNet(SimpleUNetConfig(in_channels=1,
# base_channels=32, time_dim=64))`? Count by hand as in section 2 (then check with
# `count_parameters` if you like).

# %%
my_simple_unet_params = None  # your number here

# %%
dc.exercises.check("04.simple_unet_params", my_simple_unet_params)
