"""The course U-Net: the article's idea with the parts that make it train well.

Architecture of DDPM (Ho et al. 2020, appendix B) at a small scale, with the label
embedding of classifier-free guidance (Ho & Salimans 2022) as an option, and, as a second
option, cross-attention to a sequence of prompt tokens after every self-attention, as
latent diffusion does with a text encoder (Rombach et al. 2022, section 3.3):

- a 3x3 input conv to ``base_channels``;
- an encoder of ``len(channel_mults)`` levels, each with ``num_res_blocks`` residual blocks
  at ``base_channels * mult`` channels, self-attention at the levels in ``attention_levels``,
  and a strided 3x3 conv halving the resolution between levels;
- a middle at the lowest resolution: residual block, attention (if the lowest level is an
  attention level), residual block;
- a decoder mirroring it, with ``num_res_blocks + 1`` blocks per level, each taking one
  skip connection from the encoder by concatenation, and nearest upsampling + 3x3 conv;
- GroupNorm -> SiLU -> a zero-initialised 3x3 conv back to ``in_channels``.

Residual blocks are pre-activation: GroupNorm -> SiLU -> conv, then the embedding added as
a per-channel shift, GroupNorm -> SiLU -> dropout -> conv, plus the skip. Both attentions go
through ``F.scaled_dot_product_attention`` (one fused kernel where the device has one).
The convolution weights are stored in channels_last (NHWC) memory order, which the
convolutions' activations then follow: the same values and the same network, about 1.1x
faster on a CPU in float32 (``set_weight_layout`` puts them back in NCHW order).

| symbol          | code                        | shape                          |
|-----------------|-----------------------------|--------------------------------|
| x_t             | ``x``                       | (B, in_channels, H, W)         |
| t               | ``t``                       | (B,) integer or float          |
| y               | ``y``                       | (B,) in [0, num_classes]; ``num_classes`` = null label |
| e(t) (+ e(y))   | ``emb``                     | (B, time_dim)                  |
| prompt tokens   | ``context``                 | (B, L, context_dim)            |
| padding mask    | ``context_mask``            | (B, L) bool, True = a real token |
| eps_hat         | output                      | (B, in_channels, H, W)         |

H and W must be divisible by 2**(len(channel_mults) - 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._inputs import check_image, check_labels, check_t, int_at_least
from .embeddings import TimeEmbedding

__all__ = [
    "CrossAttention", "Downsample", "ResAttnBlock", "ResBlock", "SelfAttention", "UNet", "UNetConfig", "Upsample",
    "set_weight_layout",
]


@dataclass(frozen=True)
class UNetConfig:
    """Every choice of the course U-Net. The defaults fit 16x16 grey digits.

    ``channel_mults[i]`` gives level i's width as a multiple of ``base_channels``; level i
    works at resolution H / 2**i. ``attention_levels`` are indices into ``channel_mults``
    (default: the lowest resolution only). ``num_classes=None`` makes an unconditional
    model; an int adds a label embedding with ``num_classes + 1`` rows, the last being the
    learned null label. ``time_dim=None`` means 4 * base_channels.
    """

    in_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    dropout: float = 0.1
    num_classes: int | None = None
    groups: int = 8
    time_dim: int | None = None

    def __post_init__(self) -> None:
        # lists (from JSON) become tuples so the config stays hashable and comparable
        for name in ("channel_mults", "attention_levels"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise ValueError(f"{name} must be a tuple of integers; got {value!r}")
            object.__setattr__(self, name, tuple(value))
        int_at_least("in_channels", self.in_channels, 1)
        int_at_least("base_channels", self.base_channels, 1)
        int_at_least("num_res_blocks", self.num_res_blocks, 1)
        int_at_least("groups", self.groups, 1)
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            raise ValueError(
                f"channel_mults must be a non-empty tuple of positive integers; got {self.channel_mults!r}"
            )
        levels = len(self.channel_mults)
        distinct = len(set(self.attention_levels)) == len(self.attention_levels)
        if any(not 0 <= i < levels for i in self.attention_levels) or not distinct:
            raise ValueError(
                f"attention_levels must be distinct indices into channel_mults, in [0, {levels - 1}]; "
                f"got {self.attention_levels!r}"
            )
        is_number = isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
        if not is_number or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1); got {self.dropout!r}")
        if self.num_classes is not None:
            int_at_least("num_classes", self.num_classes, 1)
        if self.time_dim is not None and (
            isinstance(self.time_dim, bool) or not isinstance(self.time_dim, int)
            or self.time_dim < 2 or self.time_dim % 2
        ):
            raise ValueError(f"time_dim must be None or an even integer >= 2; got {self.time_dim!r}")
        for m in self.channel_mults:
            if (self.base_channels * m) % self.groups:
                raise ValueError(
                    f"groups={self.groups} must divide every level's channel count "
                    f"base_channels * mult = {self.base_channels} * {m} = {self.base_channels * m}"
                )

    @property
    def emb_dim(self) -> int:
        """The width of the time (and label) embedding: ``time_dim`` or 4 * base_channels."""
        return 4 * self.base_channels if self.time_dim is None else self.time_dim

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: 2**(number of downsamplings)."""
        return 2 ** (len(self.channel_mults) - 1)


