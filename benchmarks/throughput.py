"""Throughput: the course U-Net against diffusers' UNet2DModel of the same size, and against
the machine's own measured peak.

    python benchmarks/throughput.py                        # CPU, 2 threads, 16x16 digits, batch 128
    python benchmarks/throughput.py --device cuda          # a GPU, where there is one
    python benchmarks/throughput.py --precision fp32,bf16  # also time bfloat16 autocast (fp16: GPUs)
    python benchmarks/throughput.py --profile              # top operators of one training and one sampling step
    python benchmarks/throughput.py --channels-last        # the course U-Net in channels_last memory format
    python benchmarks/throughput.py --compile              # the course U-Net through torch.compile

Training: each network gets one optimiser step per batch (forward, L_simple, backward, AdamW)
on the same random 16x16 grey batches, after a few warm-up steps. Sampling: one network
evaluation per step under ``torch.inference_mode`` (what a sampler does), reported as
image-steps per second. diffusers' model is configured to match the course U-Net's shape
(channels 32/64/64, one residual block per level going down and two coming up, attention at
the lowest level and in the middle, GroupNorm with 8 groups, the same dropout), which puts
their parameter counts within 1%. The models are timed in alternating rounds (``--rounds``)
and the best round of each is printed, so a busy machine slows both alike.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplications
and convolutions, the work that dominates), and the machine's peak is measured in the same
run, dtype and thread count: the best of a large matrix multiplication and a large 3x3
convolution. The fraction printed is achieved GFLOP/s over that measured peak.

``--channels-last`` and ``--compile`` change the course U-Net only (opt-in experiments; the
course trains and samples without them). With ``--compile`` the first call of each step is
timed apart and the script prints the compile time and the number of steps after which the
compiled network has paid it back.
"""
from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ddpm_course import models
from ddpm_course.train import PRESETS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def diffusers_unet(image_size: int) -> torch.nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=image_size, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=None,
        dropout=PRESETS["digits"].model_config["dropout"],
    )


