"""The shipped-model registry and the model kinds: every checkpoint declares its kind, every command
and sampler refuses a model of another kind (naming what samples it) or does the right thing."""
import json

import pytest
import torch

import ddpm_course as dc
from ddpm_course import cli, flow, samplers, shipped
from ddpm_course.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from ddpm_course.models import build_model
from ddpm_course.shipped import PRETRAINED, pretrained

MLP = {"dim": 2, "hidden": 16, "depth": 1, "time_dim": 8, "num_classes": None}
SCHEDULE = dc.linear_schedule(50)


def _net():
    torch.manual_seed(0)
    return build_model("MLPDenoiser", MLP)


def test_the_registry_and_the_pretrained_folder_list_the_same_models():
    files = {p.name for p in shipped.folder().iterdir() if p.suffix in (".json", ".safetensors")}
    expected = set()
    for name, entry in shipped.SHIPPED.items():
        if entry.file:
            expected.add(entry.file)
        else:
            expected |= {p.name for p in checkpoint_paths(shipped.folder() / name)}
    assert files == expected
    assert set(PRETRAINED) == {n for n, e in shipped.SHIPPED.items() if e.kind != "classifier"}


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_every_shipped_json_declares_the_registry_kind_and_loads(name):
    meta = json.loads(checkpoint_paths(shipped.folder() / name)[1].read_text())
    assert meta["kind"] == shipped.SHIPPED[name].kind
    ckpt = pretrained(name)  # the weights' checksum still matches: only the JSON gained a field
    assert ckpt.kind == meta["kind"] and shipped.kind_of(ckpt.model) == meta["kind"] and ckpt.name == name


def test_a_latent_model_loads_with_its_decoder():
    pipe = shipped.load("digits-latent")
    assert shipped.kind_of(pipe.unet) == "latent" and shipped.kind_of(pipe.vae) == "vae"
    assert pipe.latent_shape == (4, 8, 8) and pipe.image_shape == (1, 32, 32)


