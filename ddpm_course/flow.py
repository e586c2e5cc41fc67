"""Flow matching on the straight path (rectified flow): learn a velocity, sample by solving an ODE.

Lipman et al. 2023, "Flow Matching for Generative Modeling"; Liu, Gong & Liu 2023, "Flow
Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow"; Esser et al.
2024 (Stable Diffusion 3) train today's large image models this way. Heun's method as in
Karras et al. 2022, Algorithm 1.

| math                                  | code                                | shape / range       |
|---------------------------------------|-------------------------------------|---------------------|
| t (0 = data, 1 = noise)               | ``t``                               | (B,) in [0, 1]      |
| x_t = (1 - t) x0 + t eps              | ``flow_path(x0, eps, t)``           | (B, ...)            |
| u = d x_t / dt = eps - x0             | ``velocity_target(x0, eps)``        | (B, ...)            |
| u_theta(x_t, t) ~ E[eps - x0 | x_t]   | ``model(x_t, t * TIME_SCALE)``      | (B, ...)            |
| E||u - u_theta||^2                    | ``flow_matching_loss(model, x0)``   | scalar              |
| dx/dt = u_theta(x, t), x_1 ~ N(0, I)  | ``flow_sample(model, shape, steps)``| Euler or Heun       |

**Time input.** A velocity network has the noise predictor's contract ``model(x_t, t)``, but the
course's networks embed t with sinusoids built for steps 0..999. They are therefore fed
``t * TIME_SCALE`` (``TIME_SCALE = 999``), so t = 1 (pure noise) looks like step 999.

**The same family as DDPM.** DDPM's x_s = sqrt(abar) x0 + sqrt(1 - abar) eps, divided by
sqrt(abar) + sqrt(1 - abar), is a point of the straight path at t = sqrt(1 - abar) /
(sqrt(abar) + sqrt(1 - abar)): both paths pass through the same signal-to-noise ratios, one is a
rescaling of the other (:func:`ddpm_to_flow`). Flow matching differs in what the network
predicts (eps - x0), how the training weighs the levels (t uniform), and the solver's time.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor, nn

from ._checks import MAX_STEPS, batch_tensor, finite_float, generator_or_none, int_in_range, one_of, same_shape
from ._compat import renamed
from ._model import eval_mode, require_kind
from .data import ImageData
from .forward import noise_like
from .oracle import GaussianMixture
from .samplers import Step, chain, start_state
from .train import Objective, TrainResult, fit

__all__ = [
    "METHODS",
    "TIME_SCALE",
    "VelocityOracle",
    "ddpm_to_flow",
    "flow_euler_step",
    "FlowMatching",
    "flow_abar",
    "flow_matching_loss",
    "flow_path",
    "flow_sample",
    "flow_time",
    "flow_timesteps",
    "flow_to_ddpm",
    "flow_heun_step",
    "mixture_velocity",
    "train_flow",
    "velocity_target",
]

TIME_SCALE = 999.0
METHODS = ("euler", "heun")
Model = Callable[..., Tensor]


def _time_column(t: Tensor | float, x: Tensor) -> Tensor:
    """t as (B, 1, ..., 1) in x's dtype: a float, a 0-d tensor or a (B,) tensor, each in [0, 1]."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a float or a (B,) = ({x.shape[0]},) tensor of times in [0, 1]; "
                         f"got shape {tuple(t.shape)}")
    if torch.any((t < 0) | (t > 1)) or not torch.isfinite(t).all():
        raise ValueError(f"t must lie in [0, 1] (0 = data, 1 = noise); "
                         f"got values from {t.min().item():.4g} to {t.max().item():.4g}")
    return t.reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)


def _check_pair(x0: Tensor, eps: Tensor) -> None:
    """x0 and eps: finite float tensors (B, ...) of one shape (no broadcasting)."""
    same_shape("eps", batch_tensor("eps", eps, finite=True), batch_tensor("x0", x0, finite=True), "x0")


