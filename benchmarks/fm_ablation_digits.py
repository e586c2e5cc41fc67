"""Flow matching against noise prediction on 16x16 digits: which of target, weighting and clock matters.

    python benchmarks/fm_ablation_digits.py      # the digits table quoted in lesson 12 and the README

The digits twin of ``benchmarks/fm_ablation.py`` (the ring), at the budget of
``benchmarks/flow_vs_ddpm.py``. On the straight path x_t = (1 - t) x0 + t eps a velocity read
from a noise prediction differs from the true one by (eps - eps_hat) / (1 - t), so the
flow-matching loss is the noise-prediction loss weighted by 1 / (1 - t)^2 (lesson 12). Five
course U-Nets, same configuration, initial weights (seed 0), data (the digits' train split),
AdamW, lr schedule, gradient clipping, EMA and 450 steps of 64, differ in target, weighting
and clock:

- flow matching: the shipped ``digits-flow`` (velocity, 1 / (1 - t)^2, t ~ U[0, 1]);
- three variants trained here, with the same batches, t and noise as ``digits-flow`` (the
  generator's draws in the same order): the eps target with flow matching's 1 / (1 - t)^2
  weighting (capped at its value at t_max), the eps target with unit weighting, and the
  velocity target with the eps weighting ((1 - t)^2 on the velocity error), all on t ~ U[0, 1],
  all fed the straight-path point and 999 t; cached under ``--cache`` (reused when present);
- the DDPM twin of ``flow_vs_ddpm.py`` (eps, unit weighting, DDPM's steps drawn uniformly:
  L_simple on DDPM's x_s and step s), trained there or here once.

All are sampled the same way, as ``fm_ablation.py`` does: Euler on the flow ODE at evenly spaced
flow times from t_max (DDPM's noisiest step on the flow clock) to 0, from x = t_max x_T; for a
noise predictor u = (eps_hat - x) / (1 - t), which is DDIM at those times (the twin reads the
point as DDPM's x_s at the fractional step of the same signal-to-noise ratio). Each model draws
``--n-digits`` digits at 10 and 20 evaluations from each of ``--draws`` x_T ~ N(0, I) (seeds
0, 1, ...), the same x_T for every model, scored by ``metrics.digits_fd`` (Frechet distance to
the held-out split); the table gives the mean over the draws, the lowest and highest, and the
mean ratio to the real-vs-real floor, whose spread over 10 draws of real digits closes the table.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from flow_vs_ddpm import ddpm_twin
from torch import Tensor, nn

import ddpm_course as dc
from ddpm_course import flow
from ddpm_course.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from ddpm_course.forward import noise_like
from ddpm_course.models import UNet, UNetConfig
from ddpm_course.train import Objective

VARIANTS = {  # key: (row name, target, weighting of the eps error)
    "eps-fm": ("eps target, 1/(1-t)^2 weighting, t uniform", "eps", "fm"),
    "eps-eps": ("eps target, eps weighting, t uniform", "eps", "eps"),
    "u-eps": ("velocity target, eps weighting, t uniform", "u", "eps"),
}


class AblatedFlowMatching(Objective):
    """Flow matching's straight path and clock with another target or weighting, for ``train.fit``.

    Draws t (B,) ~ U[0, 1] and then the noise from the generator, in the order
    ``flow.FlowMatching`` does, so a run with the same generator sees the same x0, t and noise.
    target "u": the network outputs the velocity eps - x0; "eps": the noise. weighting "fm": the
    eps error weighted by 1 / (1 - t)^2 (for "u" that is the plain velocity error), t capped at
    ``t_max`` in the weight so it stays finite; "eps": the eps error unweighted (for "u", the
    velocity error weighted by (1 - t)^2).
    """

    def __init__(self, target: str, weighting: str, t_max: float):
        self.target, self.weighting, self.t_max = target, weighting, t_max
        self.name = f"flow_matching_{target}_{weighting}"

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        x0 = batch[0]
        t = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)  # (B,)
        noise = noise_like(x0, generator)
        x_t = flow.flow_path(x0, noise, t)
        out = net(x_t, t.to(x_t.dtype) * flow.TIME_SCALE)
        tc = t.to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1, 1, 1)
        if self.target == "u":  # |u - u_hat|^2 = |eps - eps_hat|^2 / (1 - t)^2
            err = (flow.velocity_target(x0, noise) - out).pow(2)
            w = torch.ones_like(tc) if self.weighting == "fm" else (1 - tc) ** 2
        else:
            err = (noise - out).pow(2)
            w = (1 - tc.clamp(max=self.t_max)) ** -2 if self.weighting == "fm" else torch.ones_like(tc)
        return (w * err).mean()


def variant(key: str, cache: Path, record: dict, t_max: float) -> nn.Module:
    """The variant ``key`` trained at digits-flow's budget and settings (trained once, then loaded)."""
    path = cache / f"digits-ablation-{key}"
    if checkpoint_paths(path)[1].exists():
        return load_checkpoint(path).model
    name, target, weighting = VARIANTS[key]
    torch.manual_seed(record["seed"])  # the same initial weights as digits-flow
    model = UNet(UNetConfig())
    result = dc.train.fit(
        model, AblatedFlowMatching(target, weighting, t_max), dc.digits(16, split="train"),
        steps=record["steps"], batch_size=record["batch_size"], lr=record["lr"],
        warmup_steps=record["warmup_steps"], ema_decay=record["ema_decay"],
        generator=torch.Generator().manual_seed(record["seed"]), progress=False,
    )
    save_checkpoint(path, result.final_model, dc.linear_schedule(), sample_shape=(1, 16, 16),
                    record={"variant_of": "digits-flow", "row": name, "steps": record["steps"],
                            "batch_size": record["batch_size"], "train_seconds": round(result.seconds, 1)})
    print(f"trained {name}: {record['steps']} steps in {result.seconds:.0f} s -> {path}", flush=True)
    return result.final_model


