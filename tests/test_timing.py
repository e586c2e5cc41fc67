"""timing.ms_per_image: a warm-up call, then the median of the timed calls, per image."""
import time

import pytest

from ddpm_course.timing import ms_per_image


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
