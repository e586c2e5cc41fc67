"""``ddpm-course make NAME``: one command remakes every shipped model with the command recorded in it."""
from __future__ import annotations

import json
import shlex

import pytest
import torch

from ddpm_course import cli, shipped
from ddpm_course.checkpoint import load_checkpoint
from ddpm_course.cli import make

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_print_shows_the_recorded_command_with_an_absolute_output(name, capsys):
    assert cli.main(["make", name, "--print"]) == 0
    words = shlex.split(capsys.readouterr().out)
    entry = shipped.SHIPPED[name]
    meta = shipped.folder() / f"{name}.json"
    recorded = json.loads(meta.read_text())["record"]["command"] if meta.is_file() else entry.command
    expected = [w for w in shlex.split(recorded) if w != "--overwrite"]  # never inherited from the record
    if "--out" in expected:  # the output goes to this installation's shipped folder, wherever make is run
        out = words[words.index("--out") + 1]
        assert out.startswith(str(shipped.folder())) and out.endswith(expected[expected.index("--out") + 1][-12:])
        expected[expected.index("--out") + 1] = out
    assert words == expected


def test_out_overwrite_and_extra_arguments_change_only_what_they_name(tmp_path):
    words = make.make_argv("digits-flow", str(tmp_path / "f"), overwrite=True, extra=["--steps", "3"])
    recorded = make.recorded_command("digits-flow")
    assert words[words.index("--out") + 1] == str(tmp_path / "f")
    assert words[-3:] == ["--overwrite", "--steps", "3"]
    assert [w for w in words if w not in (str(tmp_path / "f"),)][: len(recorded) - 1] == [
        w for w in recorded if not w.startswith("ddpm_course/pretrained/")]
    with pytest.raises(cli.CLIError, match="--out does not apply"):
        make.make_argv("digit-classifier", str(tmp_path / "c"))


def test_unknown_name_is_a_usage_error(capsys):
    assert cli.main(["make", "digits-nope"]) == 2
    assert "invalid choice: 'digits-nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="name must be one of"):
        make.recorded_command("digits-nope")


@pytest.mark.parametrize("words, runner", [
    (["ddpm-course", "train", "--preset", "toy2d"], "module"),
    (["python", "-m", "ddpm_course.flow", "--out", "x"], "module"),
    (["python", "-m", "ddpm_course.guidance", "digits-cond", "--out", "x"], "module"),
])
def test_each_kind_of_recorded_command_reaches_its_maker(monkeypatch, words, runner):
    seen = {}
    def record(kind):
        return lambda target, **kw: seen.setdefault(kind, [target, *make.sys.argv[1:]])

    monkeypatch.setattr(make.runpy, "run_module", record("module"))
    monkeypatch.setattr(make.runpy, "run_path", record("script"))
    assert make.run(words) == 0
    assert list(seen) == [runner]
    assert seen[runner][-1] == words[-1]


@pytest.mark.parametrize("words", [["python", "benchmarks/train_guided.py", "digits-cond"], ["bash", "make.sh"]])
def test_a_command_that_is_not_a_package_maker_is_refused(words):
    # every shipped model is made by the package itself, so a wheel install can remake each of them
    with pytest.raises(cli.CLIError, match="do not know how to run the recorded command"):
        make.run(words)


def test_a_maker_refusing_to_overwrite_exits_non_zero(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli.main(["make", "digits-gan", "--out", str(out), "--args", "--steps 2"]) == 0
    assert load_checkpoint(out).kind == "generator"
    before = (tmp_path / "g.safetensors").read_bytes()
    assert cli.main(["make", "digits-gan", "--out", str(out), "--args", "--steps 2"]) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "g.safetensors").read_bytes() == before  # nothing replaced
    assert cli.main(["make", "digits-gan", "--out", str(out), "--overwrite", "--args", "--steps 3"]) == 0
    assert load_checkpoint(out).record["steps"] == 3
    assert torch.get_num_threads() >= 1


def test_every_maker_shares_one_parser_and_one_record():
    from ddpm_course import _records

    parser = _records.maker_parser("python -m x", None, steps=450, lr=1e-3, warmup_steps=50)
    args = parser.parse_args(["--out", "o", "--warmup-steps", "7", "--lr", "0.5"])
    assert (args.steps, args.lr, args.warmup_steps, args.threads, args.overwrite, args.no_progress) == (
        450, 0.5, 7, 1, False, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "o", "--threads", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "3"])  # --out is required
    assert not hasattr(_records.maker_parser("p", None, progress=False).parse_args(["--out", "o"]), "no_progress")
    record = _records.run_record("python -m x", ["--out", "o", "--steps", "3"], steps=3)
    assert record["command"] == "python -m x --out o --steps 3" and record["steps"] == 3
    assert "torch threads" in record["hardware"] and len(record["date_utc"]) == 16


@pytest.mark.parametrize("name", ["digits-cond", "digits-prompt"])
def test_the_conditional_models_are_remade_by_the_package(tmp_path, name):
    out = tmp_path / name
    assert cli.main(["make", name, "--out", str(out), "--args", "--steps 2"]) == 0
    ckpt = load_checkpoint(out)
    shipped_ckpt = shipped.pretrained(name)
    assert type(ckpt.model) is type(shipped_ckpt.model) and ckpt.config == shipped_ckpt.config
    assert ckpt.record["command"].startswith(f"python -m ddpm_course.guidance {name} --out {out}")
    assert ckpt.record["train_settings"] == {**shipped_ckpt.record["train_settings"],
                                             "ema_decay": ckpt.record["train_settings"]["ema_decay"]}
