"""`ddpm-course train` under torchrun: two CPU processes on the gloo backend train one model with
DistributedDataParallel; the replicas end with the same weights and EMA, each rank drew its own
batches, and only rank 0 printed and saved."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ddpm_course import distributed

# Runs `ddpm-course train ARGS` in each process (cli.main, as the console script does), with
# train() wrapped to write this rank's digests next to the checkpoint: the test's only window
# into the ranks other than 0, which save nothing.
WORKER = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    from ddpm_course import cli, train as train_module

    torch.set_num_threads(1)
    real_train = train_module.train

    def digest(module):
        h = hashlib.sha256()
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def recording_train(*args, **kwargs):
        result = real_train(*args, **kwargs)
        record = {"model": digest(result.model), "ema": digest(result.ema_model), "losses": result.losses,
                  "seed": kwargs["generator"].initial_seed(), "distributed": kwargs["distributed"]}
        with open(os.path.join(os.environ["DIGEST_DIR"], f"rank{os.environ['RANK']}.json"), "w") as f:
            json.dump(record, f)
        return result

    train_module.train = recording_train
    sys.exit(cli.main(sys.argv[1:]))
''')


def test_no_torchrun_environment_means_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.from_env() is None
    assert distributed.rank_seed(7, None) == 7
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    where = distributed.from_env()
    assert where == distributed.Rank(1, 2, 1) and not where.is_main
    assert distributed.rank_seed(7, where) == 8
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2, WORLD_SIZE=2"):
        distributed.from_env()


def test_train_refuses_distributed_without_a_process_group():
    from ddpm_course import linear_schedule
    from ddpm_course.models import MLPDenoiser
    from ddpm_course.train import train

    with pytest.raises(ValueError, match="torchrun"):
        train(MLPDenoiser(), linear_schedule(10), torch.randn(8, 2), steps=1, distributed=True, progress=False)


def test_two_gloo_processes_end_with_the_same_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "toy"
    env = {**os.environ, "DIGEST_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         "train", "--preset", "toy2d", "--steps", "5", "--batch-size", "64", "--device", "cpu", "--out", str(out),
         "--no-progress"],
        env=env, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["distributed"] for r in ranks)
    assert [r["seed"] for r in ranks] == [0, 1]  # each rank its own data stream
    assert ranks[0]["model"] == ranks[1]["model"]  # bit-identical replicas
    assert ranks[0]["ema"] == ranks[1]["ema"]
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 5  # the mean over the ranks
    assert proc.stdout.count("trained 5 steps") == 1  # rank 0 alone reports
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["record"]["processes"] == 2 and meta["record"]["steps"] == 5
