"""dc.setup seeds every generator and reports the device it picked."""
import torch

import ddpm_course as dc


def test_setup_seeds_and_picks_a_device(capsys):
    device = dc.setup(seed=123)
    a = torch.rand(3)
    assert "device" in capsys.readouterr().out
    dc.setup(seed=123, verbose=False)
    assert torch.equal(a, torch.rand(3))
    assert device == dc.pick_device()


def test_submodules_load_on_first_use():
    assert dc.forward.q_sample is dc.q_sample
    assert callable(dc.oracle.ring_mixture)


def test_setup_makes_the_tf32_and_determinism_choices_explicit(capsys):
    try:
        dc.setup(seed=0, tf32=False, deterministic=True)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.are_deterministic_algorithms_enabled()
        assert "deterministic" in capsys.readouterr().out
        dc.setup(seed=0)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