class ResBlock(nn.Module):
    """Pre-activation residual block with an embedding shift.

    x: (B, in_ch, H, W), emb: (B, emb_dim) -> (B, out_ch, H, W).
    GroupNorm keeps activations at a sane scale whatever the batch size (BatchNorm would mix
    statistics across samples at different noise levels); the embedding enters as one shift
    per channel, after the first conv as in the article.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # (B, out_ch, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, with a residual connection.

    x: (B, C, H, W) -> (B, C, H, W). Every position can read every other one, which a stack
    of 3x3 convs at a low resolution only does after many layers. The output projection
    starts at zero, so the block starts as the identity and learns how much to attend.
    The attention itself is softmax(q k^T / sqrt(C)) v, computed by
    ``F.scaled_dot_product_attention``.
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)  # each (B, N, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, N, C)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class CrossAttention(nn.Module):
    """Image positions attend to prompt tokens: queries from x, keys and values from the context.

    x: (B, C, H, W), context: (B, L, context_dim), mask: (B, L) bool (True = a real token,
    False = padding) -> (B, C, H, W). Each of the H*W positions takes a softmax-weighted
    average of the L token vectors (projected to C channels); padding tokens get weight 0.
    Like :class:`SelfAttention` it is residual with a zero-initialised output projection.
    """

    def __init__(self, channels: int, context_dim: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def _qkv(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, c, h, w = x.shape
        q = self.q(self.norm(x)).reshape(b, c, h * w).transpose(1, 2)  # (B, N, C)
        k, v = self.kv(context).chunk(2, dim=-1)  # each (B, L, C)
        return q, k, v

    def weights(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        """The attention map, written out: softmax over tokens of q k^T / sqrt(C), padding at -inf.

        Returns (B, H*W, L): row n is how position n shares its attention among the tokens.
        """
        q, k, _ = self._qkv(x, context)
        scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, N, L)
        return scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self._qkv(x, context)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])  # (B, N, C); mask (B, 1, L)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class ResAttnBlock(nn.Module):
    """A residual block, then self-attention and cross-attention where the level has them:
    (x, emb[, context, mask]) -> h."""

    def __init__(self, res: ResBlock, attn: SelfAttention | None, cross: CrossAttention | None = None) -> None:
        super().__init__()
        self.res = res
        self.attn = attn
        self.cross = cross

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        h = self.res(x, emb)
        if self.attn is not None:
            h = self.attn(h)
        return h if self.cross is None else self.cross(h, context, mask)


class Downsample(nn.Module):
    """A 3x3 conv with stride 2: (B, C, H, W) -> (B, C, H/2, W/2), learned rather than max-pooled."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv: (B, C, H, W) -> (B, C, 2H, 2W), no checkerboard artefacts."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """The course U-Net: model(x_t (B, C, H, W), t (B,), y (B,) | None) -> eps_hat (B, C, H, W).

    ``y`` is required when ``config.num_classes`` is set (labels in [0, num_classes - 1], or
    the null label ``num_classes`` for "no label") and must be None otherwise.

    ``context_dim`` (an int) adds a :class:`CrossAttention` after every self-attention, and
    ``forward`` then needs ``context`` (B, L, context_dim) and ``context_mask`` (B, L) bool.
    It is a constructor option, not a config field, so that every saved UNet config still
    loads: the prompt model of ``models/text.py`` builds its U-Net this way and stores
    ``context_dim`` in its own config.
    """

    def __init__(self, config: UNetConfig | None = None, context_dim: int | None = None) -> None:
        super().__init__()
        config = UNetConfig() if config is None else config
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig; got {type(config).__name__}")
        if context_dim is not None:
            int_at_least("context_dim", context_dim, 1)
            if not config.attention_levels:
                raise ValueError(
                    "context_dim needs at least one attention level: cross-attention follows self-attention"
                )
        self.config = config
        self.context_dim = context_dim
        base, emb_dim, groups, p = config.base_channels, config.emb_dim, config.groups, config.dropout
        widths = [base * m for m in config.channel_mults]
        last = len(widths) - 1

        self.time_embed = TimeEmbedding(emb_dim)
        self.label_embed = nn.Embedding(config.num_classes + 1, emb_dim) if config.num_classes is not None else None
        self.in_conv = nn.Conv2d(config.in_channels, base, 3, padding=1)

        # Encoder. ``skip_channels`` records the channel count of every tensor kept for the decoder.
        self.down = nn.ModuleList()
        skip_channels, ch = [base], base
        for level, width in enumerate(widths):
            for _ in range(config.num_res_blocks):
                self.down.append(self._stage(ch, width, level))
                ch = width
                skip_channels.append(ch)
            if level != last:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)

        self.mid1 = ResBlock(ch, ch, emb_dim, p, groups)
        self.mid_attn = SelfAttention(ch, groups) if last in config.attention_levels else nn.Identity()
        cross_in_middle = context_dim is not None and last in config.attention_levels
        self.mid_cross = CrossAttention(ch, context_dim, groups) if cross_in_middle else None
        self.mid2 = ResBlock(ch, ch, emb_dim, p, groups)

        # Decoder: one block per pushed skip, so num_res_blocks + 1 per level.
        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(config.num_res_blocks + 1):
                self.up.append(self._stage(ch + skip_channels.pop(), widths[level], level))
                ch = widths[level]
            if level != 0:
                self.up.append(Upsample(ch))

        self.out_norm = nn.GroupNorm(groups, ch)
        self.out_conv = nn.Conv2d(ch, config.in_channels, 3, padding=1)
        # Zero output: at initialisation eps_hat = 0, the best constant guess (E[eps] = 0),
        # so the first loss is exactly E||eps||^2 = 1 and no random output has to be unlearned.
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)
        # The same values in NHWC order: oneDNN's CPU convolutions run faster on it (the README's
        # throughput table); a checkpoint stores plain contiguous tensors either way.
        set_weight_layout(self, torch.channels_last)

    def _stage(self, in_ch: int, out_ch: int, level: int) -> ResAttnBlock:
        c = self.config
        attn = SelfAttention(out_ch, c.groups) if level in c.attention_levels else None
        cross = CrossAttention(out_ch, self.context_dim, c.groups) if attn is not None and self.context_dim else None
        return ResAttnBlock(ResBlock(in_ch, out_ch, c.emb_dim, c.dropout, c.groups), attn, cross)

    def _check_context(self, context: Tensor | None, mask: Tensor | None, batch: int) -> None:
        if self.context_dim is None:
            if context is not None or mask is not None:
                raise ValueError("context must be None: this UNet has no cross-attention (build it with context_dim)")
            return
        ok = isinstance(context, Tensor) and context.ndim == 3
        if not ok or context.shape[0] != batch or context.shape[2] != self.context_dim:
            got = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
            raise ValueError(
                f"context must be prompt tokens of shape (B, L, context_dim) = ({batch}, L, {self.context_dim}); "
                f"got {got}"
            )
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != context.shape[:2]:
            got = (tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"context_mask must be a bool tensor (B, L) = {tuple(context.shape[:2])}, True for real tokens; "
                f"got {got}"
            )
        if not bool(mask.any(dim=1).all()):
            raise ValueError(
                "context_mask must keep at least one token per sample (a start token): "
                "a row of padding only has no attention"
            )

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        y: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        c = self.config
        check_image(x, c.in_channels, c.size_multiple, "UNet")
        check_t(t, x.shape[0])
        check_labels(y, x.shape[0], c.num_classes, "UNet")
        self._check_context(context, context_mask, x.shape[0])
        emb = self.time_embed(t)  # (B, emb_dim)
        if self.label_embed is not None:
            emb = emb + self.label_embed(y.long())  # (B, emb_dim)

        h = self.in_conv(x)  # (B, base, H, W)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb, context, context_mask) if isinstance(stage, ResAttnBlock) else stage(h)
            skips.append(h)

        h = self.mid_attn(self.mid1(h, emb))
        if self.mid_cross is not None:
            h = self.mid_cross(h, context, context_mask)
        h = self.mid2(h, emb)

        for stage in self.up:
            if isinstance(stage, ResAttnBlock):
                h = torch.cat([h, skips.pop()], dim=1)  # (B, ch + skip_ch, h, w)
                h = stage(h, emb, context, context_mask)
            else:
                h = stage(h)
        return self.out_conv(F.silu(self.out_norm(h)))  # (B, in_channels, H, W)


def set_weight_layout(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """Store every 4-D weight of ``model`` in ``memory_format``, in place; the values do not change.

    memory_format: ``torch.channels_last`` (NHWC, the course U-Net's own) or
    ``torch.contiguous_format`` (NCHW, PyTorch's default). Convolutions follow their weights'
    layout, so the outputs differ only by float rounding. The format is given explicitly to
    ``clone`` so that the strides of 1x1 kernels, whose size-1 dimensions fit either layout,
    are reset too. Returns ``model``.
    """
    if memory_format not in (torch.channels_last, torch.contiguous_format):
        raise ValueError(f"memory_format must be torch.channels_last or torch.contiguous_format; got {memory_format!r}")
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.clone(memory_format=memory_format)
    return model
