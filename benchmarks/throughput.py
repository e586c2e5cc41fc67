"""Throughput: the course U-Net against diffusers' UNet2DModel of the same size, and against
the machine's own measured peak.

    python benchmarks/throughput.py                        # CPU, 2 threads, 16x16 digits, batch 128
    python benchmarks/throughput.py --device cuda          # a GPU, where there is one
    python benchmarks/throughput.py --precision fp32,bf16  # also time bfloat16 autocast (fp16: GPUs)
    python benchmarks/throughput.py --profile              # top operators of one training and one sampling step
    python benchmarks/throughput.py --contiguous           # also the course U-Net with contiguous (NCHW) weights
    python benchmarks/throughput.py --compile              # the course U-Net through torch.compile

Training: each network gets one optimiser step per batch (forward, L_simple, backward, AdamW)
on the same random 16x16 grey batches, after a few warm-up steps; then both go through the
course's own ``train()`` with the digits recipe, which adds what a lesson's run pays around
the network (batch and noise drawing, clipping, the EMA update). Sampling: one network
evaluation per step under ``torch.inference_mode`` (what a sampler does), reported as
image-steps per second. diffusers' model is configured to match the course U-Net's shape
(channels 32/64/64, one residual block per level going down and two coming up, attention at
the lowest level and in the middle, GroupNorm with 8 groups, the same dropout), which puts
their parameter counts within 1%. The models are timed in alternating rounds (``--rounds``)
and the best round of each is printed, so a busy machine slows both alike.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` through
``ddpm_course.timing.count_flops`` (matrix multiplications, convolutions and attention), and
the machine's peak is measured in the same run, dtype and thread count: the best of a large
matrix multiplication and a large 3x3 convolution. The fraction printed is achieved GFLOP/s over that measured peak.

The course U-Net keeps its convolution weights in channels_last memory order.
``--contiguous`` (the NCHW order it had before: what channels_last buys) and ``--compile`` add
the course U-Net so changed as a third contender, timed in the same alternating rounds as the
plain one (experiments; the course trains and samples without them). With ``--compile`` the
first call of each step is timed apart and the script prints the compile time and the number
of steps after which the compiled network has paid it back against the plain course U-Net of
the same rounds.
"""
from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ddpm_course import models
from ddpm_course.data import ImageData
from ddpm_course.models.unet import set_weight_layout
from ddpm_course.schedules import linear_schedule
from ddpm_course.timing import count_flops
from ddpm_course.train import PRESETS, train

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
    """One optimiser step on a fixed batch (fp16 on a GPU goes through a GradScaler).

    The model is put in training mode at every call (dropout on), since the same model's
    sampling step puts it in eval mode.
    """
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    x, eps, t = _batch(device, batch, size)

    def step() -> None:
        model.train()
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
    model.to(device)
    x, _, t = _batch(device, batch, size)

    def step() -> None:
        model.eval()
        with torch.inference_mode(), _autocast(device, precision):
            model(x, t)

    return step


def train_path_fn(
    model: torch.nn.Module, device: torch.device, batch: int, size: int, precision: str, steps: int
) -> Callable[[], float]:
    """The course's own ``train()`` with the digits recipe on random images; returns its images/s.

    Everything a lesson's training pays is in it: batch drawing, noise and t, AdamW with warm-up
    and cosine decay, gradient clipping, dropout and the EMA update. Any model with the contract
    model(x_t, t) -> eps goes through the same loop, diffusers' included.
    """
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4 * batch, 1, size, size, generator=g) * 2 - 1  # (4B, 1, H, W) in [-1, 1]
    data = ImageData(images, torch.zeros(4 * batch, dtype=torch.long))
    recipe = dict(PRESETS["digits"].train_kwargs(), batch_size=batch)

    def run() -> float:
        result = train(model, linear_schedule(1000), data, steps=steps, generator=torch.Generator().manual_seed(0),
                       device=device, precision=precision, progress=False, **recipe)
        return result.images_per_second

    return run


