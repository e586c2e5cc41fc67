"""Training throughput: the course U-Net against diffusers' UNet2DModel of the same size.

    python benchmarks/throughput.py                  # CPU, 2 threads, 16x16 digits, batch 128
    python benchmarks/throughput.py --device cuda    # a GPU, where there is one
    python benchmarks/throughput.py --bf16           # also time bfloat16 autocast

Both networks get one optimiser step per batch (forward, L_simple, backward, AdamW) on the
same random 16x16 grey batches, after a few warm-up steps. diffusers' model is configured to
match the course U-Net's shape (channels 32/64/64, one residual block per level going down
and two coming up, attention at the lowest level and in the middle, GroupNorm with 8 groups,
the same dropout),
which puts their parameter counts within 1%. The models are timed in alternating rounds
(``--rounds``) and the best round of each is printed, so a busy machine slows both alike.
Prints images per second for each.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ddpm_course import models
from ddpm_course.train import PRESETS


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


def images_per_second(model: torch.nn.Module, device: torch.device, batch: int, size: int, steps: int, bf16: bool) -> float:
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g).to(device)  # (B, 1, H, W)
    eps = torch.randn(batch, 1, size, size, generator=g).to(device)
    t = torch.randint(0, 1000, (batch,), generator=g).to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(model(x, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--size", type=int, default=16, help="image side (default 16, the digits)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default 20)")
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the best is kept (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    ours = models.build_model("UNet", dict(PRESETS["digits"].model_config))
    theirs = DiffusersEps(diffusers_unet(args.size))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"training throughput, {args.size}x{args.size} grey, batch {args.batch}, AdamW, {where}, torch {torch.__version__}")
    print(f"{'model':28s} {'parameters':>11s} {'precision':>9s} {'images/s':>9s}")
    runs = [(name, model, bf16) for name, model in (("course UNet", ours), ("diffusers UNet2DModel", theirs))
            for bf16 in ((False, True) if args.bf16 else (False,))]
    best = [0.0] * len(runs)
    for _ in range(args.rounds):
        for i, (name, model, bf16) in enumerate(runs):
            best[i] = max(best[i], images_per_second(model, device, args.batch, args.size, args.steps, bf16))
    for (name, model, bf16), ips in zip(runs, best):
        print(f"{name:28s} {models.count_parameters(model):>11,d} {'bf16' if bf16 else 'fp32':>9s} {ips:>9.0f}")


if __name__ == "__main__":
    main()