def ddpm_step(schedule: dc.schedules.Schedule, t: float) -> float:
    """The fractional DDPM step whose abar is flow_abar(t), interpolated in log abar."""
    log_abar = schedule.alpha_bars.double().log()  # (T,), decreasing
    target = torch.tensor(flow.flow_abar(t), dtype=torch.float64).log()
    i = int(torch.searchsorted(-log_abar, -target).clamp(1, len(log_abar) - 1))
    frac = (log_abar[i - 1] - target) / (log_abar[i - 1] - log_abar[i])
    return float(i - 1 + frac.clamp(0, 1))


@torch.no_grad()
def sample(velocity: Callable[[Tensor, float], Tensor], x_T: Tensor, t_max: float, steps: int) -> Tensor:
    """Euler on dx/dt = u from t_max to 0 at evenly spaced times, from x = t_max x_T; velocity(x, t) -> u."""
    x = t_max * x_T
    times = torch.linspace(t_max, 0, steps + 1).tolist()
    for t_now, t_next in zip(times[:-1], times[1:]):
        x = flow.flow_euler_step(x, t_now, t_next, velocity(x, t_now))
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-digits", type=int, default=256)
    parser.add_argument("--draws", type=int, default=3, help="x_T draws per model and step count")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ddpm_course_bench"))
    parser.add_argument("--ddpm-checkpoint", type=Path, default=Path("/tmp/ddpm_course_bench/digits-ddpm-twin"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    flow_ckpt = dc.pretrained("digits-flow")
    record = flow_ckpt.record
    twin = ddpm_twin(args.ddpm_checkpoint, record, args.threads)
    schedule = twin.schedule
    t_max = float(flow.flow_time(schedule.alpha_bars[-1].item()))
    start = time.perf_counter()
    nets = {key: variant(key, args.cache, record, t_max) for key in VARIANTS}
    train_seconds = time.perf_counter() - start

    def noise_velocity(net: nn.Module) -> Callable[[Tensor, float], Tensor]:
        def u(x: Tensor, t: float) -> Tensor:
            return (net(x, torch.full((x.shape[0],), t * flow.TIME_SCALE)) - x) / (1 - t)
        return u

    def twin_velocity(x: Tensor, t: float) -> Tensor:
        s = torch.full((x.shape[0],), ddpm_step(schedule, t))
        return (twin.model(flow.flow_to_ddpm(x, t), s) - x) / (1 - t)

    rows: dict[str, Callable[[Tensor, float], Tensor]] = {
        "flow matching: velocity, 1/(1-t)^2, t uniform (digits-flow)":
            lambda x, t: flow_ckpt.model(x, torch.full((x.shape[0],), t * flow.TIME_SCALE)),
        VARIANTS["u-eps"][0]: lambda x, t: nets["u-eps"](x, torch.full((x.shape[0],), t * flow.TIME_SCALE)),
        VARIANTS["eps-fm"][0]: noise_velocity(nets["eps-fm"]),
        VARIANTS["eps-eps"][0]: noise_velocity(nets["eps-eps"]),
        "eps target, eps weighting, DDPM clock (the DDPM twin, L_simple)": twin_velocity,
    }
    for model in (flow_ckpt.model, twin.model, *nets.values()):
        model.eval()
    x_Ts = [torch.randn(args.n_digits, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
            for seed in range(args.draws)]
    print(f"{args.n_digits} digits per draw, {args.draws} draws of x_T; every model {record['steps']} steps of "
          f"batch {record['batch_size']}; Frechet distance to held-out digits (lower is better): "
          f"mean [lowest, highest] over the draws (mean ratio to the real-vs-real floor)")
    print("| model | 10 Euler steps | 20 Euler steps |")
    print("|---|---:|---:|")
    floor = None
    for name, velocity in rows.items():
        cells = []
        for steps in (10, 20):
            scores = [dc.metrics.digits_fd(sample(velocity, x_T, t_max, steps).clamp(-1, 1),
                                           generator=torch.Generator().manual_seed(0)) for x_T in x_Ts]
            fds = torch.tensor([s.fd for s in scores])  # (draws,)
            ratio = sum(s.ratio for s in scores) / len(scores)
            cells.append(f"{fds.mean():.1f} [{fds.min():.1f}, {fds.max():.1f}] ({ratio:.2f})")
            floor = scores[0]
        print(f"| {name} | {cells[0]} | {cells[1]} |", flush=True)
    print(f"real-vs-real floor at {args.n_digits} digits: {floor.floor:.2f} +- {floor.floor_std:.2f}; "
          f"{train_seconds:.0f} s training the variants, {time.perf_counter() - start:.0f} s in all "
          f"({args.threads} torch thread)")


if __name__ == "__main__":
    main()
