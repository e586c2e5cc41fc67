"""The training loop: it learns, it is repeatable (bit for bit) and equals a plain Algorithm 1 loop, its
EMA is the textbook average, its guard fires on non-finite numbers, Ctrl-C keeps what was learned
and a resumed run ends where the run left alone ends."""
import math

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import ddpm_course as dc
from ddpm_course import models
from ddpm_course.train import PRESETS, NonFiniteLossError, build_preset, ema_decay_at, train
from ddpm_course.train.loop import _ema_warmup_fn, _lr_factor


def _mlp(seed: int = 0, num_classes=None) -> nn.Module:
    torch.manual_seed(seed)
    return models.MLPDenoiser(models.MLPConfig(dim=2, hidden=32, depth=2, time_dim=16, num_classes=num_classes))


def _points(n: int = 512) -> torch.Tensor:
    return dc.toy2d("mixture", n=n, generator=torch.Generator().manual_seed(0))


def test_training_reduces_the_loss_on_a_toy_set():
    from ddpm_course.losses import l_simple

    model, schedule, data = _mlp(), dc.linear_schedule(1000), _points()

    def held_out_loss():  # the same t and noise before and after: only the weights change
        with torch.no_grad():
            return l_simple(model.eval(), schedule, data, generator=torch.Generator().manual_seed(99)).item()

    before = held_out_loss()
    result = train(model, schedule, data, steps=400, batch_size=128, lr=3e-3, warmup_steps=20,
                   generator=torch.Generator().manual_seed(0), progress=False)
    after = held_out_loss()
    assert result.steps == 400 and len(result.losses) == 400
    assert after < 0.6 * before, (before, after)
    assert result.images_per_second > 0 and result.seconds > 0
    assert not result.model.training and not result.ema_model.training