def flow_path(x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """The straight path x_t = (1 - t) x0 + t eps. x0, eps: (B, ...); t: float or (B,) in [0, 1]."""
    _check_pair(x0, eps)
    tc = _time_column(t, x0)
    return (1 - tc) * x0 + tc * eps


def velocity_target(x0: Tensor, eps: Tensor) -> Tensor:
    """d x_t / dt along the straight path: eps - x0, the same at every t. (B, ...)."""
    _check_pair(x0, eps)
    return eps - x0


def _predict(model: Model, x_t: Tensor, t: Tensor) -> Tensor:
    """u_theta(x_t, t): the model called with t * TIME_SCALE, t (B,)."""
    u = model(x_t, t.to(x_t.dtype) * TIME_SCALE)
    if not isinstance(u, Tensor) or u.shape != x_t.shape:
        got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise ValueError(f"the model must return a velocity with the shape of x_t {tuple(x_t.shape)}; got {got}")
    return u


def flow_matching_loss(
    model: Model,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
    t: Tensor | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """The conditional flow-matching loss on one batch: mean of (eps - x0 - u_theta(x_t, t))^2.

    x0: (B, ...). Unless given, t (B,) ~ Uniform[0, 1] and then the noise (B, ...) are drawn from
    ``generator``, in that order. Returns a scalar tensor that carries gradients. Its minimiser
    is u*(x, t) = E[eps - x0 | x_t = x], the velocity that carries noise to data (Lipman et al.).
    """
    x0 = batch_tensor("x0", x0, finite=True)
    generator_or_none("generator", generator)
    if t is None:
        t = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    t = _time_column(t, x0).reshape(-1)  # (B,), checked
    if noise is None:
        noise = noise_like(x0, generator)
    x_t = flow_path(x0, noise, t)
    return (velocity_target(x0, noise) - _predict(model, x_t, t)).pow(2).mean()


# ----------------------------------------------------------------------------- DDPM <-> flow


def _in_unit_interval(name: str, value: Tensor | float, meaning: str) -> Tensor | float:
    """A float or a float tensor whose every value is finite and in [0, 1]; returned unchanged."""
    if isinstance(value, Tensor):
        if not value.dtype.is_floating_point:
            raise ValueError(f"{name} must be a float or a float tensor of values in [0, 1] ({meaning}); "
                             f"got dtype {value.dtype}")
        if value.numel() and not bool(((value >= 0) & (value <= 1)).all()):
            raise ValueError(f"{name} must lie in [0, 1] ({meaning}); got values from {value.min().item():.4g} "
                             f"to {value.max().item():.4g}")
        return value
    return finite_float(name, value, 0.0, 1.0)


def flow_time(abar: Tensor | float) -> Tensor | float:
    """The straight-path time with DDPM's signal-to-noise ratio abar / (1 - abar).

    ((1 - t) / t)^2 = abar / (1 - abar) gives t = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar)).
    """
    abar = _in_unit_interval("abar", abar, "a DDPM alpha-bar")
    if isinstance(abar, Tensor):
        return (1 - abar).sqrt() / (abar.sqrt() + (1 - abar).sqrt())
    return math.sqrt(1 - abar) / (math.sqrt(abar) + math.sqrt(1 - abar))


def flow_abar(t: Tensor | float) -> Tensor | float:
    """The inverse of :func:`flow_time`: abar = (1 - t)^2 / ((1 - t)^2 + t^2)."""
    t = _in_unit_interval("t", t, "0 = data, 1 = noise")
    return (1 - t) ** 2 / ((1 - t) ** 2 + t**2)


def ddpm_to_flow(x_ddpm: Tensor, abar: Tensor | float) -> Tensor:
    """A DDPM sample at level abar as a point of the straight path: x / (sqrt(abar) + sqrt(1 - abar)).

    x_ddpm: (B, ...); abar: a float or a (B,) tensor. The point sits at time ``flow_time(abar)``.
    """
    x_ddpm = batch_tensor("x_ddpm", x_ddpm, finite=True)
    abar = _in_unit_interval("abar", abar, "a DDPM alpha-bar")
    if isinstance(abar, Tensor):
        abar = abar.to(x_ddpm.dtype).reshape(-1, *([1] * (x_ddpm.ndim - 1)))  # (B, 1, ..., 1)
        return x_ddpm / (abar.sqrt() + (1 - abar).sqrt())
    return x_ddpm / (math.sqrt(abar) + math.sqrt(1 - abar))


def flow_to_ddpm(x_flow: Tensor, t: Tensor | float) -> Tensor:
    """A point of the straight path at time t as a DDPM sample at abar = flow_abar(t): x / sqrt((1-t)^2 + t^2)."""
    x_flow = batch_tensor("x_flow", x_flow, finite=True)
    tc = _time_column(t, x_flow)
    return x_flow / ((1 - tc) ** 2 + tc**2).sqrt()


# ----------------------------------------------------------------------------- exact velocity


def mixture_velocity(mixture: GaussianMixture, x: Tensor, t: float) -> Tensor:
    """The exact velocity u*(x, t) = E[eps - x0 | x_t = x] when x0 follows a Gaussian mixture.

    Given component k, (x0, x_t) is jointly Gaussian: x_t ~ N((1-t) mu_k, C_k) with
    C_k = (1-t)^2 S_k + t^2 I, Cov(eps, x_t) = t I and Cov(x0, x_t) = (1-t) S_k, so
    E[eps | x, k] = t C_k^-1 d_k and E[x0 | x, k] = mu_k + (1-t) S_k C_k^-1 d_k with
    d_k = x - (1-t) mu_k. The posterior over components r_k(x) weighs them. x: (B, d); t in
    [0, 1] (both ends included); returns (B, d) float64.
    """
    t = finite_float("t", t, 0.0, 1.0)
    x = batch_tensor("x", x, finite=True)
    x = x.reshape(x.shape[0], -1).to(torch.float64).cpu()  # (B, d)
    if x.shape[1] != mixture.dim:
        raise ValueError(f"x has {x.shape[1]} values per sample but the mixture is {mixture.dim}-dimensional")
    eye = torch.eye(mixture.dim, dtype=torch.float64)
    covs = (1 - t) ** 2 * mixture.covs + t**2 * eye  # (K, d, d)
    chol = torch.linalg.cholesky(covs)
    diff = x[:, None, :] - (1 - t) * mixture.means[None]  # (B, K, d)
    solved = torch.einsum("kij,bkj->bki", torch.cholesky_inverse(chol), diff)  # (B, K, d) = C_k^-1 d_k
    log_det = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)  # (K,)
    log_p = mixture.weights.log() - 0.5 * (log_det + (diff * solved).sum(-1))  # (B, K), up to a constant
    resp = torch.softmax(log_p, dim=1)  # (B, K)
    eps_k = t * solved
    x0_k = mixture.means[None] + (1 - t) * torch.einsum("kij,bkj->bki", mixture.covs, solved)
    return (resp[..., None] * (eps_k - x0_k)).sum(1)  # (B, d)


class VelocityOracle:
    """``model(x_t, t * TIME_SCALE) -> u*``: the exact velocity of a Gaussian mixture, with the network contract."""

    def __init__(self, mixture: GaussianMixture) -> None:
        self.mixture = mixture

    def __call__(self, x_t: Tensor, t_scaled: Tensor) -> Tensor:
        t = (t_scaled.detach().double().cpu() / TIME_SCALE).clamp(0.0, 1.0)  # (B,)
        out = torch.empty(x_t.shape, dtype=torch.float64)
        for value in torch.unique(t).tolist():
            rows = t == value
            out[rows] = mixture_velocity(self.mixture, x_t[rows], value).reshape(out[rows].shape)
        return out.to(device=x_t.device, dtype=x_t.dtype)


# ----------------------------------------------------------------------------- ODE solvers


def flow_euler_step(x: Tensor, t: float, t_next: float, u: Tensor) -> Tensor:
    """One Euler step of dx/dt = u from t to t_next (< t): x + (t_next - t) u. Shapes (B, ...)."""
    return x + (t_next - t) * u


def flow_heun_step(model: Model, x: Tensor, t: float, t_next: float, u: Tensor) -> Tensor:
    """One Heun step (Karras et al. 2022, Algorithm 1): an Euler predictor, then the average slope.

    x_pred = x + h u(x, t); x_next = x + h (u(x, t) + u(x_pred, t_next)) / 2, h = t_next - t.
    Costs one more network evaluation than Euler; second order in h.
    """
    x_pred = flow_euler_step(x, t, t_next, u)
    u_next = _predict(model, x_pred, torch.full((x.shape[0],), t_next, dtype=torch.float64, device=x.device))
    return x + (t_next - t) * 0.5 * (u + u_next.to(x.dtype))


def flow_timesteps(steps: int) -> Tensor:
    """The ``steps + 1`` times 1 = t_0 > t_1 > ... > t_steps = 0, evenly spaced: (steps + 1,) float64."""
    int_in_range("steps", steps, 1, MAX_STEPS, hint="the documented bound _checks.MAX_STEPS")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


def _rule(model: Model, method: str) -> Callable[..., Step]:
    """A step rule for ``samplers.chain``: (x, t, u, noise, t_prev=t_next, history=()) -> Step(x_next, x0_hat).

    x0_hat = x - t u is where the straight line through x with slope u meets t = 0.
    """

    def rule(x: Tensor, t: float, u: Tensor, noise: Tensor | None, *, t_prev: float, history: tuple) -> Step:
        x_next = flow_euler_step(x, t, t_prev, u) if method == "euler" else flow_heun_step(model, x, t, t_prev, u)
        return Step(x_next, x - t * u)

    return rule


@torch.no_grad()
def flow_sample(
    model: Model,
    shape: tuple[int, ...] | Tensor,
    *,
    steps: int = 20,
    method: str = "euler",
    generator: torch.Generator | None = None,
    callback: Callable[[int, float, Tensor, Tensor], None] | None = None,
) -> Tensor:
    """Integrate dx/dt = u_theta(x, t) from t = 1 (x_1 ~ N(0, I)) to t = 0 in ``steps`` steps.

    shape: (B, ...) for fresh noise drawn from ``generator`` on the CPU, or a starting x_1 tensor.
    method: "euler" (``steps`` evaluations) or "heun" (2 * ``steps``). It runs the course's one
    sampling loop, ``samplers.chain``, over the pairs (t, t_next) of :func:`flow_timesteps` with
    float times and a velocity in place of a noise prediction; ``callback(i, t, x, x0_hat)``
    sees each state before its step, x0_hat = x - t u. A module is run in eval mode and put
    back. Returns x_0: (B, ...).
    """
    one_of("method", method, METHODS)
    require_kind(model, ("velocity",), "flow_sample")  # a loaded noise predictor is refused, naming its sampler
    x = start_state(model, shape, generator_or_none("generator", generator))

    def predict(x_t: Tensor, t: float) -> Tensor:
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.float64, device=x_t.device)  # (B,)
        return _predict(model, x_t, t_batch).to(x_t.dtype)

    pairs = list(pairwise(flow_timesteps(steps).tolist()))
    with eval_mode(model):
        return chain(x, pairs, predict, _rule(model, method), callback=callback)


