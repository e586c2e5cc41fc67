"""Checkpoints: exact round trips, refusal to overwrite, clear errors for bad files."""
import json

import pytest
import torch

import ddpm_course as dc
from ddpm_course import models
from ddpm_course.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from ddpm_course.losses import eps_scale


def _unet():
    torch.manual_seed(0)
    model = models.UNet(models.UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                          attention_levels=(1,), dropout=0.0, num_classes=3, groups=4, time_dim=None))
    with torch.no_grad():  # the output conv starts at zero; make the round trip test something
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 1, 8, 8, generator=g), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 1, 2, 3])


def test_round_trip_gives_identical_outputs(tmp_path):
    model, schedule = _unet(), dc.cosine_schedule(1000)
    record = {"steps": 12, "note": "test"}
    save_checkpoint(tmp_path / "run", model, schedule, sample_shape=(1, 8, 8), record=record)
    ckpt = load_checkpoint(tmp_path / "run.safetensors")
    assert not ckpt.model.training
    assert ckpt.arch == "UNet" and ckpt.image_size == 8 and ckpt.sample_shape == (1, 8, 8)
    assert ckpt.record == record
    assert ckpt.schedule.name == "cosine" and torch.equal(ckpt.schedule.betas, schedule.betas)  # bit-exact via JSON
    assert torch.equal(ckpt.schedule.alpha_bars, schedule.alpha_bars)
    x, t, y = _inputs()
    with torch.no_grad():
        assert torch.equal(ckpt.model(x, t, y), model(x, t, y))


def test_float16_storage_is_close_and_smaller(tmp_path):
    model, schedule = _unet(), dc.linear_schedule(100)
    w32, _ = save_checkpoint(tmp_path / "a", model, schedule, sample_shape=(1, 8, 8))
    w16, _ = save_checkpoint(tmp_path / "b", model, schedule, sample_shape=(1, 8, 8), weights_dtype=torch.float16)
    assert w16.stat().st_size < 0.6 * w32.stat().st_size
    loaded = load_checkpoint(tmp_path / "b").model
    assert next(loaded.parameters()).dtype == torch.float32
    x, t, y = _inputs()
    t = t.clamp(max=99)
    with torch.no_grad():
        assert torch.allclose(loaded(x, t, y), model(x, t, y), atol=1e-2)


def test_mlp_round_trip_has_no_image_size(tmp_path):
    model = models.MLPDenoiser(models.MLPConfig(dim=2, hidden=16, depth=2, time_dim=8, num_classes=None))
    save_checkpoint(tmp_path / "toy.safetensors", model, dc.linear_schedule(50), sample_shape=(2,))
    ckpt = load_checkpoint(tmp_path / "toy")
    assert ckpt.image_size is None and ckpt.sample_shape == (2,)


def test_refuses_to_overwrite(tmp_path):
    model, schedule = _unet(), dc.linear_schedule(10)
    save_checkpoint(tmp_path / "run", model, schedule, sample_shape=(1, 8, 8))
    before = (tmp_path / "run.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(tmp_path / "run", model, schedule, sample_shape=(1, 8, 8))
    assert (tmp_path / "run.safetensors").read_bytes() == before
    save_checkpoint(tmp_path / "run", model, schedule, sample_shape=(1, 8, 8), overwrite=True)


def test_truncated_weights_raise_value_error(tmp_path):
    weights, _ = save_checkpoint(tmp_path / "run", _unet(), dc.linear_schedule(10), sample_shape=(1, 8, 8))
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_checkpoint(tmp_path / "run")


def test_garbage_weights_with_matching_checksum_raise_value_error(tmp_path):
    import hashlib

    weights, meta_path = save_checkpoint(tmp_path / "run", _unet(), dc.linear_schedule(10), sample_shape=(1, 8, 8))
    weights.write_bytes(b"\x00" * 64)
    meta = json.loads(meta_path.read_text())
    meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="safetensors"):
        load_checkpoint(tmp_path / "run")


def test_corrupt_metadata_raises_value_error(tmp_path):
    _, meta_path = save_checkpoint(tmp_path / "run", _unet(), dc.linear_schedule(10), sample_shape=(1, 8, 8))
    meta_path.write_text(meta_path.read_text()[:50])
    with pytest.raises(ValueError, match="JSON"):
        load_checkpoint(tmp_path / "run")


