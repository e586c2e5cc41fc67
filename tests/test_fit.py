"""The one training loop, ``train.fit``, and the objectives that plug into it.

Every lesson's training function is ``fit`` with its objective, so each inherits the loop's
guarantees; these tests check them on every objective, not only on L_simple."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ddpm_course as dc
from ddpm_course import autoencoder, compare, distill, feature_net, flow, metrics, score
from ddpm_course.models import DigitClassifier, MLPConfig, MLPDenoiser, PointVAE, PointVAEConfig, VAEConfig
from ddpm_course.models.edm import EDMPrecond
from ddpm_course.train import Examples, NoisePrediction, NonFiniteLossError, Objective, fit, train

SCHEDULE = dc.linear_schedule(50)
POINTS = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
IMAGES = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
DIGITS = dc.ImageData(*(t[:40] for t in dc.digits(16, split="train")))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return MLPDenoiser(MLPConfig(hidden=16, depth=1, time_dim=8))


def _paths() -> distill.Paths:
    times = torch.tensor([40, 20, 5])
    states = torch.randn(3, 32, 2, generator=torch.Generator().manual_seed(2))
    return distill.Paths(times, states, torch.randn(32, 2, generator=torch.Generator().manual_seed(3)), 10)


def _student() -> nn.Module:
    torch.manual_seed(0)
    return EDMPrecond(MLPDenoiser(MLPConfig(hidden=16, depth=1, time_dim=8)), SCHEDULE.alpha_bars)


def _vae() -> nn.Module:
    torch.manual_seed(0)
    return autoencoder.VAE(VAEConfig(base_channels=8, channel_mults=(1, 2), latent_channels=2))


def _digit_classifier() -> nn.Module:
    torch.manual_seed(0)
    return DigitClassifier()


def _point_vae() -> nn.Module:
    torch.manual_seed(0)
    return PointVAE(PointVAEConfig(hidden=8, depth=1))


#: every training function of the course that runs on fit: (name, a fresh model, a call that trains it)
TRAINERS = {
    "train": (_mlp, lambda m, steps: train(m, SCHEDULE, POINTS, steps=steps, batch_size=16, progress=False)),
    "train_flow": (_mlp, lambda m, steps: flow.train_flow(m, POINTS, steps=steps, batch_size=16, progress=False)),
    "train_dsm": (_mlp, lambda m, steps: score.train_dsm(m, POINTS, score.geometric_sigmas(1.0, 0.1, 5), steps=steps,
                                                         batch_size=16)),
    "train_vae": (_vae, lambda m, steps: autoencoder.train_vae(m, IMAGES, steps=steps, batch_size=4,
                                                               progress=False)),
    "train_point_vae": (_point_vae, lambda m, steps: fit(m, compare.NegativeELBO(), POINTS, steps=steps,
                                                         batch_size=16, progress=False)),
    "distill": (_student, lambda m, steps: distill.distill(m, SCHEDULE, _paths(), steps=steps, batch_size=16)),
    "train_reflow": (_mlp, lambda m, steps: distill.train_reflow(m, POINTS, POINTS.flip(0), steps=steps,
                                                                 batch_size=16)),
    # metrics.train_digit_classifier's recipe, on 40 digits in batches of 16
    "train_digit_classifier": (_digit_classifier, lambda m, steps: fit(
        m, metrics.Classification(), DIGITS, steps=steps, progress=False, **{**feature_net.RECIPE, "batch_size": 16})),
}


class _PoisonAt:
    """Makes a model's first layer output NaN in training mode from its ``k``-th call on (any
    method of the model that runs the network goes through that layer)."""

    def __init__(self, model: nn.Module, k: int):
        self.k, self.calls = k, 0
        first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
        self.hook = first.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        if not module.training:
            return out
        self.calls += 1
        return out * float("nan") if self.calls > self.k else out


@pytest.mark.parametrize("name", TRAINERS)
def test_every_trainer_stops_on_a_non_finite_loss_before_the_weights_change(name):
    """The one error, raised before the update: the weights are those of the last finite step."""
    make, run = TRAINERS[name]
    clean = make()
    run(clean, 2)  # two finite steps
    model = make()
    poison = _PoisonAt(model, 0)
    with pytest.raises(NonFiniteLossError, match="the loss became nan at step"):
        run(model, 5)
    poison.hook.remove()
    assert poison.calls >= 1
    fresh = make()
    for (key, p), q in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(p, q), f"{name}: {key} changed although the first loss was NaN"
    assert any(not torch.equal(p, q) for p, q in zip(clean.state_dict().values(), fresh.state_dict().values()))


@pytest.mark.parametrize("name", TRAINERS)
def test_every_trainer_is_reproducible_from_its_generator_seed(name):
    make, run = TRAINERS[name]
    a, b = make(), make()
    torch.manual_seed(123)  # the caller's global RNG must not matter
    run(a, 3)
    torch.manual_seed(456)
    run(b, 3)
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


class _Quadratic(Objective):
    """|w - target|^2 through a model that is one vector: fit must drive w to the target."""

    name = "quadratic"

    def examples(self, data, model):
        return Examples(data)

    def loss(self, net, batch, generator):
        (target,) = batch
        return (net.w - target).square().sum(1).mean(), {"w0": net.w[0].detach()}


class _Vector(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))


def test_a_custom_objective_is_minimised_and_its_logs_recorded():
    targets = torch.tensor([[3.0, -1.0]]).repeat(8, 1)
    run = fit(_Vector(), _Quadratic(), targets, steps=300, batch_size=4, lr=0.05, warmup_steps=0, lr_decay=False,
              ema_decay=None, grad_clip=None, progress=False)
    assert torch.allclose(run.model.w.detach(), torch.tensor([3.0, -1.0]), atol=1e-3)
    assert len(run.logs["w0"]) == 300 and abs(run.logs["w0"][-1] - 3.0) < 1e-2
    assert run.losses[-1] < 1e-5 < run.losses[0]


def test_the_vae_logs_its_mse_and_kl_at_every_step():
    run = autoencoder.train_vae(_vae(), IMAGES, steps=4, batch_size=4, progress=False)
    assert len(run.mse) == len(run.kl) == run.steps == 4 and all(k >= 0 for k in run.kl)


def test_train_is_fit_with_noise_prediction():
    a, b = _mlp(), _mlp()
    train(a, SCHEDULE, POINTS, steps=3, batch_size=16, progress=False)
    fit(b, NoisePrediction(SCHEDULE), POINTS, steps=3, batch_size=16, progress=False)
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_a_run_resumes_only_under_its_own_objective():
    first = train(_mlp(), SCHEDULE, POINTS, steps=2, batch_size=16, progress=False)
    with pytest.raises(ValueError, match="trained the objective 'l_simple'; this one is 'flow_matching'"):
        fit(first.model, flow.FlowMatching(), POINTS, steps=2, batch_size=16, progress=False, resume=first.state)


@pytest.mark.parametrize(("objective", "error", "match"), [
    ("l_simple", TypeError, "objective must be a train.Objective"),
    (None, TypeError, "objective must be a train.Objective"),
])
def test_fit_names_a_bad_objective(objective, error, match):
    with pytest.raises(error, match=match):
        fit(_mlp(), objective, POINTS, steps=1)


def test_an_objective_must_return_a_scalar():
    class Vector(Objective):
        def loss(self, net, batch, generator):
            return net(batch[0], torch.zeros(batch[0].shape[0], dtype=torch.long))

    with pytest.raises(ValueError, match="must return a scalar loss tensor; got \\(16, 2\\)"):
        fit(_mlp(), Vector(), POINTS, steps=1, batch_size=16, progress=False)


def test_examples_refuse_tensors_of_different_lengths():
    with pytest.raises(ValueError, match="same first size 4"):
        Examples(torch.zeros(4, 2), torch.zeros(3))
    batch = Examples(torch.zeros(4, 2, dtype=torch.float64), torch.arange(4)).take(
        torch.tensor([1, 3]), torch.device("cpu"), torch.float32)
    assert batch[0].dtype == torch.float32 and batch[1].tolist() == [1, 3]


class _Recorder(Objective):
    """Records the example indices of every batch (the data is (N, 2) rows (i, i)); raises
    KeyboardInterrupt at call ``stop_at`` (what a second Ctrl-C does mid-step)."""

    name = "recorder"

    def __init__(self, stop_at: int | None = None):
        self.seen: list[list[int]] = []
        self.stop_at = stop_at

    def examples(self, data, model):
        return Examples(data)

    def loss(self, net, batch, generator):
        if self.stop_at is not None and len(self.seen) + 1 == self.stop_at:
            raise KeyboardInterrupt
        (x,) = batch
        self.seen.append(x[:, 0].long().tolist())
        return (net.w - x.mean(0)).square().sum()


ROWS = torch.arange(20.0)[:, None].repeat(1, 2)  # 20 examples: row i is (i, i)
_RECORD = {"batch_size": 8, "warmup_steps": 0, "ema_decay": None, "progress": False}


@pytest.mark.parametrize("batches", ["fixed", "passes"])
def test_batches_fixed_straddle_passes_and_passes_end_with_a_shorter_batch(batches):
    rec = _Recorder()
    fit(_Vector(), rec, ROWS, steps=6, batches=batches, **_RECORD)
    sizes = [len(b) for b in rec.seen]
    if batches == "fixed":
        assert sizes == [8] * 6
        flat = sum(rec.seen, [])
        assert sorted(flat[:20]) == sorted(flat[20:40]) == list(range(20))  # passes without replacement
    else:
        assert sizes == [8, 8, 4] * 2
        assert sorted(sum(rec.seen[:3], [])) == sorted(sum(rec.seen[3:], [])) == list(range(20))


def test_a_global_seed_leaves_the_generator_to_the_batches():
    """With ``global_seed`` nothing is drawn from the generator before the first batch's order;
    without it the global RNG's seed is drawn first (another order)."""
    first = torch.randperm(20, generator=torch.Generator().manual_seed(3)).tolist()
    seeded, drawn = _Recorder(), _Recorder()
    fit(_Vector(), seeded, ROWS, steps=3, batches="passes", global_seed=0,
        generator=torch.Generator().manual_seed(3), **_RECORD)
    fit(_Vector(), drawn, ROWS, steps=3, batches="passes", generator=torch.Generator().manual_seed(3), **_RECORD)
    assert sum(seeded.seen, []) == first != sum(drawn.seen, [])
    with pytest.raises(ValueError, match="global_seed"):
        fit(_Vector(), _Recorder(), ROWS, steps=1, global_seed=-1, **_RECORD)
    with pytest.raises(ValueError, match="batches"):
        fit(_Vector(), _Recorder(), ROWS, steps=1, batches="epochs", **_RECORD)