# ----------------------------------------------------------------------------- training


class FlowMatching(Objective):
    """The flow-matching objective for ``train.fit``: :func:`flow_matching_loss` on a batch of x0,
    t ~ U(0, 1) and the noise drawn from the generator. Data: an ImageData or a tensor (N, ...)."""

    name = "flow_matching"

    def loss(self, net: nn.Module, batch: tuple[Tensor | None, ...], generator: torch.Generator) -> Tensor:
        return flow_matching_loss(net, batch[0], generator=generator)


def train_flow(
    model: nn.Module,
    data: ImageData | Tensor,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    warmup_steps: int = 200,
    grad_clip: float | None = 1.0,
    ema_decay: float | None = 0.999,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a velocity network with :func:`flow_matching_loss`; return a ``train.TrainResult``.

    ``train.fit(model, FlowMatching(), data, ...)``: lesson 05's loop with this lesson's loss, so
    it keeps the same habits: AdamW, linear warm-up then a half-cosine decay of lr over ``steps``,
    gradient clipping, an EMA whose decay warms up as ``train.ema_decay_at``, a tqdm bar, a stop
    with a message on a non-finite loss (before the weights change), Ctrl-C, and every random
    draw (batches, t, noise, and a seed for dropout) from ``generator`` (seed 0 when None).
    model: ``model(x_t, t * TIME_SCALE) -> u`` (e.g. ``models.UNet``); data: ImageData or (N, ...).
    """
    return fit(model, FlowMatching(), data, steps=steps, batch_size=batch_size, lr=lr,
               warmup_steps=warmup_steps, grad_clip=grad_clip, ema_decay=ema_decay, generator=generator,
               progress=progress)


def _main(argv: list[str] | None = None) -> None:
    """python -m ddpm_course.flow: train the shipped ``digits-flow`` model (see ``shipped.SHIPPED``)."""
    from ._records import maker_parser, run_record
    from .checkpoint import save_checkpoint
    from .data import digits
    from .models import UNet, UNetConfig
    from .schedules import linear_schedule

    prog = "python -m ddpm_course.flow"
    parser = maker_parser(prog, _main.__doc__, steps=450, batch_size=64, lr=1e-3, warmup_steps=50, ema_decay=0.995)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the initial weights
    model = UNet(UNetConfig())
    result = train_flow(
        model, digits(16, split="train"), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        warmup_steps=args.warmup_steps, ema_decay=args.ema_decay, generator=torch.Generator().manual_seed(args.seed),
        progress=not args.no_progress,
    )
    tail = result.losses[-50:]
    record = run_record(
        prog, argv,
        objective="flow matching: velocity eps - x0 on x_t = (1 - t) x0 + t eps, t ~ U[0, 1]; "
                  "the network takes t * 999; sample with ddpm_course.flow.flow_sample (the schedule is unused)",
        weights="ema" if result.ema_model is not None else "raw",
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, seed=args.seed, train_seconds=round(result.seconds, 1),
        final_loss=round(sum(tail) / len(tail), 5),
    )
    paths = save_checkpoint(args.out, result.final_model, linear_schedule(), sample_shape=(1, 16, 16), record=record,
                            weights_dtype=torch.float16, overwrite=args.overwrite, kind="velocity")
    print(f"wrote {paths[0]} and {paths[1]}: {args.steps} steps in {result.seconds:.0f} s, "
          f"final loss {record['final_loss']}")


if __name__ == "__main__":
    _main()


_WHY = "samplers.euler_step and samplers.heun_step are the DDPM samplers' step rules, with other arguments"
__getattr__ = renamed(__name__, {"euler_step": ("flow_euler_step", _WHY), "heun_step": ("flow_heun_step", _WHY)},
                      globals())