def test_weights_of_another_architecture_raise_value_error(tmp_path):
    schedule = dc.linear_schedule(10)
    save_checkpoint(tmp_path / "unet", _unet(), schedule, sample_shape=(1, 8, 8))
    simple = models.SimpleUNet(models.SimpleUNetConfig(in_channels=1, base_channels=8, time_dim=16))
    save_checkpoint(tmp_path / "simple", simple, schedule, sample_shape=(1, 8, 8))
    # put the SimpleUNet's weights (and their checksum) under the UNet's description
    unet_w, unet_meta = checkpoint_paths(tmp_path / "unet")
    simple_w, simple_meta = checkpoint_paths(tmp_path / "simple")
    unet_w.write_bytes(simple_w.read_bytes())
    meta = json.loads(unet_meta.read_text())
    meta["weights_sha256"] = json.loads(simple_meta.read_text())["weights_sha256"]
    unet_meta.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another architecture"):
        load_checkpoint(tmp_path / "unet")


def test_missing_files_and_unknown_arch(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    _, meta_path = save_checkpoint(tmp_path / "run", _unet(), dc.linear_schedule(10), sample_shape=(1, 8, 8))
    meta = json.loads(meta_path.read_text())
    meta["arch"] = "Transformer"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Transformer"):
        load_checkpoint(tmp_path / "run")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    save_checkpoint(tmp_path / "run", _unet(), dc.linear_schedule(10), sample_shape=(1, 8, 8))
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_checkpoint(tmp_path / "run")


def test_pretrained_bad_name():
    with pytest.raises(ValueError, match="digits"):
        dc.pretrained("cifar")


@pytest.mark.parametrize("name, shape", [("digits", (1, 16, 16)), ("toy2d", (2,))])
def test_shipped_models_load(name, shape):
    from importlib import resources

    shipped = dc.pretrained(name)
    assert not shipped.model.training and shipped.sample_shape == shape
    assert shipped.image_size == (16 if name == "digits" else None)
    assert shipped.record["command"].startswith(f"ddpm-course train --preset {name}")
    size = (resources.files("ddpm_course") / "pretrained" / f"{name}.safetensors").stat().st_size
    assert size < 5_000_000
    x = torch.zeros(2, *shape)
    with torch.no_grad():
        out = shipped.model(x, torch.tensor([0, shipped.schedule.T - 1]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_shipped_digits_model_predicts_full_size_noise_at_high_noise_levels():
    # Near t = T the deterministic samplers amplify eps errors by 1/sqrt(abar_t) ~ 157; a model
    # whose eps comes out a few percent short there (as one averaged with a fixed EMA decay
    # from a zero output layer does) samples badly with DDIM and DPM-Solver++. Lesson 07.
    shipped = dc.pretrained("digits")
    held_out = dc.digits(16, split="test").images
    for t in (999, 900, 600):
        scale = eps_scale(shipped.model, shipped.schedule, held_out, t, generator=torch.Generator().manual_seed(t))
        assert abs(scale - 1) < 0.01, (t, scale)


def test_pretrained_is_a_checkpoint_with_a_name():
    from ddpm_course.checkpoint import Checkpoint, Pretrained

    shipped = dc.pretrained("toy2d")
    assert Pretrained is Checkpoint and isinstance(shipped, Checkpoint)
    assert shipped.name == "toy2d" and shipped.arch == "MLPDenoiser" and shipped.train_state is None
    assert (shipped.image_size, shipped.sample_shape, shipped.schedule.T) == (None, (2,), 1000)


def test_a_training_state_round_trips_bit_for_bit_next_to_float16_weights(tmp_path):
    from ddpm_course.train import train

    data = dc.toy2d("mixture", n=64, generator=torch.Generator().manual_seed(0))
    model = models.MLPDenoiser(models.MLPConfig(dim=2, hidden=16, depth=2, time_dim=8, num_classes=None))
    result = train(model, dc.linear_schedule(20), data, steps=3, batch_size=16, progress=False)
    save_checkpoint(tmp_path / "run", result.final_model, dc.linear_schedule(20), sample_shape=(2,),
                    weights_dtype=torch.float16, train_state=result.state)
    loaded = load_checkpoint(tmp_path / "run").train_state
    assert loaded.scalars == json.loads(json.dumps(result.state.scalars))
    assert loaded.tensors.keys() == result.state.tensors.keys()
    for name, tensor in result.state.tensors.items():
        assert loaded.tensors[name].dtype == tensor.dtype and torch.equal(loaded.tensors[name], tensor), name


def test_metadata_without_the_optional_fields_still_loads(tmp_path):
    # files written before weights_dtype, record and train_state existed keep loading
    _, meta_path = save_checkpoint(tmp_path / "run", _unet(), dc.linear_schedule(10), sample_shape=(1, 8, 8))
    meta = json.loads(meta_path.read_text())
    for optional in ("weights_dtype", "record"):
        del meta[optional]
    meta_path.write_text(json.dumps(meta))
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.record == {} and ckpt.train_state is None
