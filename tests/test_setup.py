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
    # In a fresh interpreter: `import ddpm_course` loads only what its top-level names need (the
    # core of lessons 01-07), and every other submodule loads when first named, as itself. In this
    # process other tests have imported everything already, so only a new one can tell.
    import json
    import subprocess
    import sys

    eager = {"schedules", "forward", "data", "samplers", "steps", "_checks", "_compat", "_model"}  # and their imports
    script = (
        "import json, sys, ddpm_course as dc\n"
        "print(json.dumps(sorted(m.split('.')[1] for m in sys.modules if m.startswith('ddpm_course.'))))\n"
        "print('diffusers' in sys.modules, 'matplotlib' in sys.modules)\n"
        "for name in dc._SUBMODULES:\n"
        "    assert getattr(dc, name).__name__ == 'ddpm_course.' + name, name\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, heavy, ok = out.stdout.splitlines()
    assert set(json.loads(loaded)) == eager, loaded
    assert heavy == "False False" and ok == "ok"
    assert dc.forward.q_sample is dc.q_sample


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
