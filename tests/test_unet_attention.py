"""The U-Net's attention through F.scaled_dot_product_attention equals the formula written out."""
import math

import pytest
import torch
from torch import nn

import ddpm_course as dc
from ddpm_course.models.unet import CrossAttention, SelfAttention, UNet

pytestmark = pytest.mark.usefixtures("one_thread")


def old_self_attention(attn: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The U-Net's self-attention as it was written before SDPA: einsum scores, softmax, einsum."""
    b, c, h, w = x.shape
    q, k, v = attn.qkv(attn.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # each (B, C, N)
    scores = torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c)  # (B, N, N)
    out = torch.einsum("bij,bcj->bci", scores.softmax(dim=-1), v)  # (B, C, N)
    return x + attn.proj(out.reshape(b, c, h, w))


def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


@pytest.mark.parametrize("shape", [(2, 8, 4, 4), (3, 16, 8, 8), (1, 8, 1, 1)])
def test_self_attention_sdpa_equals_the_old_formula(shape):
    g = torch.Generator().manual_seed(0)
    attn = SelfAttention(shape[1], groups=4).double()
    _randomise(attn, g)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(attn(x), old_self_attention(attn, x), rtol=1e-10, atol=1e-12)


def test_cross_attention_sdpa_equals_its_written_out_weights():
    g = torch.Generator().manual_seed(1)
    cross = CrossAttention(8, context_dim=6, groups=4).double()
    _randomise(cross, g)
    x = torch.randn(3, 8, 4, 4, generator=g, dtype=torch.float64)
    context = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    weights = cross.weights(x, context, mask)  # (B, N, L)
    _, _, v = cross._qkv(x, context)
    by_hand = x + cross.proj((weights @ v).transpose(1, 2).reshape(x.shape))
    torch.testing.assert_close(cross(x, context, mask), by_hand, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 16, dtype=torch.float64))
    assert torch.all(weights[1, :, 2:] == 0) and torch.all(weights[2, :, 1:] == 0)


def test_shipped_digits_model_loads_unchanged_and_matches_the_old_attention(monkeypatch):
    # Loading is strict: the same parameter names and shapes as before cross-attention existed.
    model = dc.pretrained("digits").model
    assert isinstance(model, UNet) and model.context_dim is None
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 1, 16, 16, generator=g)
    t = torch.tensor([0, 250, 600, 999])
    with torch.no_grad():
        new = model(x, t)
        monkeypatch.setattr(SelfAttention, "forward", old_self_attention)
        old = model(x, t)
    torch.testing.assert_close(new, old, rtol=1e-4, atol=1e-5)
