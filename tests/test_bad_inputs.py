"""Bad input, function by function: every public function of the schedules, the forward process,
the samplers, the losses, the oracle, the data, the plots, the widgets and the small models gets
each kind of bad argument (wrong type, a bool for an int, NaN or inf, out of range, wrong shape,
wrong dtype, empty) and must answer with a clear exception naming the argument.

Each row: an id, a call, the exception type and a fragment of its message (a regular expression).
"""
from __future__ import annotations

import math

import pytest
import torch

import ddpm_course as dc
from ddpm_course import _checks, data, forward, losses, oracle, samplers, schedules, viz, widgets
from ddpm_course.models import MLPConfig, MLPDenoiser, SimpleUNet, SimpleUNetConfig, TimeEmbedding
from ddpm_course.models.embeddings import sinusoidal_embedding

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

S = dc.linear_schedule(100)
NAN, INF = float("nan"), float("inf")


def x(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype) if shape else torch.zeros(4, 2, dtype=dtype)


def eps_model(x_t, t, y=None):
    return torch.zeros_like(x_t)


def gen():
    return torch.Generator().manual_seed(0)


MIX = oracle.ring_mixture(4)
MLP = MLPDenoiser(MLPConfig(hidden=8, depth=1, time_dim=8))
TINY_UNET = SimpleUNet(SimpleUNetConfig(in_channels=1, base_channels=4, time_dim=8))

