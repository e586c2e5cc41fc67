"""Noise predictors: shapes, the time embedding's values, parameter counts, input checks, the registry."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from ddpm_course.models import (
    ARCHITECTURES,
    MLPConfig,
    MLPDenoiser,
    SimpleUNet,
    SimpleUNetConfig,
    TimeEmbedding,
    UNet,
    UNetConfig,
    build_model,
    count_parameters,
    model_spec,
    sinusoidal_embedding,
)
from ddpm_course.models.unet import ResAttnBlock, ResBlock, SelfAttention, set_weight_layout


def _t(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 1000, (b,), generator=torch.Generator().manual_seed(seed))


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _randomise_output(model: UNet) -> None:
    """The output conv starts at zero; give it random weights so the output depends on the input."""
    torch.manual_seed(0)
    nn.init.normal_(model.out_conv.weight, std=0.1)


# --- time embedding ---------------------------------------------------------------------

def test_sinusoid_at_zero_is_sin0_cos1():
    e = sinusoidal_embedding(torch.zeros(3, dtype=torch.long), 16)
    assert e.shape == (3, 16)
    torch.testing.assert_close(e[:, :8], torch.zeros(3, 8))
    torch.testing.assert_close(e[:, 8:], torch.ones(3, 8))


def test_sinusoid_hand_computed_values():
    # dim 6: freqs = exp(-[0, log(1e4)/2, log(1e4)]) = [1, 1e-2, 1e-4]
    e = sinusoidal_embedding(torch.tensor([3, 250]), 6).double()
    for row, t in zip(e, (3.0, 250.0)):
        args = [t * 1.0, t * 1e-2, t * 1e-4]
        expected = torch.tensor([math.sin(a) for a in args] + [math.cos(a) for a in args], dtype=torch.float64)
        torch.testing.assert_close(row, expected, atol=1e-5, rtol=0)


def test_sinusoid_matches_diffusers_timestep_embedding():
    embeddings = pytest.importorskip("diffusers.models.embeddings")
    t = torch.tensor([0, 1, 17, 500, 999])
    # diffusers' frequencies exp(-log(P) k / (half - shift)) with shift 1 are our linspace
    ref = embeddings.get_timestep_embedding(t, 64, flip_sin_to_cos=False, downscale_freq_shift=1)
    # both compute in float32: an argument near 999 carries a rounding error of ~1 ulp = 6e-5
    torch.testing.assert_close(sinusoidal_embedding(t, 64), ref, atol=1.2e-4, rtol=0)


def test_sinusoid_accepts_float_t_and_max_period():
    e_int = sinusoidal_embedding(torch.tensor([7, 40]), 8, max_period=100.0)
    e_float = sinusoidal_embedding(torch.tensor([7.0, 40.0], dtype=torch.float64), 8, max_period=100.0)
    torch.testing.assert_close(e_int, e_float)
    half = sinusoidal_embedding(torch.tensor([0.5]), 4, max_period=100.0)
    torch.testing.assert_close(half[0, 1], torch.tensor(math.sin(0.5 / 100.0)))


@pytest.mark.parametrize("dim", [0, 5, 7])
def test_sinusoid_rejects_odd_dim(dim):
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding(torch.zeros(2), dim)


def test_sinusoid_rejects_wrong_t_shape():
    with pytest.raises(ValueError, match="t must have shape"):
        sinusoidal_embedding(torch.zeros(2, 1), 8)


def test_time_embedding_is_sinusoid_then_mlp():
    torch.manual_seed(0)
    emb = TimeEmbedding(8, hidden=12)
    t = torch.tensor([0, 17, 999])
    manual = emb.fc2(nn.functional.silu(emb.fc1(sinusoidal_embedding(t, 8))))
    torch.testing.assert_close(emb(t), manual)
    assert emb(t).shape == (3, 8)
    assert emb.fc1.weight.shape == (12, 8) and emb.fc2.weight.shape == (8, 12)
    assert TimeEmbedding(8).fc1.weight.shape == (8, 8)  # the article's width by default


# --- shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("channels,size,base", [(1, 8, 8), (1, 16, 16), (3, 32, 8), (3, 10, 8)])
def test_simple_unet_shapes(channels, size, base):
    model = SimpleUNet(SimpleUNetConfig(in_channels=channels, base_channels=base, time_dim=16))
    x = _x(2, channels, size, size)
    assert model(x, _t(2)).shape == x.shape


@pytest.mark.parametrize(
    "config,shape",
    [
        (UNetConfig(base_channels=8, groups=4), (2, 1, 8, 8)),
        (UNetConfig(base_channels=8, groups=4), (2, 1, 16, 16)),
        (UNetConfig(base_channels=8, groups=4), (2, 1, 28, 28)),  # 28 is divisible by 4
        (UNetConfig(base_channels=8, groups=4), (1, 1, 32, 16)),
        (UNetConfig(in_channels=3, base_channels=8, channel_mults=(1, 2, 2, 2), attention_levels=(2, 3), groups=4),
         (2, 3, 32, 32)),
        (UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=2, attention_levels=(), groups=8),
         (3, 1, 16, 16)),
        (UNetConfig(in_channels=4, base_channels=16, channel_mults=(1,), attention_levels=(0,), time_dim=32),
         (2, 4, 5, 7)),
    ],
)
def test_unet_shapes(config, shape):
    model = UNet(config)
    x = _x(*shape)
    assert model(x, _t(shape[0])).shape == x.shape


@pytest.mark.parametrize("config", [MLPConfig(), MLPConfig(dim=3, hidden=16, depth=1, time_dim=8, num_classes=4)])
def test_mlp_shapes(config):
    model = MLPDenoiser(config)
    x = _x(5, config.dim)
    y = None if config.num_classes is None else torch.tensor([0, 1, 2, 3, 4])
    assert model(x, _t(5), y).shape == (5, config.dim)


def test_unet_levels_have_the_configured_widths_and_resolutions():
    config = UNetConfig(base_channels=8, channel_mults=(1, 2, 4), attention_levels=(1, 2), groups=4)
    model = UNet(config)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for m in model.down]
    model(_x(1, 1, 16, 16), _t(1))
    for h in hooks:
        h.remove()
    # level 0 block, down, level 1 block + attention, down, level 2 block + attention
    assert seen == [(1, 8, 16, 16), (1, 8, 8, 8), (1, 16, 8, 8), (1, 16, 4, 4), (1, 32, 4, 4)]
    assert [m.attn is not None for m in model.down if isinstance(m, ResAttnBlock)] == [False, True, True]
    n_attn = sum(isinstance(m, SelfAttention) for m in model.modules())
    assert n_attn == 1 + 1 + 1 + 2 + 2  # down 1 and 2, middle, up levels 1 and 2 (2 blocks each)


# --- parameter counts -------------------------------------------------------------------

def _conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def _linear(i: int, o: int) -> int:
    return i * o + o


def _res(i: int, o: int, d: int) -> int:
    return _conv(i, o, 3) + _conv(o, o, 3) + _linear(d, o) + (_conv(i, o, 1) if i != o else 0)


@pytest.mark.parametrize("cin,c,d", [(3, 64, 128), (1, 32, 64)])
def test_simple_unet_parameter_count_by_hand(cin, c, d):
    hand = (
        2 * _linear(d, d)  # time MLP
        + _res(cin, c, d) + _res(c, 2 * c, d) + _res(2 * c, 2 * c, d) + _res(3 * c, c, d)
        + _conv(c, cin, 3)
    )
    model = SimpleUNet(SimpleUNetConfig(in_channels=cin, base_channels=c, time_dim=d))
    assert count_parameters(model) == hand
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_article_default_parameter_count():
    # 3 -> 64 channels, time 128: the article's net as printed, counted by hand above
    assert count_parameters(SimpleUNet()) == 808_131


# --- behaviour --------------------------------------------------------------------------

def test_unet_starts_at_zero_output():
    model = UNet(UNetConfig(base_channels=8, groups=4))
    out = model(_x(2, 1, 16, 16), _t(2))
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("attention_levels", [(), (1,)])
def test_channels_last_weights_change_only_the_rounding(attention_levels):
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=3, base_channels=16, channel_mults=(1, 2), attention_levels=attention_levels,
                            groups=4, dropout=0.0))
    _randomise_output(model)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    nchw = set_weight_layout(copy.deepcopy(model), torch.contiguous_format)
    assert all(p.is_contiguous() and p.stride() == torch.empty(p.shape).stride() for p in nchw.parameters())
    for a, b in zip(model.state_dict().values(), nchw.state_dict().values()):
        assert torch.equal(a, b)  # the same values, in another order in memory
    x, t = _x(4, 3, 16, 16), _t(4)
    out, ref = model(x, t), nchw(x, t)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    loss, ref_loss = out.square().mean(), ref.square().mean()
    loss.backward()
    ref_loss.backward()
    for p, q in zip(model.parameters(), nchw.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="memory_format"):
        set_weight_layout(model, torch.preserve_format)


def test_unet_accepts_float_t():
    model = UNet(UNetConfig(base_channels=8, groups=4, dropout=0.0))
    _randomise_output(model)
    x, t = _x(2, 1, 8, 8), torch.tensor([3, 500])
    torch.testing.assert_close(model(x, t), model(x, t.double()))
    assert not torch.allclose(model(x, t), model(x, t.float() + 0.5))


def test_conditional_unet_uses_labels_and_null_label():
    config = UNetConfig(base_channels=8, groups=4, num_classes=3, dropout=0.0)
    model = UNet(config).eval()
    _randomise_output(model)
    nn.init.normal_(model.label_embed.weight)
    assert model.label_embed.num_embeddings == 4
    x, t = _x(2, 1, 8, 8), _t(2)
    outs = [model(x, t, torch.full((2,), k)) for k in range(4)]  # 3 is the null label
    for a in range(4):
        for b in range(a + 1, 4):
            assert (outs[a] - outs[b]).abs().max() > 1e-4, (a, b)
    assert torch.isfinite(outs[3]).all()


def test_self_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    c = 8
    attn = SelfAttention(c, groups=4)
    nn.init.normal_(attn.proj.weight, std=0.3)
    nn.init.normal_(attn.proj.bias, std=0.3)
    ref = nn.MultiheadAttention(c, num_heads=1, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(attn.qkv.weight[:, :, 0, 0])
        ref.in_proj_bias.copy_(attn.qkv.bias)
        ref.out_proj.weight.copy_(attn.proj.weight[:, :, 0, 0])
        ref.out_proj.bias.copy_(attn.proj.bias)
    x = _x(2, c, 4, 4)
    seq = attn.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
    expected = x + ref(seq, seq, seq, need_weights=False)[0].transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cin,cout", [(16, 16), (8, 16)])
def test_res_block_matches_diffusers_resnet_block(cin, cout):
    resnet = pytest.importorskip("diffusers.models.resnet")
    torch.manual_seed(0)
    ours = ResBlock(cin, cout, emb_dim=12, dropout=0.0, groups=4)
    ref = resnet.ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=12, groups=4, eps=1e-5, dropout=0.0)
    for m in ours.modules():  # non-trivial norms, so the copy of every tensor matters
        if isinstance(m, nn.GroupNorm):
            nn.init.normal_(m.weight), nn.init.normal_(m.bias)
    pairs = [
        ("norm1", "norm1"), ("conv1", "conv1"), ("emb_proj", "time_emb_proj"), ("norm2", "norm2"), ("conv2", "conv2"),
    ]
    if cin != cout:
        pairs.append(("skip", "conv_shortcut"))
    with torch.no_grad():
        for a, b in pairs:
            getattr(ref, b).weight.copy_(getattr(ours, a).weight)
            getattr(ref, b).bias.copy_(getattr(ours, a).bias)
    x, emb = _x(2, cin, 8, 8), _x(2, 12, seed=1)
    torch.testing.assert_close(ours(x, emb), ref(x, emb), atol=1e-5, rtol=1e-5)


def test_dropout_is_active_only_in_training():
    model = UNet(UNetConfig(base_channels=8, groups=4, dropout=0.5))
    _randomise_output(model)
    for m in model.modules():  # make the residual branches matter
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.1)
    x, t = _x(2, 1, 8, 8), _t(2)
    model.eval()
    torch.testing.assert_close(model(x, t), model(x, t))
    model.train()
    torch.manual_seed(1)
    a = model(x, t)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x, t))


@pytest.mark.parametrize("pixel", [20, 21])
def test_simple_unet_receptive_field(pixel):
    # Longest path: 2 convs at full resolution (+2 each), max-pool (+1, then steps of 2),
    # 4 convs at half resolution (+2 * 2 each), upsample, 3 convs at full resolution (+2 each):
    # 1 + 4 + 1 + 16 + 6 = 28 input pixels per side, for either parity of the output pixel.
    model = SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=4, time_dim=8)).double()
    x = torch.randn(1, 1, 48, 48, dtype=torch.float64, requires_grad=True)
    model(x, torch.tensor([10]))[0, 0, pixel, pixel].backward()
    for axis in (0, 1):
        hit = torch.nonzero(x.grad[0, 0].abs().sum(axis)).flatten()
        assert hit.max().item() - hit.min().item() + 1 == 28
        assert hit.numel() == 28  # no holes


# --- bad input --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_unet():
    config = UNetConfig(base_channels=8, channel_mults=(1, 2, 2, 2), attention_levels=(3,), groups=4, num_classes=10)
    return UNet(config)


@pytest.mark.parametrize(
    "x_shape,t,y,match",
    [
        ((2, 3, 16, 16), _t(2), torch.tensor([0, 1]), "in_channels=1"),
        ((2, 1, 28, 28), _t(2), torch.tensor([0, 1]), "divisible by 8"),
        ((1, 16, 16), _t(1), torch.tensor([0]), "x must have shape"),
        ((2, 1, 16, 16), _t(3), torch.tensor([0, 1]), "t must have shape"),
        ((2, 1, 16, 16), _t(2)[:, None], torch.tensor([0, 1]), "t must have shape"),
        ((2, 1, 16, 16), _t(2), torch.tensor([0, 11]), "y must lie in"),
        ((2, 1, 16, 16), _t(2), torch.tensor([-1, 1]), "y must lie in"),
        ((2, 1, 16, 16), _t(2), torch.tensor([0]), "y must have shape"),
        ((2, 1, 16, 16), _t(2), None, "y is required"),
    ],
)
def test_unet_rejects_bad_input(small_unet, x_shape, t, y, match):
    with pytest.raises(ValueError, match=match):
        small_unet(torch.zeros(x_shape), t, y)


def test_unet_rejects_float_labels(small_unet):
    with pytest.raises(TypeError, match="y must hold integer"):
        small_unet(torch.zeros(2, 1, 16, 16), _t(2), torch.tensor([0.0, 1.0]))


def test_unconditional_models_reject_labels():
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="y must be None"):
        UNet(UNetConfig(base_channels=8, groups=4))(torch.zeros(2, 1, 8, 8), _t(2), y)
    with pytest.raises(ValueError, match="y must be None"):
        SimpleUNet(SimpleUNetConfig(1, 8, 8))(torch.zeros(2, 1, 8, 8), _t(2), y)
    with pytest.raises(ValueError, match="y must be None"):
        MLPDenoiser()(torch.zeros(2, 2), _t(2), y)


def test_simple_unet_and_mlp_reject_bad_shapes():
    model = SimpleUNet(SimpleUNetConfig(1, 8, 8))
    with pytest.raises(ValueError, match="divisible by 2"):
        model(torch.zeros(2, 1, 7, 8), _t(2))
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.zeros(2, 3, 8, 8), _t(2))
    with pytest.raises(ValueError, match="dim"):
        MLPDenoiser()(torch.zeros(2, 3), _t(2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(base_channels=12, groups=8), "groups=8 must divide"),
        (dict(attention_levels=(3,)), "attention_levels"),
        (dict(channel_mults=()), "channel_mults"),
        (dict(dropout=1.0), "dropout"),
        (dict(num_classes=0), "num_classes"),
        (dict(time_dim=33), "time_dim"),
        (dict(in_channels=0), "in_channels"),
    ],
)
def test_unet_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**kwargs)


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="time_dim"):
        SimpleUNetConfig(time_dim=3)
    with pytest.raises(ValueError, match="depth"):
        MLPConfig(depth=0)
    with pytest.raises(TypeError, match="UNetConfig"):
        UNet(SimpleUNetConfig())


# --- registry ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "model",
    [
        SimpleUNet(SimpleUNetConfig(1, 8, 16)),
        UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), groups=4, num_classes=10)),
        MLPDenoiser(MLPConfig(hidden=16, depth=2, num_classes=3)),
    ],
    ids=["SimpleUNet", "UNet", "MLPDenoiser"],
)
def test_build_model_from_spec_round_trip(model):
    arch, config = model_spec(model)
    arch, config = json.loads(json.dumps([arch, config]))  # what a checkpoint stores
    rebuilt = build_model(arch, config)
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    a, b = model.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    rebuilt.load_state_dict(a)
    model.eval(), rebuilt.eval()
    x = _x(2, 2) if arch == "MLPDenoiser" else _x(2, 1, 8, 8)
    y = torch.tensor([0, 1]) if model.config.num_classes else None
    torch.testing.assert_close(rebuilt(x, _t(2), y), model(x, _t(2), y))


def test_registry_covers_every_architecture():
    assert {"SimpleUNet", "UNet", "MLPDenoiser"} <= set(ARCHITECTURES)
    for arch, (model_cls, config_cls) in ARCHITECTURES.items():
        assert model_spec(model_cls(config_cls()))[0] == arch


def test_build_model_rejects_bad_specs():
    _, config = model_spec(UNet(UNetConfig(base_channels=8, groups=4)))
    with pytest.raises(ValueError, match="arch must be one of"):
        build_model("ResNet", config)
    with pytest.raises(ValueError, match="unknown: \\['width'\\]"):
        build_model("UNet", {**config, "width": 3})
    missing = dict(config)
    del missing["groups"]
    with pytest.raises(ValueError, match="missing: \\['groups'\\]"):
        build_model("UNet", missing)
    with pytest.raises(TypeError, match="registered architectures"):
        model_spec(nn.Linear(2, 2))