def test_register_adds_one_entry_and_checks_its_kind(monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED", dict(shipped.SHIPPED))
    entry = shipped.register(shipped.Shipped("digits-new", "eps", "a new digits model", "ddpm-course train ..."))
    assert shipped.SHIPPED["digits-new"] is entry and entry.summary == "a new digits model: ddpm-course train ..."
    with pytest.raises(FileNotFoundError, match=r"make it with: ddpm-course make \S+ \(it runs: ddpm-course train"):
        shipped.path("digits-new")
    with pytest.raises(ValueError, match="kind must be one of"):
        shipped.register(shipped.Shipped("bad", "gan", "", ""))
    with pytest.raises(ValueError, match="name must be one of"):
        shipped.path("nope")


def test_save_declares_a_kind_and_the_loader_checks_it(tmp_path):
    save_checkpoint(tmp_path / "eps", _net(), SCHEDULE, sample_shape=(2,))
    save_checkpoint(tmp_path / "vel", _net(), SCHEDULE, sample_shape=(2,), kind="velocity")
    assert load_checkpoint(tmp_path / "eps").kind == "eps" and load_checkpoint(tmp_path / "vel").kind == "velocity"
    with pytest.raises(ValueError, match="kind must be one of"):
        save_checkpoint(tmp_path / "bad", _net(), SCHEDULE, sample_shape=(2,), kind="noise")
    meta_path = tmp_path / "eps.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "kind": "gan"}))
    with pytest.raises(ValueError, match=r"eps.json: field 'kind' must be one of \['eps'"):
        load_checkpoint(tmp_path / "eps")


@pytest.mark.parametrize("record, kind", [
    ({}, "eps"),
    ({"objective": "flow matching: velocity eps - x0"}, "velocity"),
    ({"command": "python -m ddpm_course.flow --out x"}, "velocity"),
    ({"decode_with": "ddpm_course/pretrained/digits-latent-vae"}, "latent"),
])
def test_an_older_checkpoint_without_a_kind_gets_it_inferred(tmp_path, record, kind):
    save_checkpoint(tmp_path / "old", _net(), SCHEDULE, sample_shape=(2,), record=record)
    meta_path = tmp_path / "old.json"
    meta = json.loads(meta_path.read_text())
    del meta["kind"]
    meta_path.write_text(json.dumps(meta))
    assert load_checkpoint(tmp_path / "old").kind == kind


def test_the_samplers_refuse_a_model_of_another_kind():
    velocity, eps = pretrained("digits-flow"), pretrained("digits")
    with pytest.raises(ValueError, match=r"model is a flow-matching velocity model: sample it with "
                                         r"ddpm_course\.flow\.flow_sample"):
        samplers.ddim_sample(velocity.model, velocity.schedule, (1, 1, 16, 16), steps=2)
    for name in samplers.SAMPLERS:
        with pytest.raises(ValueError, match="the DDPM samplers"):
            samplers.SAMPLERS[name](velocity.model, velocity.schedule, (1, 1, 16, 16), steps=2) if name != "ddpm" \
                else samplers.ddpm_sample(velocity.model, velocity.schedule, (1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"model is a noise predictor .*flow_sample: for velocity models only"):
        flow.flow_sample(eps.model, (1, 1, 16, 16), steps=2)
    vae = pretrained("digits-latent-vae")
    with pytest.raises(ValueError, match=r"model is a VAE, not a diffusion model: load it with "
                                         r"ddpm_course\.autoencoder\.load_elbo_vae"):
        samplers.ddim_sample(vae.model, vae.schedule, (1, 1, 32, 32), steps=2)
    untagged = _net()  # a network built in code declares nothing: nothing is refused
    assert samplers.ddim_sample(untagged, SCHEDULE, (3, 2), steps=2).shape == (3, 2)
    assert flow.flow_sample(untagged, (3, 2), steps=2).shape == (3, 2)


@pytest.mark.parametrize("model, fragment", [
    ("digits-flow", "--model digits-flow is a flow-matching velocity model: sample it with ddpm_course.flow.flow_"),
    ("digits-latent-vae", "--model digits-latent-vae is a VAE, not a diffusion model"),
    ("digits-latent-elbo-vae", "--model digits-latent-elbo-vae is a VAE"),
    ("digit-classifier", "--model digit-classifier is the digit classifier behind the metrics, not a generator"),
])
@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_the_commands_refuse_a_model_of_another_kind(tmp_path, capsys, model, fragment, command):
    out = tmp_path / "x.png"
    argv = [command, "--model", model, "--device", "cpu"] + (["--out", str(out)] if command == "sample" else [])
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert fragment in err and f"ddpm-course {command} runs noise predictors" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_the_commands_read_the_kind_of_a_checkpoint_file(tmp_path, capsys):
    save_checkpoint(tmp_path / "vel", _net(), SCHEDULE, sample_shape=(2,), kind="velocity")
    argv = ["sample", "--model", str(tmp_path / "vel"), "--device", "cpu", "--out", str(tmp_path / "v.png")]
    assert cli.main(argv) == 1
    assert "is a flow-matching velocity model" in capsys.readouterr().err


def test_sample_decodes_a_latent_model(tmp_path):
    args = cli.build_parser().parse_args(["sample", "--model", "digits-latent", "--sampler", "ddim", "--steps", "2",
                                          "--n", "2", "--device", "cpu", "--out", str(tmp_path / "x.png")])
    x = cli.sample._draw(args, cli.sample._load_model("digits-latent", torch.device("cpu")))
    assert x.shape == (2, 1, 32, 32)  # images from the VAE, not (2, 4, 8, 8) latents
    pipe = shipped.load("digits-latent")
    z = samplers.ddim_sample(pipe.unet, pipe.schedule, (2, *pipe.latent_shape), steps=2,
                             generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(x, pipe.vae.decode_scaled(z), atol=1e-5)
