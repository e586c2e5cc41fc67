"""timing: FLOPs counted whichever attention kernel runs; ms_per_image: a warm-up, then the median."""
import copy
import time

import pytest
import torch
import torch.nn.functional as F

from ddpm_course import models
from ddpm_course.models.unet import set_weight_layout
from ddpm_course.timing import count_flops, ms_per_image
from ddpm_course.train import PRESETS


@pytest.mark.parametrize("shape", [(3, 16, 8), (2, 4, 16, 8)])  # (B, N, C) or (B, heads, N, C)
def test_attention_is_counted_as_its_two_matrix_products(shape):
    q, k, v = (torch.randn(*shape, generator=torch.Generator().manual_seed(i)) for i in range(3))
    *batch, n, c = shape
    expected = 2 * (2 * torch.tensor(batch).prod().item() * n * n * c)  # q k^T, then softmax(.) v
    assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == expected
    plain = count_flops(lambda: (q @ k.transpose(-1, -2)).softmax(-1) @ v)
    assert plain == expected


def test_a_unet_pass_counts_the_same_in_either_weight_layout():
    torch.manual_seed(0)
    unet = models.build_model("UNet", dict(PRESETS["digits"].model_config)).eval()
    nchw = set_weight_layout(copy.deepcopy(unet), torch.contiguous_format)
    x, t = torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        counts = {count_flops(lambda m=m: m(x, t)) for m in (unet, nchw)}
    assert len(counts) == 1 and counts.pop() > 0


def test_median_per_image_after_one_warm_up_call():
    calls = []

    def fn():
        calls.append(None)
        time.sleep(0.02)

    ms = ms_per_image(fn, batch=4, reps=3)
    assert len(calls) == 4  # one warm-up, three timed
    assert 20 / 4 <= ms < 200 / 4


@pytest.mark.parametrize("kwargs, fragment", [({"batch": 0}, "batch"), ({"batch": 2, "reps": 0}, "reps"),
                                              ({"batch": True}, "batch")])
def test_bad_counts_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ms_per_image(lambda: None, **kwargs)


def test_counted_counts_every_call_and_passes_every_argument_on():
    from ddpm_course.timing import Counted

    counted = Counted(lambda x, t, y=None: x + t + (0 if y is None else y))
    assert counted(1, 2) == 3 and counted(1, 2, y=4) == 7 and counted(1, 2, 5) == 8
    assert counted.calls == 3
