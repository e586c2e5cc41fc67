"""Classifier-free guidance on digits: adherence against diversity over a sweep of scales.

    python benchmarks/guidance.py                          # the README tables (one thread)
    python benchmarks/guidance.py --part labels --per-class 10 --scales 0 1 3

For each scale s and each sampler (three at matched cost, 20 network calls per sample: DDIM
with eta = 1, i.e. fresh noise at every step; DPM-Solver++(2M); DDIM with eta = 0; and DDIM
with 50 steps and eta = 1, the earlier reference), the shipped ``digits-cond`` model (``--model digits-cond-short``
for the 700-step run) draws ``--per-class`` digits of every class through ``guidance.cfg``,
and ``guidance.score_digits`` reports

- accuracy: the course's digit classifier (``metrics.digit_classifier``, a CNN) agrees with the
  requested label;
- indep.: the same for an independent classifier, trained differently on other features
  (scikit-learn's logistic regression on the raw pixels of the train split);
- FD class: Frechet distance of each class's samples to the real digits of that class in
  the CNN's features, averaged over the classes (biased upwards at small sizes; compare rows);
- spread: the samples' mean feature distance to their class centroid over the real digits'
  (1 = as varied as real digits);
- speckled: the fraction of samples rougher (total variation) than 99% of real digits, the
  speckle that deterministic samplers leave when the network's noise is too small at high
  noise (lesson 07).

Then the prompt model ``digits-prompt`` draws "thin D" and "thick D" for every digit D at
each scale in ``--prompt-scales``: the stroke follows the word when a thin digit uses less ink
than the median real digit of its class and a thick one more (``text.follows_stroke``); the
digit is read by both classifiers.
"""
from __future__ import annotations

import argparse
import time

import torch

import ddpm_course as dc
from ddpm_course import samplers
from ddpm_course.guidance import cfg, score_digits, speckled
from ddpm_course.models.text import DIGIT_WORDS, follows_stroke, prompt_ids

SAMPLERS = {
    "ddim 20 eta 1": lambda model, schedule, shape, g: samplers.ddim_sample(
        model, schedule, shape, steps=20, eta=1.0, generator=g
    ),
    "dpm++ 20": lambda model, schedule, shape, g: samplers.dpm_solver_sample(
        model, schedule, shape, steps=20, generator=g
    ),
    "ddim 20 eta 0": lambda model, schedule, shape, g: samplers.ddim_sample(model, schedule, shape, steps=20,
                                                                           generator=g),
    "ddim 50 eta 1": lambda model, schedule, shape, g: samplers.ddim_sample(
        model, schedule, shape, steps=50, eta=1.0, generator=g
    ),
}
PROMPT_SAMPLER = "ddim 50 eta 1"


def pixel_classifier():
    """An independent digit classifier (``guidance.pixel_classifier``) and its held-out accuracy."""
    test = dc.digits(16, split="test")
    clf = dc.guidance.pixel_classifier()
    accuracy = (clf.predict(test.images.flatten(1).numpy()) == test.labels.numpy()).mean()
    return clf, accuracy


def indep_accuracy(clf, samples: torch.Tensor, labels: torch.Tensor) -> float:
    return float((clf.predict(samples.clamp(-1, 1).flatten(1).numpy()) == labels.numpy()).mean())


def label_sweep(args, clf) -> None:
    model = dc.pretrained(args.model)
    labels = torch.arange(10).repeat_interleave(args.per_class)  # (N,)
    print(f"\n{args.model}: {args.per_class} samples per class, {len(labels)} per row")
    print(f"{'sampler':13s} {'s':>4s} {'acc':>6s} {'indep.':>6s} {'FD class':>8s} {'spread':>6s} {'speckled':>8s} "
          f"{'sec':>5s}")
    for name in args.samplers:
        sample = SAMPLERS[name]
        for scale in args.scales:
            start = time.perf_counter()
            x = sample(cfg(model.model, scale, y=labels), model.schedule, (len(labels), 1, 16, 16),
                       torch.Generator().manual_seed(args.seed))
            seconds = time.perf_counter() - start
            s = score_digits(x, labels)
            indep = indep_accuracy(clf, x, labels)
            print(f"{name:13s} {scale:>4g} {s.accuracy:>6.3f} {indep:>6.3f} {s.fd_class:>8.1f} "
                  f"{s.spread:>6.2f} {speckled(x).double().mean().item():>8.2f} {seconds:>5.0f}", flush=True)


def prompt_sweep(args, clf) -> None:
    model = dc.pretrained("digits-prompt")
    prompts = [f"{stroke} {DIGIT_WORDS[d]}" for stroke in ("thin", "thick") for d in range(10)
               for _ in range(args.per_class)]
    labels = torch.arange(10).repeat_interleave(args.per_class).repeat(2)  # (N,)
    strokes = [p.split()[0] for p in prompts]
    y = prompt_ids(prompts)
    print(f"\ndigits-prompt: 'thin D' and 'thick D', {args.per_class} samples per prompt, {PROMPT_SAMPLER}")
    print(f"{'s':>4s} {'stroke':>6s} {'acc':>6s} {'indep.':>6s}")
    for scale in args.prompt_scales:
        x = SAMPLERS[PROMPT_SAMPLER](cfg(model.model, scale, y=y), model.schedule, (len(y), 1, 16, 16),
                                 torch.Generator().manual_seed(args.seed))
        follows = follows_stroke(x, labels, strokes).double().mean().item()
        acc = (dc.metrics.digit_classifier()(x.clamp(-1, 1)).argmax(1) == labels).double().mean().item()
        print(f"{scale:>4g} {follows:>6.3f} {acc:>6.3f} {indep_accuracy(clf, x, labels):>6.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("labels", "prompts", "all"), default="all",
                        help="which table(s) to make (default all)")
    parser.add_argument("--per-class", type=int, default=10,
                        help="samples per class (per prompt) in each row (default 10)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 3.0, 8.0])
    parser.add_argument("--prompt-scales", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--model", default="digits-cond", choices=("digits-cond", "digits-cond-short"))
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clf, accuracy = pixel_classifier()
    test = dc.digits(16, split="test")
    cnn = (dc.metrics.digit_classifier()(test.images).argmax(1) == test.labels).double().mean().item()
    print(f"held-out accuracy of the classifiers: CNN {cnn:.3f}, "
          f"independent (logistic regression on pixels) {accuracy:.3f}")
    if args.part in ("labels", "all"):
        label_sweep(args, clf)
    if args.part in ("prompts", "all"):
        prompt_sweep(args, clf)


if __name__ == "__main__":
    with torch.no_grad():
        main()
