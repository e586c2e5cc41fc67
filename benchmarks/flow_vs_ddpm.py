"""Flow matching against DDPM at an equal training budget: sample quality against network evaluations.

    python benchmarks/flow_vs_ddpm.py                    # the README table (trains the DDPM twin once)
    python benchmarks/flow_vs_ddpm.py --n-digits 512     # tighter Frechet distances, slower
    python benchmarks/flow_vs_ddpm.py --ddpm-1000        # add DDPM's 1000 ancestral steps (slow)
    python benchmarks/flow_vs_ddpm.py --ddpm-1000 --only ancestral   # just that row

Two course U-Nets with the same configuration, initial weights, data (the digits' train split),
optimiser settings, number of steps and batch size:
- the shipped ``digits-flow`` model (``python -m ddpm_course.flow``, flow-matching loss), and
- its DDPM twin, trained here with ``ddpm_course.train.train`` (L_simple) on the same budget
  and saved to ``--ddpm-checkpoint`` (reused when it exists).

Each draws ``--n-digits`` digits from the same x_T ~ N(0, I) with every sampler at several
step counts: flow matching with Euler and Heun on its ODE, DDPM with DDIM, DPM-Solver++(2M)
(defaults, as diffusers) and DPM-Solver++ on log-SNR levels (``--ddpm-1000`` adds ancestral DDPM).
Each row gives the network evaluations and the Frechet distance on digit-classifier features
to the held-out split, with its ratio to the real-vs-real floor (``metrics.digits_fd``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import ddpm_course as dc
from ddpm_course import flow, samplers
from ddpm_course.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from ddpm_course.models import UNet, UNetConfig


def ddpm_twin(path: Path, record: dict, threads: int) -> dc.checkpoint.Checkpoint:
    """The DDPM model trained with the flow model's budget and settings (trained once, then loaded)."""
    if checkpoint_paths(path)[1].exists():
        twin = load_checkpoint(path)
        if all(twin.record.get(k) == record[k] for k in ("steps", "batch_size")):
            return twin
        raise SystemExit(f"{path} was trained with another budget than digits-flow; delete it to retrain")
    torch.manual_seed(record["seed"])  # the same initial weights as the flow model
    model = UNet(UNetConfig())
    schedule = dc.linear_schedule()
    start = time.perf_counter()
    result = dc.train.train(
        model, schedule, dc.digits(16, split="train"), steps=record["steps"], batch_size=record["batch_size"],
        lr=record["lr"], warmup_steps=record["warmup_steps"], ema_decay=record["ema_decay"],
        generator=torch.Generator().manual_seed(record["seed"]), progress=False,
    )
    twin_record = {"twin_of": "digits-flow", "steps": record["steps"], "batch_size": record["batch_size"],
                   "train_seconds": round(time.perf_counter() - start, 1), "threads": threads}
    save_checkpoint(path, result.final_model, schedule, sample_shape=(1, 16, 16), record=twin_record)
    print(f"trained the DDPM twin: {record['steps']} steps in {twin_record['train_seconds']} s -> {path}")
    return load_checkpoint(path)


def rows(flow_model, ddpm, steps_list: list[int]):
    """(name, steps, sampler) for every row of the table; sampler(model, x_T) -> x_0."""
    for n in steps_list:
        yield "flow matching, Euler", n, flow_model, lambda m, x, n=n: flow.flow_sample(m, x, steps=n)
        yield ("flow matching, Heun", n, flow_model,
               lambda m, x, n=n: flow.flow_sample(m, x, steps=(n + 1) // 2, method="heun"))
        yield "DDPM, DDIM", n, ddpm.model, lambda m, x, n=n: samplers.ddim_sample(m, ddpm.schedule, x, steps=n)
        yield ("DDPM, DPM-Solver++", n, ddpm.model,
               lambda m, x, n=n: samplers.dpm_solver_sample(m, ddpm.schedule, x, steps=n))
        yield ("DDPM, DPM-Solver++ logsnr", n, ddpm.model,
               lambda m, x, n=n: samplers.dpm_solver_sample(m, ddpm.schedule, x, steps=n, spacing="logsnr"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-digits", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 10, 20, 50])
    parser.add_argument("--ddpm-checkpoint", type=Path, default=Path("/tmp/ddpm_course_bench/digits-ddpm-twin"))
    parser.add_argument("--ddpm-1000", action="store_true", help="add the 1000-step ancestral DDPM row (slow)")
    parser.add_argument("--train-only", action="store_true", help="train (or find) the DDPM twin and stop")
    parser.add_argument("--only", default="", help="run only the rows whose sampler name contains this text")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    flow_ckpt = dc.pretrained("digits-flow")
    ddpm = ddpm_twin(args.ddpm_checkpoint, flow_ckpt.record, args.threads)
    if args.train_only:
        return
    x_T = torch.randn(args.n_digits, 1, 16, 16, generator=torch.Generator().manual_seed(args.seed))
    print(f"{args.n_digits} digits per row; both models: {flow_ckpt.record['steps']} steps of batch "
          f"{flow_ckpt.record['batch_size']}; Frechet distance to held-out digits (lower is better)")
    print(f"{'sampler':28s} {'steps':>5s} {'evals':>5s} {'FD':>7s} {'/floor':>6s} {'seconds':>7s}")
    table = list(rows(flow_ckpt.model, ddpm, args.steps))
    if args.ddpm_1000:
        table.append(("DDPM, ancestral", 1000, ddpm.model,
                      lambda m, x: samplers.ddpm_sample(m, ddpm.schedule, x,
                                                        generator=torch.Generator().manual_seed(1))))
    for name, n, model, sample in [row for row in table if args.only in row[0]]:
        counted = dc.timing.Counted(model)
        start = time.perf_counter()
        x = sample(counted, x_T).clamp(-1, 1)
        seconds = time.perf_counter() - start
        fd = dc.metrics.digits_fd(x, generator=torch.Generator().manual_seed(0))
        print(f"{name:28s} {n:5d} {counted.calls:5d} {fd.fd:7.2f} {fd.ratio:6.2f} {seconds:7.1f}", flush=True)
    print(f"real-vs-real floor at {args.n_digits} digits: {fd.floor:.2f} +- {fd.floor_std:.2f}")


if __name__ == "__main__":
    main()