def test_same_generator_same_weights_including_dropout():
    def run():
        torch.manual_seed(123)  # the model's init is the caller's business; same init here
        config = models.UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                   attention_levels=(), dropout=0.3, num_classes=None, groups=4, time_dim=None)
        model = models.UNet(config)
        data = dc.digits(8, split="train")
        return train(model, dc.linear_schedule(50), data, steps=4, batch_size=16,
                     generator=torch.Generator().manual_seed(7), progress=False)

    state = torch.get_rng_state()
    a = run()
    torch.set_rng_state(state)
    b = run()
    assert a.losses == b.losses
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_global_rng_is_left_alone():
    model, data = _mlp(), _points(64)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train(model, dc.linear_schedule(20), data, steps=2, batch_size=8, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_ema_differs_from_raw_and_equals_a_hand_made_average():
    decay, schedule, data = 0.9, dc.linear_schedule(20), _points(64)

    def run(steps):
        return train(_mlp(), schedule, data, steps=steps, batch_size=16, lr=1e-2, warmup_steps=0, lr_decay=False,
                     ema_decay=decay, generator=torch.Generator().manual_seed(3), progress=False)

    raw = [dict(run(k).model.named_parameters()) for k in (1, 2, 3)]  # a k-step run is a prefix of a longer one
    three = run(3)
    d1, d2 = ema_decay_at(1, decay), ema_decay_at(2, decay)  # 2/11 and 3/12: the warm-up, below 0.9
    for name, p_ema in three.ema_model.named_parameters():
        expected = d2 * (d1 * raw[0][name] + (1 - d1) * raw[1][name]) + (1 - d2) * raw[2][name]
        assert torch.allclose(p_ema, expected, atol=1e-6), name
        assert torch.equal(dict(three.model.named_parameters())[name], raw[2][name])
    differs = [not torch.equal(p, q) for p, q in zip(three.ema_model.parameters(), three.model.parameters())]
    assert any(differs)
    assert three.final_model is three.ema_model


def test_ema_decay_warms_up_to_the_requested_decay():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(8991, 0.999) == pytest.approx(0.999)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(10**6, 0.9) == 0.9


def test_ema_forgets_a_zero_initialised_layer():
    # 3,000 updates with a fixed decay of 0.999 keep 0.999**2999 = 5% of the starting weights; a
    # zero-initialised output layer would shrink every prediction by that much. The warm-up keeps
    # a weight of 10! (2999 + 1)! / (2999 + 10)! ~ 2e-25 on them.
    def final_weight(multi_avg_fn) -> float:
        layer = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(layer.weight)
        ema = AveragedModel(layer, multi_avg_fn=multi_avg_fn)
        ema.update_parameters(layer)  # the copy of the starting weights
        with torch.no_grad():
            layer.weight.fill_(1.0)
        for _ in range(2999):
            ema.update_parameters(layer)
        return ema.module.weight.item()

    assert final_weight(get_ema_multi_avg_fn(0.999)) == pytest.approx(1 - 0.999**2999, abs=1e-5)  # ~0.950
    assert final_weight(_ema_warmup_fn(0.999)) == pytest.approx(1.0, abs=1e-6)  # float32 round-off


def test_ema_copies_integer_buffers_and_averages_float_ones():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = AveragedModel(net, multi_avg_fn=_ema_warmup_fn(0.9), use_buffers=True)
    means = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        net(torch.randn(8, 2, generator=gen))  # BatchNorm counts batches in an integer buffer
        ema.update_parameters(net)
        means.append(net[1].running_mean.clone())
    assert ema.module[1].num_batches_tracked.item() == 3
    d1, d2 = ema_decay_at(1, 0.9), ema_decay_at(2, 0.9)
    expected = d2 * (d1 * means[0] + (1 - d1) * means[1]) + (1 - d2) * means[2]
    assert torch.allclose(ema.module[1].running_mean, expected, atol=1e-6)


def test_the_articles_recipe_is_expressible():
    result = train(_mlp(), dc.linear_schedule(20), _points(64), steps=3, batch_size=16, optimizer="adam",
                   lr=1e-3, warmup_steps=0, lr_decay=False, weight_decay=0.0, grad_clip=None, ema_decay=None,
                   progress=False)
    assert result.ema_model is None and result.final_model is result.model


def test_non_finite_data_is_refused_before_training():
    data = _points(64).clone()
    data[17, 1] = math.inf
    with pytest.raises(ValueError, match=r"data holds NaN or infinite values.*example 17"):
        train(_mlp(), dc.linear_schedule(20), data, steps=5, batch_size=16, progress=False)


class _BlowsUpAtStep(nn.Module):
    """A noise predictor that returns inf on its third call."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x, t):
        self.calls += 1
        out = self.net(x)
        return out * math.inf if self.calls == 3 else out


def test_nan_guard_names_the_step():
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        train(_BlowsUpAtStep(), dc.linear_schedule(20), _points(64), steps=5, batch_size=16, progress=False)


def test_minutes_budget_stops():
    result = train(_mlp(), dc.linear_schedule(20), _points(64), minutes=0.01, batch_size=16, progress=False)
    assert result.steps >= 1 and result.seconds < 5


def test_class_conditional_training_uses_labels():
    model = _mlp(num_classes=10)
    data = dc.digits(8, split="train")
    flat = dc.ImageData(data.images.flatten(1)[:, :2].contiguous(), data.labels)  # 2-D points with digit labels
    result = train(model, dc.linear_schedule(20), flat, steps=3, batch_size=16, p_uncond=0.2, progress=False)
    assert result.steps == 3
    with pytest.raises(ValueError, match="labels"):
        train(_mlp(num_classes=10), dc.linear_schedule(20), _points(64), steps=1, progress=False)
    with pytest.raises(ValueError, match="p_uncond"):
        train(_mlp(), dc.linear_schedule(20), _points(64), steps=1, p_uncond=0.1, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "budget"),
    (dict(steps=0), "steps"),
    (dict(steps=1, optimizer="sgd"), "optimizer"),
    (dict(steps=1, optimizer="adam", weight_decay=0.1), "weight_decay"),
    (dict(steps=1, ema_decay=1.0), "ema_decay"),
    (dict(steps=1, grad_clip=0.0), "grad_clip"),
    (dict(steps=1, batch_size=0), "batch_size"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(_mlp(), dc.linear_schedule(20), _points(64), progress=False, **kwargs)
    with pytest.raises(TypeError, match="data"):
        train(_mlp(), dc.linear_schedule(20), [[0.0, 0.0]], steps=1, progress=False)


def test_learning_rate_warm_up_then_cosine_decay():
    assert _lr_factor(0, 10, True, 0.0) == pytest.approx(0.1)
    assert _lr_factor(9, 10, True, 0.0) == pytest.approx(1.0)
    assert _lr_factor(50, 10, True, 0.5) == pytest.approx(0.5)
    assert _lr_factor(100, 10, True, 1.0) == pytest.approx(0.0)
    assert _lr_factor(100, 10, False, 1.0) == pytest.approx(1.0)


def test_presets_build():
    for name in PRESETS:
        run = build_preset(name, seed=0)
        x = torch.zeros(2, *run.sample_shape)
        with torch.no_grad():
            assert run.model(x, torch.tensor([0, run.schedule.T - 1])).shape == x.shape
    with pytest.raises(ValueError, match="preset"):
        build_preset("imagenet")



def _algorithm_1(model: nn.Module, schedule, images: torch.Tensor, labels, *, steps: int, batch_size: int, lr: float,
                 warmup_steps: int, weight_decay: float = 0.0, p_uncond: float = 0.0, ema_decay: float = 0.999,
                 grad_clip: float = 1.0, generator: torch.Generator) -> tuple[nn.Module, nn.Module]:
    """Ho et al.'s Algorithm 1 with the course recipe, written as one plain loop: the reference that
    ``train()`` (split into named pieces, with budgets, resume and guards around it) must equal.

    The same random draws in the same order: the global RNG (dropout) seeded from the generator,
    then per step the batch indices (fresh permutations, a batch may straddle two passes), t, the
    noise, the dropped labels. AdamW with linear warm-up and a half cosine, clipping, and an EMA
    whose decay warms up as min(decay, (1 + k) / (10 + k)) (the first update copies the weights).
    """
    import copy

    from ddpm_course.forward import q_sample

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        ema, n_ema = copy.deepcopy(model), 0

        def lr_at(step: int) -> float:
            warm = min(1.0, (step + 1) / warmup_steps)
            return lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / steps)))

        order, cursor = torch.empty(0, dtype=torch.long), 0
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            while cursor + batch_size > order.numel():
                order, cursor = torch.cat([order[cursor:], torch.randperm(images.shape[0], generator=generator)]), 0
            idx, cursor = order[cursor : cursor + batch_size], cursor + batch_size
            x0 = images[idx]
            t = torch.randint(0, schedule.T, (batch_size,), generator=generator)
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            x_t, _ = q_sample(schedule, x0, t, noise=noise)
            if labels is None:
                eps_hat = model(x_t, t)
            else:
                y = labels[idx]
                if p_uncond > 0:
                    drop = torch.rand(batch_size, generator=generator) < p_uncond
                    y = torch.where(drop, torch.full_like(y, model.config.num_classes), y)
                eps_hat = model(x_t, t, y)
            loss = torch.nn.functional.mse_loss(eps_hat, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            with torch.no_grad():
                for e, p in zip(list(ema.parameters()) + list(ema.buffers()),
                                list(model.parameters()) + list(model.buffers())):
                    if n_ema == 0 or not e.is_floating_point():
                        e.copy_(p)
                    else:
                        e.lerp_(p, 1.0 - min(ema_decay, (1.0 + n_ema) / (10.0 + n_ema)))
            n_ema += 1
    return model.eval(), ema.eval()


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_train_is_algorithm_1_bit_for_bit():
    # Both runs happen in this process, on this CPU's kernels and thread count, with the same
    # operations in the same order: identical bits is the claim, and it holds on every machine.
    # (Comparing against numbers recorded on one CPU would not: another CPU rounds differently.)
    def mlp_run(fit):
        data = dc.toy2d("mixture", n=200, generator=torch.Generator().manual_seed(0))
        return fit(_mlp(), dc.linear_schedule(50), data, generator=torch.Generator().manual_seed(1))

    got = mlp_run(lambda m, s, d, generator: train(m, s, d, steps=30, batch_size=64, warmup_steps=5, lr=1e-3,
                                                   generator=generator, progress=False))
    ref = mlp_run(lambda m, s, d, generator: _algorithm_1(m, s, d, None, steps=30, batch_size=64, lr=1e-3,
                                                          warmup_steps=5, generator=generator))
    _assert_same_weights(got.model, ref[0])
    _assert_same_weights(got.ema_model, ref[1])

    def unet_run(fit):
        torch.manual_seed(123)
        unet = models.UNet(models.UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                             attention_levels=(), dropout=0.3, num_classes=3, groups=4,
                                             time_dim=None))
        digits = dc.digits(8, split="train")
        return fit(unet, dc.cosine_schedule(40), digits.images[:100], digits.labels[:100] % 3,
                   torch.Generator().manual_seed(7))

    got = unet_run(lambda m, s, x, y, g: train(m, s, dc.ImageData(x, y), steps=6, batch_size=16, warmup_steps=2,
                                                p_uncond=0.2, weight_decay=0.01, generator=g, progress=False))
    ref = unet_run(lambda m, s, x, y, g: _algorithm_1(m, s, x, y, steps=6, batch_size=16, lr=1e-3, warmup_steps=2,
                                                       p_uncond=0.2, weight_decay=0.01, generator=g))
    _assert_same_weights(got.model, ref[0])
    _assert_same_weights(got.ema_model, ref[1])


@pytest.mark.parametrize("minutes", [math.inf, math.nan, -1.0, 0.0])
def test_budgets_must_be_finite(minutes):
    with pytest.raises(ValueError, match="minutes must be a finite number"):
        train(_mlp(), dc.linear_schedule(20), _points(64), minutes=minutes, progress=False)


def test_a_budget_that_allows_no_step_is_an_error():
    model = _mlp()
    with pytest.raises(ValueError, match="ended before the first step"):
        train(model, dc.linear_schedule(20), _points(64), minutes=1e-9, batch_size=16, progress=False)
    assert not model.training


def test_ctrl_c_stops_at_the_step_boundary_and_keeps_the_ema():
    import os
    import signal

    calls = []

    def press_ctrl_c_on_the_third_forward(module, inputs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)

    model = _mlp()
    model.register_forward_pre_hook(press_ctrl_c_on_the_third_forward)
    before = signal.getsignal(signal.SIGINT)
    result = train(model, dc.linear_schedule(20), _points(64), steps=50, batch_size=16, progress=False)
    assert result.interrupted and result.steps == 3 and len(result.losses) == 3  # the third step was finished
    assert result.ema_model is not None and not result.model.training and not result.ema_model.training
    assert result.state is not None and result.state.scalars["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_an_immediate_interrupt_inside_a_step_returns_the_steps_before_it():
    class Interrupts(nn.Module):  # a KeyboardInterrupt raised in the middle of the 5th forward pass
        def __init__(self):
            super().__init__()
            self.inner, self.calls = _mlp(), 0

        def forward(self, x, t):
            self.calls += 1
            if self.calls == 5:
                raise KeyboardInterrupt
            return self.inner(x, t)

    model = Interrupts()
    result = train(model, dc.linear_schedule(20), _points(64), steps=50, batch_size=16, ema_decay=None, progress=False)
    assert result.interrupted and result.steps == 4 and not model.training
    assert result.state is not None  # interrupted before the optimiser step: the weights are those of step 4


def _unet_run(**kwargs):
    torch.manual_seed(123)
    model = models.UNet(models.UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                          attention_levels=(1,), dropout=0.3, num_classes=3, groups=4, time_dim=None))
    digits = dc.digits(8, split="train")
    digits = dc.ImageData(digits.images[:80], digits.labels[:80] % 3)
    return train(model, dc.cosine_schedule(40), digits, steps=9, batch_size=16, warmup_steps=3, p_uncond=0.2,
                 weight_decay=0.01, generator=torch.Generator().manual_seed(7), progress=False, **kwargs)


@pytest.mark.parametrize("stop_at", [1, 5])
def test_a_run_resumed_at_step_k_ends_bit_identical_to_the_run_left_alone(tmp_path, stop_at):
    from ddpm_course.checkpoint import load_checkpoint, save_checkpoint

    whole = _unet_run()

    class StopAt:  # a Ctrl-C after step stop_at, at the step boundary (what a first Ctrl-C does)
        def __init__(self):
            self.calls = 0

        def __call__(self, module, inputs):
            self.calls += 1
            if self.calls == stop_at:
                import os
                import signal

                os.kill(os.getpid(), signal.SIGINT)

    part = _interrupted_unet_run(StopAt())
    assert part.interrupted and part.steps == stop_at
    # through the files, as the CLI does: tensors in safetensors, scalars in JSON
    save_checkpoint(tmp_path / "part", part.final_model, dc.cosine_schedule(40), sample_shape=(1, 8, 8),
                    train_state=part.state)
    state = load_checkpoint(tmp_path / "part").train_state
    resumed = _unet_run(resume=state)
    assert resumed.steps == 9 and not resumed.interrupted
    assert resumed.losses == whole.losses
    for a, b in ((resumed.model, whole.model), (resumed.ema_model, whole.ema_model)):
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb), name


def _interrupted_unet_run(hook):
    torch.manual_seed(123)
    model = models.UNet(models.UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                          attention_levels=(1,), dropout=0.3, num_classes=3, groups=4, time_dim=None))
    model.register_forward_pre_hook(hook)
    digits = dc.digits(8, split="train")
    digits = dc.ImageData(digits.images[:80], digits.labels[:80] % 3)
    return train(model, dc.cosine_schedule(40), digits, steps=9, batch_size=16, warmup_steps=3, p_uncond=0.2,
                 weight_decay=0.01, generator=torch.Generator().manual_seed(7), progress=False)


def test_resume_refuses_other_settings():
    part = train(_mlp(), dc.linear_schedule(20), _points(64), steps=2, batch_size=16, progress=False)
    with pytest.raises(ValueError, match="batch_size: saved 16, now 8"):
        train(_mlp(), dc.linear_schedule(20), _points(64), steps=2, batch_size=8, progress=False, resume=part.state)
    with pytest.raises(ValueError, match="trained on 64 examples"):
        train(_mlp(), dc.linear_schedule(20), _points(32), steps=2, batch_size=16, progress=False, resume=part.state)
    with pytest.raises(TypeError, match="resume must be a TrainState"):
        train(_mlp(), dc.linear_schedule(20), _points(64), steps=2, batch_size=16, progress=False, resume={"step": 1})


def test_periodic_checkpoints_carry_the_state():
    seen = []
    train(_mlp(), dc.linear_schedule(20), _points(64), steps=4, batch_size=16, progress=False,
          checkpoint_every=1e-9, on_checkpoint=seen.append)
    assert [r.steps for r in seen] == [1, 2, 3, 4]
    assert all(r.state is not None and r.state.scalars["step"] == r.steps for r in seen)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_models_of_other_dtypes_train_in_their_dtype(dtype):
    model = _mlp().to(dtype)
    result = train(model, dc.linear_schedule(20), _points(64), steps=3, batch_size=16, progress=False)
    assert result.steps == 3 and all(math.isfinite(v) for v in result.losses)
    assert all(p.dtype == dtype for p in result.model.parameters())
    assert all(p.dtype == dtype for p in result.ema_model.parameters())


def test_precision_choices():
    result = train(_mlp(), dc.linear_schedule(20), _points(64), steps=2, batch_size=16, precision="bf16",
                   progress=False)
    assert result.steps == 2
    with pytest.raises(ValueError, match="precision must be one of"):
        train(_mlp(), dc.linear_schedule(20), _points(64), steps=2, precision="fp8", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16.*CUDA"):
            train(_mlp(), dc.linear_schedule(20), _points(64), steps=2, precision="fp16", progress=False)


@pytest.mark.parametrize("precision, channels_last", [("fp32", True), ("bf16", False)])
def test_cpu_training_keeps_the_faster_weight_layout(precision, channels_last):
    torch.manual_seed(0)
    unet = models.UNet(models.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), groups=4))
    result = train(unet, dc.linear_schedule(20), dc.digits(8, split="train"), steps=1, batch_size=8,
                   precision=precision, device="cpu", progress=False)
    convs = [p for p in result.model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]  # 3x3
    assert convs
    if channels_last:  # float32: the U-Net's own NHWC order
        assert all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    else:  # bfloat16 autocast on a CPU: NCHW, where oneDNN's bf16 convolutions are faster
        assert all(p.is_contiguous() for p in convs)


def test_an_interrupt_while_checkpointing_keeps_the_finished_step():
    def slow_save(result):
        if result.steps == 2:
            raise KeyboardInterrupt  # a second Ctrl-C while the checkpoint is written

    result = train(_mlp(), dc.linear_schedule(20), _points(64), steps=9, batch_size=16, progress=False,
                   checkpoint_every=1e-9, on_checkpoint=slow_save)
    assert result.interrupted and result.steps == 2 and result.state.scalars["step"] == 2
    resumed = train(_mlp(), dc.linear_schedule(20), _points(64), steps=9, batch_size=16, progress=False,
                    resume=result.state)
    whole = train(_mlp(), dc.linear_schedule(20), _points(64), steps=9, batch_size=16, progress=False)
    assert resumed.losses == whole.losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_trains_on_a_gpu(precision):
    result = train(_mlp(), dc.linear_schedule(20), _points(256), steps=20, batch_size=64, precision=precision,
                   device="cuda", progress=False)
    assert result.steps == 20 and all(math.isfinite(v) for v in result.losses)
    assert next(result.model.parameters()).device.type == "cuda"
    assert (result.state.scalars["scaler"] is not None) == (precision == "fp16")
    resumed = train(_mlp(), dc.linear_schedule(20), _points(256), steps=20, batch_size=64, precision=precision,
                    device="cuda", progress=False, resume=result.state)
    assert resumed.steps == 20 and resumed.losses == result.losses  # a finished run resumes to itself
