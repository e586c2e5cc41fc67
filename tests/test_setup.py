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
