"""Flow matching against noise prediction on the ring: which of target, weighting and clock matters.

    python benchmarks/fm_ablation.py            # the table quoted in lesson 12 and the README
    python benchmarks/fm_ablation.py --steps 3000

On the same straight-path point x_t = (1 - t) x0 + t eps, a velocity read from a noise
prediction differs from the true one by (eps - eps_hat) / (1 - t), so the flow-matching loss is
the noise-prediction loss weighted by 1 / (1 - t)^2 (lesson 12). Five MLPs (lesson 12's, same
initial weights, data, Adam, steps and batches) differ in one thing at a time:

- target: the network outputs the velocity u or the noise eps;
- weighting: the squared eps error weighted by 1 / (1 - t)^2 (flow matching's) or by 1 (L_simple's);
- clock: t uniform on [0, t_max] (flow matching's) or at DDPM's steps drawn uniformly (DDPM's),
  t_max being DDPM's noisiest step on the flow clock. Every network sees the straight-path
  point and 999 t.

All are sampled the same way, from the same x_T: Euler on the flow ODE at evenly spaced flow
times from t_max to 0 (for a noise predictor, u = (eps_hat - x) / (1 - t): this is DDIM at those
times), and scored against 1,000 fresh ring points: sliced W2, precision, recall and the modes
reproduced (lesson 11's core test).
"""
from __future__ import annotations

import argparse
import time

import torch

import ddpm_course as dc
from ddpm_course import compare, flow
from ddpm_course.models import MLPConfig, MLPDenoiser
from ddpm_course.oracle import ring_mixture

CONFIGS = {  # name: (target, weighting of the eps error, clock)
    "flow matching: velocity, 1/(1-t)^2, t uniform": ("u", "fm", "t"),
    "velocity target, eps weighting, t uniform": ("u", "eps", "t"),
    "eps target, 1/(1-t)^2 weighting, t uniform": ("eps", "fm", "t"),
    "eps target, eps weighting, t uniform": ("eps", "eps", "t"),
    "eps target, eps weighting, DDPM clock (L_simple)": ("eps", "eps", "s"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per model (default 1500, lesson 12's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ring = ring_mixture()
    schedule = dc.linear_schedule()
    data = ring.sample(8192, torch.Generator().manual_seed(2)).float()
    t_max = flow.flow_time(schedule.alpha_bars[-1].item())
    t_of_step = flow.flow_time(schedule.alpha_bars).float()  # (1000,)
    fresh = ring.sample(1000, torch.Generator().manual_seed(3))
    x_T = torch.randn(1000, 2, generator=torch.Generator().manual_seed(8))

    def train(target: str, weighting: str, clock: str) -> torch.nn.Module:
        torch.manual_seed(0)
        net = MLPDenoiser(MLPConfig(dim=2, hidden=128, depth=3))
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(args.steps):
            x0 = data[torch.randint(0, data.shape[0], (256,), generator=g)]
            eps = torch.randn(256, 2, generator=g)
            if clock == "t":
                t = torch.rand(256, generator=g) * t_max
            else:
                t = t_of_step[torch.randint(0, 1000, (256,), generator=g)]
            x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
            out = net(x_t, t * flow.TIME_SCALE)
            if target == "u":  # |u - u_hat|^2 = |eps - eps_hat|^2 / (1 - t)^2
                err, w = ((eps - x0) - out).pow(2).sum(1), torch.ones_like(t) if weighting == "fm" else (1 - t) ** 2
            else:
                err, w = (eps - out).pow(2).sum(1), (1 - t) ** -2 if weighting == "fm" else torch.ones_like(t)
            loss = (w * err).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net

    @torch.no_grad()
    def sample(net: torch.nn.Module, target: str, steps: int) -> torch.Tensor:
        x = t_max * x_T
        times = torch.linspace(t_max, 0, steps + 1).tolist()
        for t_now, t_next in zip(times[:-1], times[1:]):
            out = net(x, torch.full((x.shape[0],), t_now * flow.TIME_SCALE))
            u = out if target == "u" else (out - x) / (1 - t_now)
            x = x + (t_next - t_now) * u
        return x.double()

    real = ring.sample(1000, torch.Generator().manual_seed(14))
    real_pr = dc.metrics.precision_recall(fresh, real)
    sw_real = dc.metrics.sliced_wasserstein(real, fresh, generator=torch.Generator().manual_seed(0))
    print("| model | Euler steps | sliced W2 | precision | recall | modes reproduced |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| real data (another 1,000 points) | - | {sw_real:.4f} | {real_pr.precision:.3f} | "
          f"{real_pr.recall:.3f} | 8 |")
    start = time.perf_counter()
    for name, (target, weighting, clock) in CONFIGS.items():
        net = train(target, weighting, clock)
        for steps in (5, 20):
            x = sample(net, target, steps)
            pr = dc.metrics.precision_recall(fresh, x)
            sw = dc.metrics.sliced_wasserstein(x, fresh, generator=torch.Generator().manual_seed(0))
            print(f"| {name} | {steps} | {sw:.4f} | {pr.precision:.3f} | {pr.recall:.3f} | "
                  f"{compare.modes_reproduced(x, ring)} |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s, {args.steps} steps per model)")


if __name__ == "__main__":
    main()
