"""Prompts in miniature: a fixed vocabulary, a tokenizer, computed captions and a prompt encoder.

Text-to-image models read a prompt with a text encoder and let the U-Net attend to its token
vectors through cross-attention (Rombach et al. 2022, "High-resolution image synthesis with
latent diffusion models", section 3.3; Saharia et al. 2022, Imagen). This module is the same
machinery at the size of 16x16 digits. A prompt is at most two words, a stroke word and a
digit name ("thin seven", "seven", "thick", or "" for no prompt at all), so the language has
3 x 11 = 33 sentences, listed in :data:`PROMPTS`.

| piece             | code                       | shape / values                                   |
|-------------------|----------------------------|--------------------------------------------------|
| vocabulary        | ``VOCAB``                  | <pad>, <start>, thin, thick, zero, ..., nine      |
| tokens            | ``tokenize(prompts)[0]``   | (B, L) long, L = ``MAX_TOKENS`` = 3               |
| padding mask      | ``tokenize(prompts)[1]``   | (B, L) bool, True = a real token                 |
| token vectors     | ``PromptEncoder``          | (B, L, text_dim)                                 |
| ink               | ``ink(images)``            | (N,) mean brightness in [0, 1]                   |
| caption           | ``captions(images, labels)`` | "thin seven", "seven", "thick seven"           |
| prompt id         | ``prompt_ids(prompts)``    | (B,) index into ``PROMPTS``; ``NULL_PROMPT`` = "" |

Every prompt starts with ``<start>``: the empty prompt is then one real token, not a row of
padding that attention could not normalise. Captions are computed, not written: the stroke
word comes from the image's ink compared with the other images of its class (lowest third
"thin", highest third "thick", the middle third no stroke word).

Because the sentences can be numbered, a prompt's number works as a label: ``train`` and
``guidance.cfg`` handle :class:`PromptUNet` exactly as a class-conditional U-Net, with the
empty prompt as its null label, while the network itself reads the words with cross-attention.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._inputs import int_at_least
from .unet import CrossAttention, UNet, UNetConfig

__all__ = [
    "DIGIT_WORDS",
    "MAX_TOKENS",
    "NULL_PROMPT",
    "PROMPTS",
    "STROKE_WORDS",
    "VOCAB",
    "PromptEncoder",
    "PromptUNet",
    "PromptUNetConfig",
    "caption_data",
    "captions",
    "cross_attention_maps",
    "follows_stroke",
    "ink",
    "prompt_ids",
    "stroke_thresholds",
    "tokenize",
]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STROKE_WORDS = ("thin", "thick")
VOCAB = ("<pad>", "<start>", *STROKE_WORDS, *DIGIT_WORDS)
PAD, START = 0, 1
MAX_TOKENS = 3  # <start>, a stroke word, a digit word
PROMPTS: tuple[str, ...] = tuple(
    " ".join(w for w in (stroke, digit) if w)
    for stroke in ("", *STROKE_WORDS) for digit in ("", *DIGIT_WORDS) if stroke or digit
) + ("",)
NULL_PROMPT = len(PROMPTS) - 1  # the empty prompt: the null label of classifier-free guidance


def _words(prompt: str) -> list[str]:
    """Check one prompt against the grammar [stroke word] [digit word]; return its words."""
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a str; got {type(prompt).__name__}")
    words = prompt.lower().split()
    unknown = [w for w in words if w not in VOCAB[2:]]
    if unknown:
        raise ValueError(f"unknown word(s) {unknown} in prompt {prompt!r}; the words are {list(VOCAB[2:])}")
    strokes = [w for w in words if w in STROKE_WORDS]
    digit_words = [w for w in words if w in DIGIT_WORDS]
    if len(strokes) > 1 or len(digit_words) > 1 or words != strokes + digit_words:
        raise ValueError(
            f"a prompt is at most one stroke word {STROKE_WORDS} followed by at most one digit name, "
            f"e.g. 'thin seven', 'seven', 'thick' or ''; got {prompt!r}"
        )
    return words


def tokenize(prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
    """Prompts -> (tokens (B, MAX_TOKENS) long, mask (B, MAX_TOKENS) bool).

    Each row is ``<start>`` then the words' indices in ``VOCAB``, padded with ``<pad>`` (0);
    the mask is True on the real tokens.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    rows = [[START] + [VOCAB.index(w) for w in _words(p)] for p in prompts]
    if not rows:
        raise ValueError("prompts must hold at least one prompt")
    tokens = torch.full((len(rows), MAX_TOKENS), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens, tokens != PAD


def prompt_ids(prompts: str | Sequence[str]) -> Tensor:
    """Each prompt's index in :data:`PROMPTS` (its label): (B,) long. "" gives ``NULL_PROMPT``."""
    if isinstance(prompts, str):
        prompts = [prompts]
    return torch.tensor([PROMPTS.index(" ".join(_words(p))) for p in prompts], dtype=torch.long)


def ink(images: Tensor) -> Tensor:
    """How much ink a digit uses: the mean brightness in [0, 1], images (N, 1, H, W) in [-1, 1] -> (N,) float64.

    The digits are light strokes on a dark background, so a thicker stroke means more ink.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"images must have shape (N, C, H, W) in [-1, 1]; got {got}")
    return ((images.detach().double().cpu() + 1) / 2).clamp(0, 1).mean(dim=(1, 2, 3))


def stroke_thresholds(images: Tensor, labels: Tensor) -> Tensor:
    """Per class, the ink at its lower and upper third: (10, 2) float64; below the first is "thin",
    above the second "thick". Thickness is relative to the class (a one uses less ink than an eight)."""
    amount = ink(images)
    return torch.stack([torch.quantile(amount[labels == c], torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
                        for c in range(len(DIGIT_WORDS))])


def captions(images: Tensor, labels: Tensor, thresholds: Tensor | None = None) -> list[str]:
    """A caption per image, computed from its label and its ink: "thin seven", "seven" or "thick seven".

    thresholds: (10, 2) from :func:`stroke_thresholds` (default: those of these images).
    """
    thresholds = stroke_thresholds(images, labels) if thresholds is None else thresholds
    amount = ink(images)
    out = []
    for a, c in zip(amount.tolist(), labels.tolist()):
        lo, hi = thresholds[c].tolist()
        stroke = "thin " if a < lo else "thick " if a > hi else ""
        out.append(stroke + DIGIT_WORDS[c])
    return out


def caption_data(images: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Training pairs for the prompt model: (images (2N, C, H, W), prompt ids (2N,)).

    Every image appears twice: with its full caption, and with one of its words dropped at
    random (the stroke word or the digit name), so that partial prompts ("seven", "thick")
    mean something too. The empty prompt is left to ``train(p_uncond=...)``.
    """
    full = captions(images, labels)
    drop_digit = torch.rand(len(full), generator=generator) < 0.5  # (N,)
    partial = []
    for caption, label, drop in zip(full, labels.tolist(), drop_digit.tolist()):
        words = caption.split()
        partial.append(words[0] if drop and len(words) == 2 else DIGIT_WORDS[label])
    return torch.cat([images, images]), prompt_ids(full + partial)


class PromptEncoder(nn.Module):
    """A one-layer Transformer over the prompt's tokens: tokens (B, L), mask (B, L) -> (B, L, dim).

    Token embedding + learned position embedding, one pre-norm encoder layer whose
    self-attention ignores padding (``src_key_padding_mask``), and a final LayerNorm. With
    self-attention the words can change each other's vectors ("thin" next to "one" is not
    "thin" next to "eight"), as a text encoder's do.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        int_at_least("dim", dim, 1)
        int_at_least("heads", heads, 1)
        if dim % heads:
            raise ValueError(f"heads must divide dim; got dim={dim}, heads={heads}")
        self.token = nn.Embedding(len(VOCAB), dim)
        self.position = nn.Embedding(MAX_TOKENS, dim)
        self.layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)  # (L,)
        h = self.token(tokens) + self.position(positions)[None]  # (B, L, dim)
        return self.norm(self.layer(h, src_key_padding_mask=~mask))  # (B, L, dim)


@dataclass(frozen=True)
class PromptUNetConfig:
    """The prompt model: a course U-Net (no label embedding) with cross-attention at its
    attention levels, and a :class:`PromptEncoder` of width ``text_dim`` with ``text_heads`` heads.

    ``num_classes`` (a property) is the number of non-empty prompts: ``train`` and ``cfg`` treat
    prompt ids as labels, with the empty prompt ``NULL_PROMPT`` as the null label.
    """

    in_channels: int = 1
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (1, 2)
    dropout: float = 0.1
    groups: int = 8
    text_dim: int = 32
    text_heads: int = 2

    def __post_init__(self) -> None:
        for name in ("channel_mults", "attention_levels"):  # lists (from JSON) become tuples
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self.unet_config()  # the U-Net's own checks of the shared fields
        if not self.attention_levels:
            raise ValueError(
                "attention_levels must name at least one level: the prompt is read by cross-attention there"
            )
        int_at_least("text_dim", self.text_dim, 1)
        int_at_least("text_heads", self.text_heads, 1)

    @property
    def num_classes(self) -> int:
        return NULL_PROMPT

    def unet_config(self) -> UNetConfig:
        return UNetConfig(
            in_channels=self.in_channels, base_channels=self.base_channels, channel_mults=self.channel_mults,
            num_res_blocks=self.num_res_blocks, attention_levels=self.attention_levels, dropout=self.dropout,
            num_classes=None, groups=self.groups,
        )


class PromptUNet(nn.Module):
    """model(x_t (B, C, H, W), t (B,), y (B,) prompt ids) -> eps_hat (B, C, H, W).

    ``y`` indexes :data:`PROMPTS` (``prompt_ids(["thin seven"])``); the model looks up the
    prompt's tokens, encodes them with its :class:`PromptEncoder` and passes the token
    vectors and the padding mask to the U-Net's cross-attention blocks.
    """

    def __init__(self, config: PromptUNetConfig | None = None) -> None:
        super().__init__()
        config = PromptUNetConfig() if config is None else config
        if not isinstance(config, PromptUNetConfig):
            raise TypeError(f"config must be a PromptUNetConfig; got {type(config).__name__}")
        self.config = config
        self.encoder = PromptEncoder(config.text_dim, config.text_heads)
        self.unet = UNet(config.unet_config(), context_dim=config.text_dim)
        tokens, mask = tokenize(PROMPTS)
        self.register_buffer("prompt_tokens", tokens, persistent=False)  # (P, L), fixed by the vocabulary
        self.register_buffer("prompt_mask", mask, persistent=False)  # (P, L)

    def encode(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Prompt ids (B,) -> (token vectors (B, L, text_dim), mask (B, L))."""
        if not isinstance(y, Tensor) or y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
            got = getattr(y, "shape", type(y).__name__)
            raise ValueError(f"y must be a (B,) integer tensor of prompt ids; got {got}")
        if y.numel() and (y.min() < 0 or y.max() > NULL_PROMPT):
            raise ValueError(
                f"y must hold prompt ids in [0, {NULL_PROMPT}] (indices into PROMPTS; {NULL_PROMPT} is ''); "
                f"got values from {y.min().item()} to {y.max().item()}"
            )
        tokens, mask = self.prompt_tokens[y], self.prompt_mask[y]  # (B, L) each
        return self.encoder(tokens, mask), mask

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        if y is None:
            raise ValueError(f"y is required: prompt ids from prompt_ids([...]), or the empty prompt {NULL_PROMPT}")
        context, mask = self.encode(y.to(self.prompt_tokens.device))
        if context.shape[0] != x.shape[0]:
            raise ValueError(f"y must have one prompt id per image: ({x.shape[0]},); got {tuple(y.shape)}")
        return self.unet(x, t, context=context, context_mask=mask)


@torch.no_grad()
def cross_attention_maps(model: PromptUNet, x_t: Tensor, t: Tensor, y: Tensor) -> list[tuple[str, Tensor]]:
    """The attention of every cross-attention block during one forward pass.

    Returns (module name, weights (B, H, W, L)) per block, in the order they run: at each image
    position, how much attention each of the L prompt tokens receives (padding gets 0).
    """
    found: list[tuple[str, Tensor]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, CrossAttention):
            def hook(mod, args, _out, name=name):
                x, context, mask = args
                b, _, h, w = x.shape
                found.append((name, mod.weights(x, context, mask).reshape(b, h, w, -1)))  # (B, H, W, L)
            hooks.append(module.register_forward_hook(hook))
    try:
        model(x_t, t, y)
    finally:
        for handle in hooks:
            handle.remove()
    return found


def follows_stroke(images: Tensor, labels: Tensor, strokes: Sequence[str], reference: Tensor | None = None) -> Tensor:
    """Does each image's stroke follow its word? (N,) bool.

    "thin" asks for less ink than the median real digit of its class, "thick" for more;
    ``reference`` is (10,) the median ink per class (default: the digits' train split).
    """
    if reference is None:
        from ..data import digits

        real = digits(16, split="train")
        amount = ink(real.images)
        reference = torch.stack([amount[real.labels == c].median() for c in range(len(DIGIT_WORDS))])
    if len(strokes) != images.shape[0] or any(s not in STROKE_WORDS for s in strokes):
        raise ValueError(
            f"strokes must hold one of {STROKE_WORDS} per image ({images.shape[0]}); got {list(strokes)[:4]}..."
        )
    below = ink(images) < reference[labels.cpu()]  # (N,)
    wants_thin = torch.tensor([s == "thin" for s in strokes])
    return below == wants_thin