def test_a_passes_run_resumes_exactly_and_only_as_passes():
    from ddpm_course.train import check_train_state

    whole = fit(_Vector(), _Recorder(), ROWS, steps=7, batches="passes", **_RECORD)
    part = fit(_Vector(), _Recorder(stop_at=5), ROWS, steps=7, batches="passes", **_RECORD)
    assert part.interrupted and part.steps == 4 and part.state.scalars["batches"] == "passes"
    check_train_state(part.state, "run.json", "run.safetensors")
    with pytest.raises(ValueError, match="drew its batches as 'passes'; this one as 'fixed'"):
        fit(_Vector(), _Recorder(), ROWS, steps=7, resume=part.state, **_RECORD)
    resumed = fit(_Vector(), _Recorder(), ROWS, steps=7, batches="passes", resume=part.state, **_RECORD)
    assert resumed.losses == whole.losses and torch.equal(resumed.model.w, whole.model.w)
    assert "batches" not in fit(_Vector(), _Recorder(), ROWS, steps=1, **_RECORD).state.scalars  # "fixed": as before
    part.state.scalars["batches"] = "epochs"
    with pytest.raises(ValueError, match="field 'train_state.batches' must be absent or one of"):
        check_train_state(part.state, "run.json", "run.safetensors")


def test_the_digit_classifier_trains_on_fit_with_its_recipe():
    """metrics.train_digit_classifier is fit with Classification and feature_net.RECIPE: the same
    weights as that call, and a bad data set is refused by the objective's examples."""
    a = metrics.train_digit_classifier(epochs=1, seed=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        b = DigitClassifier()
    train_split = dc.digits(16, split="train")
    fit(b, metrics.Classification(), train_split, steps=23, generator=torch.Generator().manual_seed(2),
        global_seed=2, progress=False, **feature_net.RECIPE)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    with pytest.raises(TypeError, match="data must be an ImageData"):
        fit(_digit_classifier(), metrics.Classification(), DIGITS.images, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"data.labels must lie in \[0, 9\]"):
        fit(_digit_classifier(), metrics.Classification(), dc.ImageData(DIGITS.images, DIGITS.labels + 5), steps=1,
            progress=False)


def test_the_point_vae_trainer_keeps_its_recipe():
    res = compare.train_point_vae(POINTS, config=PointVAEConfig(hidden=8, depth=1), steps=5, batch_size=16)
    assert res.steps == 5 and len(res.losses) == 5 and not res.model.training


def test_the_gan_loop_stops_with_the_same_error_before_its_update(monkeypatch):
    """The GAN's two-player loop is the one other loop: the same error, raised before G's step."""
    from ddpm_course import gan

    steps = []
    real_loss = gan.generator_loss

    def nan_at_step_one(logits, kind="non_saturating"):
        steps.append(1)
        loss = real_loss(logits, kind)
        return loss * float("nan") if len(steps) == 2 else loss

    monkeypatch.setattr(gan, "generator_loss", nan_at_step_one)
    with pytest.raises(NonFiniteLossError, match="the generator's loss became nan at step 1"):
        gan.train_gan(POINTS, config=gan.GANConfig(hidden=8, depth=1), steps=5, batch_size=16)


def test_a_saved_state_names_its_objective_and_a_bad_name_is_refused_at_load():
    from ddpm_course.train import check_train_state

    state = flow.train_flow(_mlp(), POINTS, steps=2, batch_size=16, progress=False).state
    assert state.scalars["objective"] == "flow_matching"
    check_train_state(state, "run.json", "run.safetensors")
    state.scalars["objective"] = 7
    with pytest.raises(ValueError, match="run.json: field 'train_state.objective' must be the name of the objective"):
        check_train_state(state, "run.json", "run.safetensors")