class DiffusersEps(torch.nn.Module):
    """diffusers' UNet2DModel behind the course's contract model(x_t, t) -> eps_hat."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t).sample


def _batch(device: torch.device, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g).to(device)  # (B, 1, H, W)
    eps = torch.randn(batch, 1, size, size, generator=g).to(device)
    t = torch.randint(0, 1000, (batch,), generator=g).to(device)
    return x, eps, t


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32")


def train_step_fn(
    model: torch.nn.Module, device: torch.device, batch: int, size: int, precision: str
) -> Callable[[], None]:
    """One optimiser step on a fixed batch (fp16 on a GPU goes through a GradScaler)."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    x, eps, t = _batch(device, batch, size)

    def step() -> None:
        with _autocast(device, precision):
            loss = F.mse_loss(model(x, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def sample_step_fn(
    model: torch.nn.Module, device: torch.device, batch: int, size: int, precision: str
) -> Callable[[], None]:
    """One network evaluation as a sampler makes it (eval mode, inference mode)."""
    model.to(device).eval()
    x, _, t = _batch(device, batch, size)

    def step() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            model(x, t)

    return step


def course_variant(model: torch.nn.Module, channels_last: bool, compile_: bool) -> torch.nn.Module:
    """The course U-Net as timed: in channels_last memory format and/or through torch.compile."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile_ else model


def first_call_seconds(step: Callable[[], None], device: torch.device) -> float:
    """Wall time of one call (with --compile, the first one includes compiling)."""
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def per_second(step: Callable[[], None], device: torch.device, steps: int) -> float:
    """Steps per second after three warm-up steps."""
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def count_flops(step: Callable[[], None]) -> float:
    """FLOPs of one call of ``step`` (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def measured_peak(device: torch.device, precision: str, repeats: int = 5) -> float:
    """The machine's own peak in FLOP/s: the best of a large matmul and a large 3x3 convolution."""
    dtype = DTYPES[precision]
    g = torch.Generator().manual_seed(0)
    n = 2048 if device.type == "cpu" else 8192
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    x = torch.randn(64, 64, 32, 32, generator=g).to(device, dtype)  # (B, C, H, W)
    w = torch.randn(64, 64, 3, 3, generator=g).to(device, dtype)
    kernels = {
        "matmul": (lambda: a @ b, 2.0 * n**3),
        "conv3x3": (lambda: F.conv2d(x, w, padding=1), 2.0 * 64 * 64 * 64 * 9 * 32 * 32),
    }
    best = 0.0
    for fn, flops in kernels.values():
        with torch.inference_mode():
            best = max(best, flops * per_second(fn, device, repeats))
    return best


def profile(model: torch.nn.Module, device: torch.device, batch: int, size: int, rows: int = 12) -> None:
    """Print the top operators by self time of one training step and one sampling step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for what, make in (("training step", train_step_fn), ("sampling step", sample_step_fn)):
        step = make(model, device, batch, size, "fp32")
        step()
        with torch_profile(activities=activities) as prof:
            step()
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n{what} of the course UNet, top operators by self time")
        print(prof.key_averages().table(sort_by=key, row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--size", type=int, default=16, help="image side (default 16, the digits)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model and round (default 20)")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16, fp16 (default fp32)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the best is kept (default 3)")
    parser.add_argument("--profile", action="store_true", help="print the top operators and exit")
    parser.add_argument("--channels-last", action="store_true", help="course U-Net in channels_last format")
    parser.add_argument("--compile", action="store_true", help="course U-Net through torch.compile")
    args = parser.parse_args()
    precisions = args.precision.split(",")
    for p in precisions:
        if p not in DTYPES:
            parser.error(f"--precision takes {', '.join(DTYPES)}; got {p!r}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    ours = models.build_model("UNet", dict(PRESETS["digits"].model_config))
    if args.profile:
        profile(ours, device, args.batch, args.size)
        return
    theirs = DiffusersEps(diffusers_unet(args.size))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    variant = ", ".join(n for n, on in (("channels_last", args.channels_last), ("compiled", args.compile)) if on)
    print(f"throughput, {args.size}x{args.size} grey, batch {args.batch}, {where}, torch {torch.__version__}"
          + (f"; course UNet {variant}" if variant else ""))

    runs = [(name, model, p, kind) for p in precisions for kind in ("train", "sample")
            for name, model in (("course UNet", ours), ("diffusers UNet2DModel", theirs))]
    makers = {"train": train_step_fn, "sample": sample_step_fn}
    steps = [makers[kind](model, device, args.batch, args.size, p) for _, model, p, kind in runs]
    flops = [count_flops(step) for step in steps]  # the eager networks: variants do the same work
    first = [0.0] * len(runs)
    if args.channels_last or args.compile:
        for i, (_, model, p, kind) in enumerate(runs):
            if model is ours:
                variant = course_variant(copy.deepcopy(ours), args.channels_last, args.compile)
                steps[i] = makers[kind](variant, device, args.batch, args.size, p)
                first[i] = first_call_seconds(steps[i], device)
    best = [0.0] * len(runs)
    for _ in range(args.rounds):
        for i, step in enumerate(steps):
            best[i] = max(best[i], per_second(step, device, args.steps))
    peaks = {p: measured_peak(device, p) for p in precisions}

    print("measured peak: " + ", ".join(f"{p} {peaks[p] / 1e9:.0f} GFLOP/s" for p in precisions))
    print(f"{'model':24s} {'parameters':>10s} {'prec':>5s} {'work':>6s} {'GFLOP/step':>10s} "
          f"{'images/s':>9s} {'GFLOP/s':>8s} {'of peak':>7s}")
    for (name, model, p, kind), f, rate in zip(runs, flops, best):
        unit = "images/s" if kind == "train" else "img-steps/s"
        achieved = f * rate
        print(f"{name:24s} {models.count_parameters(model):>10,d} {p:>5s} {kind:>6s} {f / 1e9:>10.2f} "
              f"{rate * args.batch:>9.0f} {achieved / 1e9:>8.1f} {achieved / peaks[p]:>7.0%}  ({unit})")
    for p in precisions:
        for kind in ("train", "sample"):
            ours_rate, theirs_rate = (best[i] for i, r in enumerate(runs) if r[2] == p and r[3] == kind)
            print(f"course / diffusers, {p} {kind}: {ours_rate / theirs_rate:.2f}x")
    if args.compile:
        report_compile(runs, first, best, eager_rates(runs, makers, device, args, ours))


def eager_rates(runs: list, makers: dict, device: torch.device, args: argparse.Namespace,
                ours: torch.nn.Module) -> list[float]:
    """Steps per second of the eager course U-Net (same memory format) for each compiled run; 0 elsewhere."""
    rates = [0.0] * len(runs)
    for i, (_, model, p, kind) in enumerate(runs):
        if model is ours:
            eager = course_variant(copy.deepcopy(ours), args.channels_last, False)
            rates[i] = per_second(makers[kind](eager, device, args.batch, args.size, p), device, args.steps)
    return rates


def report_compile(runs: list, first: list[float], best: list[float], eager: list[float]) -> None:
    """Compile time (first call minus a compiled step) and the steps needed to pay it back."""
    for (name, _, p, kind), f, rate, eager_rate in zip(runs, first, best, eager):
        if not eager_rate:
            continue
        overhead = f - 1 / rate
        saved = 1 / eager_rate - 1 / rate  # seconds saved per step
        even = f"{overhead / saved:,.0f} steps" if saved > 0 else "never (compiled is not faster)"
        print(f"torch.compile, {name} {p} {kind}: compile {overhead:.1f} s, "
              f"{rate / eager_rate:.2f}x eager, break-even after {even}")


if __name__ == "__main__":
    main()