def course_variant(model: torch.nn.Module, contiguous: bool, compile_: bool) -> torch.nn.Module:
    """The course U-Net as timed: with contiguous (NCHW) weights and/or through torch.compile."""
    if contiguous:
        set_weight_layout(model, torch.contiguous_format)
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
    parser.add_argument("--contiguous", action="store_true", help="also the course U-Net with NCHW weights")
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
    variant = ", ".join(n for n, on in (("contiguous", args.contiguous), ("compiled", args.compile)) if on)
    print(f"throughput, {args.size}x{args.size} grey, batch {args.batch}, {where}, torch {torch.__version__}"
          + (f"; course UNet {variant}" if variant else ""))

    variant_name = f"course UNet, {variant}" if variant else ""

    def contenders_for(precision: str) -> list[tuple[str, torch.nn.Module]]:
        """Fresh copies per precision: a training step changes the weights, train() may change their layout."""
        course = copy.deepcopy(ours)
        if device.type == "cpu" and precision == "bf16":
            set_weight_layout(course, torch.contiguous_format)  # what train() does for bf16 on a CPU
        found = [("course UNet", course), ("diffusers UNet2DModel", copy.deepcopy(theirs))]
        if variant:  # timed in the same alternating rounds as the plain course U-Net it is compared with
            found.insert(1, (variant_name, course_variant(copy.deepcopy(ours), args.contiguous, args.compile)))
        return found

    contenders = {p: contenders_for(p) for p in precisions}
    runs = [(name, model, p, kind) for p in precisions for kind in ("train", "sample") for name, model in contenders[p]]
    makers = {"train": train_step_fn, "sample": sample_step_fn}
    steps = [makers[kind](model, device, args.batch, args.size, p) for _, model, p, kind in runs]
    # The first call of each step is timed apart: with --compile it includes compiling.
    first = [first_call_seconds(step, device) for step in steps]
    flops = {(name, p, kind): count_flops(step)  # a variant does the plain course U-Net's work
             for step, (name, _, p, kind) in zip(steps, runs) if name != variant_name}
    through_train = {(name, p): train_path_fn(model, device, args.batch, args.size, p, args.steps)
                     for p in precisions for name, model in contenders[p] if name != variant_name}
    best = [0.0] * len(runs)
    best_train_path = dict.fromkeys(through_train, 0.0)
    for _ in range(args.rounds):
        for i, step in enumerate(steps):
            best[i] = max(best[i], per_second(step, device, args.steps))
        for key, run in through_train.items():
            best_train_path[key] = max(best_train_path[key], run())
    peaks = {p: measured_peak(device, p) for p in precisions}

    print("measured peak: " + ", ".join(f"{p} {peaks[p] / 1e9:.0f} GFLOP/s" for p in precisions))
    print(f"{'model':34s} {'parameters':>10s} {'prec':>5s} {'work':>6s} {'GFLOP/step':>10s} "
          f"{'images/s':>9s} {'GFLOP/s':>8s} {'of peak':>7s}")
    for (name, model, p, kind), rate in zip(runs, best):
        f = flops["course UNet" if name == variant_name else name, p, kind]
        unit = "images/s" if kind == "train" else "img-steps/s"
        achieved = f * rate
        print(f"{name:34s} {models.count_parameters(model):>10,d} {p:>5s} {kind:>6s} {f / 1e9:>10.2f} "
              f"{rate * args.batch:>9.0f} {achieved / 1e9:>8.1f} {achieved / peaks[p]:>7.0%}  ({unit})")
    for p in precisions:
        for kind in ("train", "sample"):
            rate = {name: best[i] for i, (name, _, q, k) in enumerate(runs) if q == p and k == kind}
            print(f"course / diffusers, {p} {kind}: {rate['course UNet'] / rate['diffusers UNet2DModel']:.2f}x")
            if variant:
                print(f"{variant_name} / course UNet, {p} {kind}: {rate[variant_name] / rate['course UNet']:.2f}x; "
                      f"/ diffusers: {rate[variant_name] / rate['diffusers UNet2DModel']:.2f}x")
    print(f"through train() (the digits recipe: batches drawn, AdamW, warm-up, clipping, dropout, EMA; "
          f"{args.steps} steps):")
    for p in precisions:
        rates = {name: best_train_path[name, p] for name, _ in contenders[p] if name != variant_name}
        print(f"  {p}: " + ", ".join(f"{name} {rate:.0f} images/s" for name, rate in rates.items())
              + f"; course / diffusers {rates['course UNet'] / rates['diffusers UNet2DModel']:.2f}x")
    if args.compile:
        report_compile(runs, first, best, variant_name)


def report_compile(runs: list, first: list[float], best: list[float], compiled: str) -> None:
    """Compile time (first call minus a compiled step) and the steps after which it is paid back.

    The eager baseline is the plain course U-Net from the same alternating rounds (its rate and
    the compiled one's were measured under the same load).
    """
    for i, ((name, _, p, kind), f, rate) in enumerate(zip(runs, first, best)):
        if name != compiled:
            continue
        eager_rate = best[i - 1]  # the plain course U-Net, listed just before its variant
        overhead = f - 1 / rate
        saved = 1 / eager_rate - 1 / rate  # seconds saved per step
        even = f"{overhead / saved:,.0f} steps" if saved > 0 else "never (compiled is not faster)"
        print(f"torch.compile, {p} {kind}: compile {overhead:.1f} s, {rate / eager_rate:.2f}x eager "
              f"(same rounds), break-even after {even}")


if __name__ == "__main__":
    main()