V, T = ValueError, TypeError
CASES = [
    # ------------------------------------------------------------------ schedules
    ("from_betas nan", lambda: schedules.Schedule.from_betas(torch.tensor([0.1, NAN])), V, r"finite.*got nan at t=1"),
    ("from_betas inf", lambda: schedules.Schedule.from_betas(torch.tensor([INF])), V, "finite"),
    ("from_betas 0", lambda: schedules.Schedule.from_betas(torch.tensor([0.0, 0.1])), V, r"strictly inside \(0, 1\)"),
    ("from_betas 1", lambda: schedules.Schedule.from_betas(torch.tensor([0.1, 1.0])), V, r"strictly inside \(0, 1\)"),
    ("from_betas tiny", lambda: schedules.Schedule.from_betas(torch.tensor([1e-300, 0.1], dtype=torch.float64)), V,
     r"at t=0 .*below float64's resolution"),
    ("from_betas underflow", lambda: schedules.Schedule.from_betas(torch.full((400,), 0.9)), V, "underflows to 0"),
    ("from_betas empty", lambda: schedules.Schedule.from_betas(torch.tensor([])), V, "T >= 1"),
    ("from_betas 2-D", lambda: schedules.Schedule.from_betas(torch.full((2, 2), 0.1)), V, "1-D"),
    ("from_betas string", lambda: schedules.Schedule.from_betas("0.1"), T, "betas must be a 1-D tensor of numbers"),
    ("linear T bool", lambda: dc.linear_schedule(True), T, "T must be an integer >= 1"),
    ("linear T float", lambda: dc.linear_schedule(10.0), T, "T must be an integer >= 1"),
    ("linear T 0", lambda: dc.linear_schedule(0), V, "T must be an integer >= 1"),
    ("linear beta nan", lambda: dc.linear_schedule(10, NAN), V, r"beta_start must be a finite number in \(0.0, 1.0\)"),
    ("linear beta string", lambda: dc.linear_schedule(10, "a"), T, "beta_start must be a finite number"),
    ("linear beta_end inf", lambda: dc.linear_schedule(10, 1e-4, INF), V, "beta_end must be a finite number"),
    ("linear reversed", lambda: dc.linear_schedule(10, 0.02, 1e-4), V, "beta_start must be <= beta_end"),
    ("cosine s negative", lambda: dc.cosine_schedule(10, s=-0.1), V, r"s must be a finite number in \[0.0, inf\]"),
    ("cosine s nan", lambda: dc.cosine_schedule(10, s=NAN), V, "s must be a finite number"),
    ("cosine max_beta 1", lambda: dc.cosine_schedule(10, max_beta=1.0), V, "max_beta must be a finite number"),
    ("check_step float", lambda: schedules.check_step(S, 1.5), T, r"t must be an integer in \[0, 99\]"),
    ("check_step bool", lambda: schedules.check_step(S, True), T, r"t must be an integer in \[0, 99\]"),
    ("check_step range", lambda: schedules.check_step(S, 100), V, r"\[0, 99\] \(steps are 0-based\)"),
    ("check_timesteps float", lambda: schedules.check_timesteps(S, torch.tensor([1.5])), T, "integer steps"),
    ("check_timesteps bool", lambda: schedules.check_timesteps(S, torch.tensor([True])), T, "integer steps"),
    ("check_timesteps 2-D", lambda: schedules.check_timesteps(S, torch.zeros(2, 2, dtype=torch.long)), V,
     r"shape \(B,\)"),
    ("check_timesteps batch", lambda: schedules.check_timesteps(S, torch.zeros(3, dtype=torch.long), batch=2), V,
     "batch has 2"),
    ("check_timesteps range", lambda: schedules.check_timesteps(S, torch.tensor([-1, 5])), V, r"\[0, T-1\]"),
    ("check_timesteps list", lambda: schedules.check_timesteps(S, [1, 2]), T, "int or an integer tensor"),
    # ------------------------------------------------------------------ forward
    ("noise_like list", lambda: forward.noise_like([1.0]), T, "x must be a tensor"),
    ("noise_like generator", lambda: forward.noise_like(x(), generator=0), T, "generator must be a torch.Generator"),
    ("q_sample x0 list", lambda: forward.q_sample(S, [[0.0]], 0), T, "x0 must be a floating-point tensor"),
    ("q_sample x0 1-D", lambda: forward.q_sample(S, torch.zeros(3), 0), V, "x0 must have a batch dimension"),
    ("q_sample x0 int", lambda: forward.q_sample(S, x(dtype=torch.long), 0), T, "x0 must be a floating-point tensor"),
    ("q_sample x0 empty", lambda: forward.q_sample(S, torch.zeros(0, 2), 0), V, "at least one sample"),
    ("q_sample x0 nan", lambda: forward.q_sample(S, x() + NAN, 0), V, "x0 must be finite"),
    ("q_sample t float", lambda: forward.q_sample(S, x(), 2.0), T, "t must be an int"),
    ("q_sample t bool", lambda: forward.q_sample(S, x(), True), T, "t must be an int"),
    ("q_sample t range", lambda: forward.q_sample(S, x(), 100), V, r"\[0, 99\]"),
    ("q_sample noise shape", lambda: forward.q_sample(S, x(), 0, noise=x(1, 2)), V, r"noise must have the shape of x0"),
    ("q_sample noise list", lambda: forward.q_sample(S, x(), 0, noise=[0.0]), T, "noise must be a tensor"),
    ("q_sample generator", lambda: forward.q_sample(S, x(), 0, generator="seed"), T, "generator"),
    ("q_step x_prev inf", lambda: forward.q_step(S, x() + INF, 0), V, "x_prev must be finite"),
    ("q_step noise shape", lambda: forward.q_step(S, x(), 0, noise=x(4, 1)), V, "noise must have the shape of x_prev"),
    ("q_posterior shapes", lambda: forward.q_posterior(S, x(), x(4, 3), 1), V, "x_t must have the shape of x0"),
    ("q_posterior x_t nan", lambda: forward.q_posterior(S, x(), x() + NAN, 1), V, "x_t must be finite"),
    ("predict_x0 eps shape", lambda: forward.predict_x0(S, x(), 0, x(2, 2)), V, "eps must have the shape of x_t"),
    ("predict_x0 eps list", lambda: forward.predict_x0(S, x(), 0, [0.0]), T, "eps must be a tensor"),
    # ------------------------------------------------------------------ timesteps
    ("timesteps steps float", lambda: samplers.timesteps(S, 10.0), T, "steps must be an integer"),
    ("timesteps steps bool", lambda: samplers.timesteps(S, True), T, "steps must be an integer"),
    ("timesteps steps 0", lambda: samplers.timesteps(S, 0), V, r"steps must be an integer in \[1, 100\]"),
    ("timesteps steps > T", lambda: samplers.timesteps(S, 101), V, r"\[1, 100\]"),
    ("timesteps spacing", lambda: samplers.timesteps(S, 10, "uniform"), V, "spacing must be one of 'leading'"),
    ("timesteps spacing None", lambda: samplers.timesteps(S, 10, None), V, "spacing must be one of"),
    ("dpm timesteps T", lambda: samplers.dpm_solver_timesteps(S, 100), V, r"\[1, 99\] \(T - 1"),
    ("dpm timesteps drop_t0", lambda: samplers.dpm_solver_timesteps(S, 10, drop_t0="yes"), V, "drop_t0 must be one of"),
    # ------------------------------------------------------------------ step rules
    ("ddpm_step t float", lambda: samplers.ddpm_step(S, x(), 5.0, x(), x()), T, "t must be an integer"),
    ("ddpm_step t range", lambda: samplers.ddpm_step(S, x(), 100, x(), x()), V, r"t must be an integer in \[0, 99\]"),
    ("ddpm_step t_prev", lambda: samplers.ddpm_step(S, x(), 5, x(), x(), t_prev=5), V, r"t_prev .*\[-1, 4\]"),
    ("ddpm_step t_prev bool", lambda: samplers.ddpm_step(S, x(), 5, x(), x(), t_prev=False), T, "t_prev"),
    ("ddpm_step noise shape", lambda: samplers.ddpm_step(S, x(), 5, x(), x(1, 2)), V,
     r"noise must have the shape of x_t \(4, 2\); got \(1, 2\)"),
    ("ddpm_step noise missing", lambda: samplers.ddpm_step(S, x(), 5, x()), V, "needs noise"),
    ("ddpm_step eps shape", lambda: samplers.ddpm_step(S, x(), 5, x(4, 1), x()), V, "eps must have the shape of x_t"),
    ("ddpm_step eps list", lambda: samplers.ddpm_step(S, x(), 5, [0.0], x()), T, "eps must be a tensor"),
    ("ddpm_step x_t int", lambda: samplers.ddpm_step(S, x(dtype=torch.long), 5, x(), x()), T, "x_t must be"),
    ("ddpm_step x_t 1-D", lambda: samplers.ddpm_step(S, torch.zeros(2), 5, torch.zeros(2), torch.zeros(2)), V,
     "batch dimension"),
    ("ddpm_step variance", lambda: samplers.ddpm_step(S, x(), 5, x(), x(), variance="fixed"), V, "variance must be"),
    ("ddpm_step history", lambda: samplers.ddpm_step(S, x(), 5, x(), x(), history=((6, x()),)), V,
     "single-step rule"),
    ("ddim_step eta nan", lambda: samplers.ddim_step(S, x(), 5, x(), x(), t_prev=2, eta=NAN), V,
     r"eta must be a finite number in \[0.0, inf\]"),
    ("ddim_step eta inf", lambda: samplers.ddim_step(S, x(), 5, x(), x(), t_prev=2, eta=INF), V, "eta must be"),
    ("ddim_step eta negative", lambda: samplers.ddim_step(S, x(), 5, x(), x(), t_prev=2, eta=-1.0), V, "eta must be"),
    ("ddim_step eta string", lambda: samplers.ddim_step(S, x(), 5, x(), x(), t_prev=2, eta="1"), T, "eta must be"),
    ("ddim_step noise shape", lambda: samplers.ddim_step(S, x(), 5, x(), x(4, 2, 1), t_prev=2, eta=1.0), V,
     "noise must have the shape of x_t"),
    ("ddim_step noise missing", lambda: samplers.ddim_step(S, x(), 5, x(), t_prev=2, eta=1.0), V, "needs noise"),
    ("euler_step noise", lambda: samplers.euler_step(S, x(), 5, x(), x(), t_prev=2), V, "deterministic"),
    ("euler_step eps shape", lambda: samplers.euler_step(S, x(), 5, x()[:1], t_prev=2), V, "eps must have the shape"),
    ("dpm_step history shape", lambda: samplers.dpm_solver_step(S, x(), 5, x(), t_prev=2, history=((8, x(2, 2)),)),
     V, r"a history x0_hat must have the shape of x_t \(4, 2\)"),
    ("dpm_step history order", lambda: samplers.dpm_solver_step(S, x(), 5, x(), t_prev=2, history=((4, x()),)), V,
     r"a history step must be an integer in \[6, 99\]"),
    ("dpm_step history kind", lambda: samplers.dpm_solver_step(S, x(), 5, x(), t_prev=2, history=x()), T,
     "history must be a tuple"),
    ("dpm_step history entry", lambda: samplers.dpm_solver_step(S, x(), 5, x(), t_prev=2, history=(x(),)), V,
     r"\(t, x0_hat\) pairs"),
    ("dpm_step to data", lambda: samplers.dpm_solver_step(S, x(), 5, x(), t_prev=-1, history=((8, x()),)), V,
     "first order"),
    ("dpm_step noise", lambda: samplers.dpm_solver_step(S, x(), 5, x(), x(), t_prev=2), V, "deterministic"),
    # ------------------------------------------------------------------ samplers
    ("ddpm generator int", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), generator=0), T,
     "generator must be a torch.Generator"),
    ("ddpm variance", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), variance=None), V, "variance must be one of"),
    ("ddpm shape 1-D", lambda: samplers.ddpm_sample(eps_model, S, (4,)), V, "shape must be a tuple"),
    ("ddpm shape string", lambda: samplers.ddpm_sample(eps_model, S, "4, 2"), V, "shape must be a tuple"),
    ("ddpm shape zero", lambda: samplers.ddpm_sample(eps_model, S, (0, 2)), V, "every entry of shape"),
    ("ddpm shape float", lambda: samplers.ddpm_sample(eps_model, S, (2.0, 2)), T, "every entry of shape"),
    ("ddpm shape bool", lambda: samplers.ddpm_sample(eps_model, S, (True, 2)), T, "every entry of shape"),
    ("ddpm x_T nan", lambda: samplers.ddpm_sample(eps_model, S, x() + NAN), V, "x_T must be finite"),
    ("ddpm x_T int", lambda: samplers.ddpm_sample(eps_model, S, x(dtype=torch.long)), T, "x_T must be"),
    ("ddpm x_T empty", lambda: samplers.ddpm_sample(eps_model, S, torch.zeros(0, 2)), V, "at least one sample"),
    ("ddpm y shape", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), y=torch.zeros(3, dtype=torch.long)), V,
     r"y must be a \(B,\)"),
    ("ddpm callback", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), callback=3), T, "callback must be callable"),
    ("ddpm check_finite", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), check_finite="no"), V, "check_finite"),
    ("ddpm dtype", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), dtype=torch.long), T, "dtype must be"),
    ("ddpm device", lambda: samplers.ddpm_sample(eps_model, S, (2, 2), device="gpu0"), V, "device must be"),
    ("ddpm model output", lambda: samplers.ddpm_sample(lambda x_t, t: x_t[:, :1], S, (2, 2)), V, "shape of x_t"),
    ("ddpm model None", lambda: samplers.ddpm_sample(lambda x_t, t: None, S, (2, 2)), V, "got NoneType"),
    ("ddpm model nan", lambda: samplers.ddpm_sample(lambda x_t, t: x_t * NAN, S, (2, 2)), samplers.NonFiniteSampleError,
     r"at step 0 of 100 \(t=99 -> t_prev=98\)"),
    ("ddim steps 0", lambda: samplers.ddim_sample(eps_model, S, (2, 2), steps=0), V, "steps must be"),
    ("ddim eta nan", lambda: samplers.ddim_sample(eps_model, S, (2, 2), eta=NAN), V, "eta must be a finite number"),
    ("ddim eta bool", lambda: samplers.ddim_sample(eps_model, S, (2, 2), eta=True), T, "eta must be a finite number"),
    ("euler spacing", lambda: samplers.euler_sample(eps_model, S, (2, 2), spacing="cosine"), V, "spacing must be"),
    ("euler eta", lambda: samplers.euler_sample(eps_model, S, (2, 2), eta=0.5), T, "unexpected keyword"),
    ("dpm order 3", lambda: samplers.dpm_solver_sample(eps_model, S, (2, 2), order=3), V, r"order .*\[1, 2\]"),
    ("dpm order float", lambda: samplers.dpm_solver_sample(eps_model, S, (2, 2), order=2.0), T, "order"),
    ("dpm lower_order_final", lambda: samplers.dpm_solver_sample(eps_model, S, (2, 2), lower_order_final=0), V,
     "lower_order_final must be an integer >= 1"),
    ("registry option", lambda: samplers.SAMPLERS["euler"](eps_model, S, (2, 2), eta=0.1), V,
     "eta does not apply to euler_sample"),
    ("registry steps ddpm", lambda: samplers.SAMPLERS["ddpm"](eps_model, S, (2, 2), steps=10), V,
     "steps does not apply"),
    ("start_state generator float", lambda: samplers.start_state(eps_model, (2, 2), generator=1.0), T, "generator"),
    # ------------------------------------------------------------------ losses
    ("l_simple x0 list", lambda: losses.l_simple(MLP, S, [[0.0, 0.0]]), T, "x0 must be a floating-point tensor"),
    ("l_simple x0 1-D", lambda: losses.l_simple(MLP, S, torch.zeros(2)), V, "x0 must have a batch dimension"),
    ("l_simple x0 nan", lambda: losses.l_simple(MLP, S, x() + NAN), V, "x0 must be finite"),
    ("l_simple x0 empty", lambda: losses.l_simple(MLP, S, torch.zeros(0, 2)), V, "at least one sample"),
    ("l_simple x0 int", lambda: losses.l_simple(MLP, S, x(dtype=torch.int32)), T, "floating-point"),
    ("l_simple p_uncond nan", lambda: losses.l_simple(MLP, S, x(), p_uncond=NAN), V, "p_uncond must be a finite"),
    ("l_simple p_uncond > 1", lambda: losses.l_simple(MLP, S, x(), p_uncond=1.5), V, r"\[0.0, 1.0\]"),
    ("l_simple p_uncond bool", lambda: losses.l_simple(MLP, S, x(), p_uncond=True), T, "p_uncond"),
    ("l_simple t range", lambda: losses.l_simple(MLP, S, x(), t=torch.full((4,), 100)), V, r"\[0, T-1\]"),
    ("l_simple t float", lambda: losses.l_simple(MLP, S, x(), t=torch.zeros(4)), T, "integer steps"),
    ("l_simple t batch", lambda: losses.l_simple(MLP, S, x(), t=torch.zeros(3, dtype=torch.long)), V, "batch has 4"),
    ("l_simple noise shape", lambda: losses.l_simple(MLP, S, x(), noise=x(4, 3)), V, "noise must have the shape"),
    ("l_simple generator", lambda: losses.l_simple(MLP, S, x(), generator=1), T, "generator"),
    ("l_simple model shape", lambda: losses.l_simple(lambda x_t, t: x_t[:1], S, x()), V, "shape of x_t"),
    ("elbo variance", lambda: losses.elbo_weights(S, "fixed"), V, "variance must be one of 'posterior', 'beta'"),
    ("loss_by_t buckets 0", lambda: losses.loss_by_t(MLP, S, x(), n_buckets=0), V, r"n_buckets .*\[1, 100\]"),
    ("loss_by_t buckets bool", lambda: losses.loss_by_t(MLP, S, x(), n_buckets=True), T, "n_buckets"),
    ("loss_by_t buckets > T", lambda: losses.loss_by_t(MLP, S, x(), n_buckets=101), V, "n_buckets"),
    ("loss_by_t x0 nan", lambda: losses.loss_by_t(MLP, S, x() + NAN), V, "x0 must be finite"),
    ("eps_scale t float", lambda: losses.eps_scale(MLP, S, x(), 5.0), T, r"t must be an integer in \[0, 99\]"),
    ("eps_scale t range", lambda: losses.eps_scale(MLP, S, x(), 100), V, r"t must be an integer in \[0, 99\]"),
    ("eps_scale x0 empty", lambda: losses.eps_scale(MLP, S, torch.zeros(0, 2), 5), V, "at least one sample"),
    # ------------------------------------------------------------------ oracle
    ("mixture nan weight", lambda: oracle.GaussianMixture(torch.tensor([NAN, 1.0]), torch.zeros(2, 2),
                                                          torch.eye(2).expand(2, 2, 2)), V, "finite"),
    ("mixture weights sum", lambda: oracle.GaussianMixture(torch.tensor([0.5, 0.2]), torch.zeros(2, 2),
                                                           torch.eye(2).expand(2, 2, 2)), V, "sum to 1"),
    ("mixture empty", lambda: oracle.GaussianMixture(torch.zeros(0), torch.zeros(0, 2), torch.zeros(0, 2, 2)), V,
     "at least one component"),
    ("mixture singular cov", lambda: oracle.GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.zeros(1, 2, 2)),
     V, "positive definite"),
    ("mixture shapes", lambda: oracle.GaussianMixture(torch.ones(1), torch.zeros(2, 2), torch.eye(2)[None]), V,
     r"\(K,\), \(K, d\), \(K, d, d\)"),
    ("mixture strings", lambda: oracle.GaussianMixture("a", "b", "c"), T, "tensors of numbers"),
    ("mixture sample n 0", lambda: MIX.sample(0), V, "n must be an integer >= 1"),
    ("mixture sample n float", lambda: MIX.sample(2.0), T, "n must be an integer >= 1"),
    ("mixture sample generator", lambda: MIX.sample(2, generator=5), T, "generator"),
    ("mixture noised abar > 1", lambda: MIX.noised(1.5), V, r"abar must be a finite number in \[0.0, 1.0\]"),
    ("mixture noised nan", lambda: MIX.noised(NAN), V, "abar must be a finite number"),
    ("mixture log_prob dim", lambda: MIX.log_prob(x(4, 3)), V, r"x must have shape \(n, d\) = \(n, 2\)"),
    ("mixture log_prob list", lambda: MIX.log_prob([[0.0, 0.0]]), T, "x must be a floating-point tensor"),
    ("mixture nearest empty", lambda: MIX.nearest_mean_distance(torch.zeros(0, 2)), V, "at least one sample"),
    ("mixture eps dim", lambda: MIX.eps(x(4, 3), 5, S), V, "3 values per sample"),
    ("mixture eps t", lambda: MIX.eps(x(), 100, S), V, r"\[0, 99\]"),
    ("mixture eps x_t list", lambda: MIX.eps([[0.0, 0.0]], 5, S), T, "x_t must be a floating-point tensor"),
    ("ring k 0", lambda: oracle.ring_mixture(0), V, "k must be an integer >= 1"),
    ("ring k float", lambda: oracle.ring_mixture(2.5), T, "k must be an integer"),
    ("ring std 0", lambda: oracle.ring_mixture(4, std=0.0), V, r"std must be a finite number in \(0.0, inf\]"),
    ("ring radius nan", lambda: oracle.ring_mixture(4, radius=NAN), V, "radius must be a finite number"),
    # ------------------------------------------------------------------ data
    ("photo name", lambda: data.photo("cat"), V, "name must be one of 'flower', 'china'"),
    ("photo size bool", lambda: data.photo("flower", True), T, "size must be an integer >= 1"),
    ("photo size 0", lambda: data.photo("flower", 0), V, "size must be an integer >= 1"),
    ("digits split", lambda: data.digits(split="val"), V, "split must be one of 'all', 'train', 'test'"),
    ("digits size float", lambda: data.digits(8.0), T, "size must be an integer"),
    ("toy2d name", lambda: data.toy2d("spiral"), V, "name must be one of"),
    ("toy2d n 0", lambda: data.toy2d("ring", 0), V, "n must be an integer >= 1"),
    ("toy2d generator", lambda: data.toy2d("ring", 10, generator=3), T, "generator"),
    ("torchvision name", lambda: data.torchvision_images("svhn"), V, "name must be one of 'mnist'"),
    ("torchvision size", lambda: data.torchvision_images("mnist", size=0), V, "size must be an integer >= 1"),
    ("torchvision download", lambda: data.torchvision_images("mnist", download="yes"), V, "download must be one of"),
    ("to_unit list", lambda: data.to_unit([0.0]), T, "x must be a tensor"),
    # ------------------------------------------------------------------ plots
    ("image_grid list", lambda: viz.image_grid([0.0]), T, "images must be a tensor"),
    ("image_grid 2-D", lambda: viz.image_grid(torch.zeros(4, 4)), V, r"images must have shape \(B, C, H, W\)"),
    ("image_grid nrow 0", lambda: viz.image_grid(torch.zeros(2, 1, 4, 4), nrow=0), V, "nrow must be an integer >= 1"),
    ("show_strip labels", lambda: viz.show_strip(torch.zeros(2, 1, 4, 4), ["a"]), V, "one entry per image"),
    ("plot_schedules labels", lambda: viz.plot_schedules([S], labels=["a", "b"]), V, "one entry per schedule"),
    ("plot_chain lengths", lambda: viz.plot_chain([x()], [], [1]), V, "same length"),
    # ------------------------------------------------------------------ widgets
    ("fog_frame t float", lambda: widgets.fog_frame(x(3, 4, 4), S, 1.5, x(3, 4, 4)), T, "t must be an integer"),
    ("fog_frame t range", lambda: widgets.fog_frame(x(3, 4, 4), S, 100, x(3, 4, 4)), V, r"\[0, 99\]"),
    ("fog_frame noise shape", lambda: widgets.fog_frame(x(3, 4, 4), S, 1, x(3, 4, 2)), V, "noise must have the shape"),
    ("fog_frame image batch", lambda: widgets.fog_frame(x(1, 3, 4, 4), S, 1, x(1, 3, 4, 4)), V, "one image"),
    ("fog_frame schedule", lambda: widgets.fog_frame(x(3, 4, 4), "linear", 1, x(3, 4, 4)), T, "schedule must be"),
    ("make_schedule kind", lambda: widgets.make_schedule("sigmoid", 10), V, "kind must be one of 'linear', 'cosine'"),
    ("schedule_stats T", lambda: widgets.schedule_stats("linear", 0), V, "T must be an integer >= 1"),
    ("schedule_explorer T", lambda: widgets.schedule_explorer("linear", 5000), V,
     r"T must be an integer in \[1, 4000\]"),
    ("schedule_explorer T bool", lambda: widgets.schedule_explorer("linear", True), T, "T must be an integer"),
    # ------------------------------------------------------------------ small models
    ("embedding dim odd", lambda: sinusoidal_embedding(torch.zeros(2), 7), V, "dim must be an even integer >= 2"),
    ("embedding dim bool", lambda: sinusoidal_embedding(torch.zeros(2), True), T, "dim must be an even integer"),
    ("embedding t list", lambda: sinusoidal_embedding([0.0], 8), T, "t must be a tensor"),
    ("embedding t 2-D", lambda: sinusoidal_embedding(torch.zeros(2, 2), 8), V, r"t must have shape \(B,\)"),
    ("embedding max_period", lambda: sinusoidal_embedding(torch.zeros(2), 8, max_period=NAN), V, "max_period"),
    ("TimeEmbedding hidden 0", lambda: TimeEmbedding(8, hidden=0), V, "hidden must be an integer >= 1"),
    ("MLPConfig depth 0", lambda: MLPConfig(depth=0), V, "depth must be an integer >= 1"),
    ("MLPConfig time_dim odd", lambda: MLPConfig(time_dim=7), V, "time_dim must be an even integer"),
    ("MLPConfig dim float", lambda: MLPConfig(dim=2.0), T, "dim must be an integer"),
    ("SimpleUNetConfig time_dim", lambda: SimpleUNetConfig(time_dim=3), V, "time_dim must be an even integer >= 2"),
    ("MLP x shape", lambda: MLP(x(4, 3), torch.zeros(4, dtype=torch.long)), V, r"x must have shape \(B, dim\)"),
    ("MLP t shape", lambda: MLP(x(), torch.zeros(3, dtype=torch.long)), V, "t must have shape"),
    ("MLP y unconditional", lambda: MLP(x(), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)), V,
     "y must be None"),
    ("SimpleUNet odd size", lambda: TINY_UNET(x(1, 1, 5, 5), torch.zeros(1, dtype=torch.long)), V, "divisible by 2"),
    ("SimpleUNet channels", lambda: TINY_UNET(x(1, 3, 4, 4), torch.zeros(1, dtype=torch.long)), V, "in_channels=1"),
    # ------------------------------------------------------------------ the checks themselves
    ("int_at_least bool", lambda: _checks.int_at_least("n", True, 1), T, "n must be an integer >= 1; got True"),
    ("int_in_range nan", lambda: _checks.int_in_range("n", NAN, 0, 3), T, r"n must be an integer in \[0, 3\]"),
    ("finite_float inf", lambda: _checks.finite_float("lr", INF, 0, low_open=True), V,
     r"lr must be a finite number in \(0, inf\]; got inf"),
    ("finite_float complex", lambda: _checks.finite_float("lr", 1j), T, "lr must be a finite number"),
    ("one_of", lambda: _checks.one_of("mode", "c", ("a", "b")), V, "mode must be one of 'a', 'b'; got 'c'"),
    ("generator_or_none", lambda: _checks.generator_or_none("g", 0), T, "g must be a torch.Generator or None; got int"),
    ("same_shape", lambda: _checks.same_shape("noise", x(2, 2), x()), V, r"noise must have the shape of x_t \(4, 2\)"),
    ("batch_tensor 0-D", lambda: _checks.batch_tensor("x", torch.tensor(1.0)), V, "batch dimension"),
]


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


def test_every_case_has_its_own_id():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_type_errors_from_the_checks_are_value_errors_too():
    """A wrong kind of argument raises ArgumentTypeError: `except ValueError` still catches it."""
    with pytest.raises(ValueError):
        _checks.int_at_least("steps", 2.5, 1)
    with pytest.raises(TypeError):
        _checks.int_at_least("steps", 2.5, 1)


def test_a_cuda_generator_is_refused_for_cpu_draws():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with pytest.raises(ValueError, match="CPU torch.Generator"):
        samplers.ddim_sample(eps_model, S, (2, 2), generator=torch.Generator("cuda"))


def test_good_input_still_works_after_all_that():
    """The same functions with sane arguments (a guard that the table is not refusing everything)."""
    assert samplers.ddpm_sample(eps_model, S, (2, 2), generator=gen()).shape == (2, 2)
    assert math.isfinite(losses.l_simple(MLP, S, x(), generator=gen()).item())
    assert MIX.sample(3, generator=gen()).shape == (3, 2)
    assert schedules.check_step(S, 99) == 99
