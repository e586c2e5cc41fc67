"""``ddpm-course sample`` and ``ddpm-course evaluate``: draw from a model, into an image or a score.

Both load a model by name or path the way its kind needs (``_load_model``: a noise predictor as
it is, a latent model with the VAE that decodes its samples; any other kind is refused, naming
what samples it), condition it on ``--label`` or ``--prompt`` with classifier-free guidance
(``_condition``), and run one of the course's samplers (``_draw``). ``sample`` saves an image
grid or a scatter plot; ``evaluate`` scores digits on the digit classifier's features
(:func:`ddpm_course.metrics.evaluate`).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .._commands import (
    PROG,
    CLIError,
    _add_device_options,
    _finite,
    _int_in,
    _positive_int,
    _seed,
    _set_threads,
    _write_atomically,
    check_output,
    hardware_description,
)
from .._model import num_classes as _num_classes

__all__ = ["add_sample_parser", "add_evaluate_parser"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
MAX_SAMPLES = 4096
MAX_GUIDANCE = 100.0  # classifier-free guidance scales in use are below 20; far above, the samples overflow


# the sampler options the command line offers; which sampler takes which comes from samplers.SAMPLERS
SAMPLER_FLAGS = ("steps", "spacing", "eta", "variance", "order")


def add_sample_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    from ..samplers import SAMPLERS, SPACINGS, VARIANCES

    parser = subparsers.add_parser(
        "sample",
        parents=list(parents),
        help="draw samples from a model into an image",
        description="Draw --n samples with one of the course's samplers and save them as an image "
        f"({', '.join(IMAGE_EXTENSIONS)}): an image grid for image models, a scatter plot for 2-D "
        "models. Example: ddpm-course sample --model digits --sampler dpm_solver --steps 20 --n 64 --seed 0 "
        "--out grid.png",
    )
    add = parser.add_argument
    add("--model", default="digits",
        help="a shipped noise predictor (digits, toy2d, digits-cond, digits-prompt), the latent model digits-latent "
        "(its samples are decoded by its VAE), or a checkpoint path (default digits)")
    add("--sampler", default="dpm_solver", choices=sorted(SAMPLERS), help="default dpm_solver")
    add("--steps", type=_positive_int, default=None,
        help="network evaluations, for ddim, euler and dpm_solver (default: the sampler's; ddpm runs all T steps)")
    add("--spacing", default=None, choices=SPACINGS,
        help="where the steps sit (default: the sampler's, as in diffusers)")
    add("--eta", type=_finite(0.0, 1.0), default=None,
        help="DDIM's noise knob in [0, 1] (1: DDPM's noise), for --sampler ddim only (default 0)")
    add("--variance", default=None, choices=VARIANCES,
        help="DDPM's sigma_t^2: beta or posterior, for --sampler ddpm only")
    add("--order", type=_int_in(1, 2), default=None, help="DPM-Solver++'s order, 1 or 2, for --sampler dpm_solver only")
    add("--label", type=_int_in(0, 2**31 - 1), default=None,
        help="the class to draw, for a class-conditional model such as digits-cond (default: none, the null label)")
    add("--prompt", default=None,
        help="the words to draw, for a prompt model such as digits-prompt, e.g. 'thin seven' (default: none)")
    add("--guidance", type=_finite(0.0, MAX_GUIDANCE), default=None,
        help=f"classifier-free guidance scale s in [0, {MAX_GUIDANCE:g}] with --label or --prompt: 0 unconditional, "
        "1 conditional (default), above 1 guided")
    add("--n", type=_int_in(1, MAX_SAMPLES), default=64, help=f"how many samples, at most {MAX_SAMPLES} (default 64)")
    add("--seed", type=_seed, default=0, help="seed of the generator that draws all noise (default 0)")
    add("--out", required=True,
        help=f"the image file to write; its extension says the format ({', '.join(IMAGE_EXTENSIONS)})")
    add("--overwrite", action="store_true", help="replace an existing --out (refused otherwise)")
    _add_device_options(parser)
    parser.set_defaults(func=_run_sample)
    return parser


def _sampler_options(args: argparse.Namespace) -> dict:
    """The sampler options given on the command line; refuses those the chosen sampler does not take."""
    from ..samplers import SAMPLERS

    takes = SAMPLERS[args.sampler].options
    given = {name: getattr(args, name) for name in SAMPLER_FLAGS if getattr(args, name) is not None}
    wrong = [name for name in given if name not in takes]
    if wrong:
        flags = ", ".join(f"--{a}" for a in SAMPLER_FLAGS if a in takes) or "none of the sampler options"
        verb = "does" if len(wrong) == 1 else "do"
        raise CLIError(
            f"{', '.join('--' + w for w in wrong)} {verb} not apply to --sampler {args.sampler}, which takes {flags}"
        )
    return given


def _check_sample_args(args: argparse.Namespace) -> Path:
    out = check_output(Path(args.out), args.overwrite)
    if out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise CLIError(f"--out {out} must end in one of {', '.join(IMAGE_EXTENSIONS)} (the extension names the format)")
    _sampler_options(args)
    if args.label is not None and args.prompt is not None:
        raise CLIError("--label and --prompt exclude each other: a model reads labels or prompts")
    if args.guidance is not None and args.label is None and args.prompt is None:
        raise CLIError("--guidance needs --label or --prompt: guidance steers towards a condition")
    _set_threads(args)
    return out


@dataclass
class _Loaded:
    """A model ready for the DDPM samplers: a noise predictor, its schedule, the shape it samples,
    and for a latent model the decoder that turns its samples into images."""

    model: torch.nn.Module
    schedule: object
    sample_shape: tuple[int, ...]
    decode: object = None  # latents (B, c, h, w) -> images, or None
    image_shape: tuple[int, ...] = ()


def _load_model(name: str, device: torch.device, command: str = "sample") -> _Loaded:
    """A shipped model or a checkpoint, sampled the way its kind needs (``shipped.KINDS``): a
    noise predictor as it is, a latent model with its VAE (the samples are decoded); a velocity
    model, a VAE or the classifier is refused, naming what samples it."""
    from .. import shipped
    from ..checkpoint import load_checkpoint
    from ..shipped import pretrained

    ckpt = None
    if name in shipped.SHIPPED:
        kind = shipped.SHIPPED[name].kind
    else:
        ckpt = load_checkpoint(name, device=device)
        kind = ckpt.kind
    if kind not in shipped.SAMPLER_KINDS:
        raise CLIError(f"--model {name} is {shipped.KINDS[kind]}; {PROG} {command} runs noise predictors (eps) "
                       "and latent models only")
    if kind == "latent":
        from ..autoencoder import load_latent

        pipe = load_latent(str(shipped.path(name) if ckpt is None else name), device)
        return _Loaded(pipe.unet, pipe.schedule, pipe.latent_shape, pipe.vae.decode_scaled, pipe.image_shape)
    ckpt = ckpt if ckpt is not None else pretrained(name, device=device)
    return _Loaded(ckpt.model, ckpt.schedule, ckpt.sample_shape, None, ckpt.sample_shape)


def _condition(args: argparse.Namespace, model) -> torch.Tensor | None:
    """The labels (n,) that --label or --prompt ask for, checked against the model; the null
    label for a conditional model given neither (``evaluate`` has neither); None for an unconditional model."""
    from ..models.text import PromptUNet, prompt_ids

    label, prompt = getattr(args, "label", None), getattr(args, "prompt", None)
    num_classes = _num_classes(model)
    is_prompt = isinstance(model, PromptUNet)
    if prompt is not None and not is_prompt:
        takes = "labels (--label)" if num_classes is not None else "no condition"
        raise CLIError(f"--prompt needs a prompt model such as digits-prompt; {args.model} takes {takes}")
    if label is not None and (is_prompt or num_classes is None):
        takes = "prompts (--prompt 'thin seven')" if is_prompt else "no condition (it is unconditional)"
        raise CLIError(f"--label needs a class-conditional model such as digits-cond; {args.model} takes {takes}")
    if num_classes is None:
        return None
    if prompt is not None:
        try:
            return prompt_ids([prompt]).expand(args.n)
        except ValueError as err:
            raise CLIError(f"--prompt: {err}") from None
    if label is not None and label >= num_classes:
        raise CLIError(f"--label must be a class in [0, {num_classes - 1}] for {args.model}; got {label}")
    return torch.full((args.n,), num_classes if label is None else label)


def _draw(args: argparse.Namespace, loaded) -> torch.Tensor:
    from .. import samplers
    from ..guidance import cfg

    model, schedule = loaded.model.eval(), loaded.schedule
    y = _condition(args, model)
    if y is not None:  # the guided model carries its labels: the samplers see the plain contract
        scale = getattr(args, "guidance", None)
        model = cfg(model, 1.0 if scale is None else scale, y=y)
    shape = (args.n, *loaded.sample_shape)
    gen = torch.Generator().manual_seed(args.seed)
    options = _sampler_options(args)
    try:
        x = samplers.SAMPLERS[args.sampler](model, schedule, shape, generator=gen, **options)
    except samplers.NonFiniteSampleError as err:
        scale = getattr(args, "guidance", None)
        hint = f"--guidance {scale:g} may be too strong (try 1 to 10); " if scale is not None and scale > 1 else ""
        raise CLIError(f"--model {args.model} with --sampler {args.sampler}: {hint}{err}") from None
    if loaded.decode is not None:  # a latent model: its samples are latents, the images come from its VAE
        with torch.no_grad():
            x = loaded.decode(x)
    return x.detach().cpu().float()


def _save_figure(x: torch.Tensor, args: argparse.Namespace, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import viz

    fmt = out.suffix.lower().lstrip(".")
    if x.ndim == 4:
        grid = viz.image_grid(x.clamp(-1, 1), nrow=max(1, round(args.n**0.5))).numpy()
        _write_atomically(out, args.overwrite, lambda tmp: plt.imsave(tmp, grid, format=fmt))
    else:
        fig = viz.plot_points(x.reshape(args.n, -1)[:, :2], title=f"{args.model}: {args.sampler}")
        try:
            _write_atomically(out, args.overwrite, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
        finally:
            plt.close(fig)


def _run_sample(args: argparse.Namespace, argv: Sequence[str]) -> int:
    out = _check_sample_args(args)
    loaded = _load_model(args.model, args.device)
    x = _draw(args, loaded)
    if not torch.isfinite(x).all():
        raise CLIError(f"the samples contain NaN or infinite values; {args.model} may be damaged. Nothing was written")
    _save_figure(x, args, out)
    steps = f", {args.steps} steps" if args.steps else ""
    asked = f"label {args.label}" if args.label is not None else ""
    asked = f"prompt '{args.prompt}'" if args.prompt is not None else asked
    guided = f", guidance {args.guidance:g}" if args.guidance is not None else ""
    condition = f" for {asked}{guided}" if asked else ""
    print(f"wrote {args.n} samples{condition} from {args.model} ({args.sampler}{steps}, seed {args.seed}) to {out}")
    return 0


# ----------------------------------------------------------------------------- evaluate


MAX_EVALUATE = 1433  # the floors draw as many real digits as there are samples (the train split's size)


def add_evaluate_parser(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()):
    from ..samplers import SAMPLERS, SPACINGS, VARIANCES

    parser = subparsers.add_parser(
        "evaluate",
        parents=list(parents),
        help="score a model's samples: Frechet distance, precision, recall, with their floors",
        description="Draw --n digits with one of the course's samplers and score them against the 364 held-out "
        "digits on digit-classifier features (metrics.evaluate): the Frechet distance, its extrapolation to "
        "infinitely many samples, precision, recall, density, coverage and KID, each beside what --n real train "
        "digits score (the floor), and a memorisation check (distance to the nearest training digit). "
        "Example: ddpm-course evaluate --model digits --sampler ddim --steps 50 --n 1000",
    )
    add = parser.add_argument
    add("--model", default="digits", help="a shipped model (digits) or a checkpoint path of a 1-channel image "
        "model (default digits)")
    add("--sampler", default="dpm_solver", choices=sorted(SAMPLERS), help="default dpm_solver")
    add("--steps", type=_positive_int, default=None,
        help="network evaluations, for ddim, euler and dpm_solver (default: the sampler's; ddpm runs all T steps)")
    add("--spacing", default=None, choices=SPACINGS, help="where the steps sit (default: the sampler's)")
    add("--eta", type=_finite(0.0, 1.0), default=None,
        help="DDIM's noise knob in [0, 1], for --sampler ddim only (default 0)")
    add("--variance", default=None, choices=VARIANCES, help="DDPM's sigma_t^2, for --sampler ddpm only")
    add("--order", type=_int_in(1, 2), default=None, help="DPM-Solver++'s order, for --sampler dpm_solver only")
    add("--n", type=_int_in(10, MAX_EVALUATE), default=1000,
        help=f"samples to score, 10 to {MAX_EVALUATE} (default 1000)")
    add("--k", type=_int_in(1, 9), default=3, help="neighbours of the precision/recall balls (default 3)")
    add("--n-real", type=_int_in(2, 100), default=5, help="draws of real digits for each floor (default 5)")
    add("--seed", type=_seed, default=0, help="seed of the sampler's noise; the floors' draws use seed + 1 (default 0)")
    _add_device_options(parser)
    parser.set_defaults(func=_run_evaluate)
    return parser


def _run_evaluate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import time

    from ..metrics import evaluate

    _sampler_options(args)  # an option the sampler does not take fails here, before any work
    _set_threads(args)
    loaded = _load_model(args.model, args.device, "evaluate")
    if len(loaded.image_shape) != 3 or loaded.image_shape[0] != 1:
        raise CLIError(f"evaluate scores grey images (1, H, W) on digit-classifier features; {args.model} makes "
                       f"samples of shape {tuple(loaded.image_shape)}")
    start = time.perf_counter()
    with torch.no_grad():
        x = _draw(args, loaded)
    seconds = time.perf_counter() - start
    if not torch.isfinite(x).all():
        raise CLIError(f"the samples contain NaN or infinite values; {args.model} may be damaged")
    floors = torch.Generator().manual_seed(args.seed + 1)
    result = evaluate(x.clamp(-1, 1), k=args.k, n_real=args.n_real, generator=floors)
    steps = f", {args.steps} steps" if args.steps else ""
    print(f"{args.model}: {args.sampler}{steps}, seed {args.seed}; sampled in {seconds:.1f} s on "
          f"{hardware_description(args.device)}")
    print(result)
    return 0

