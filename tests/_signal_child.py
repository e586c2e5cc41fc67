"""``ddpm-course`` run by tests/test_signals.py, with pauses the test controls at exact moments.

Environment: CTL a folder; PAUSE a comma-separated list of tags where the run stops until the test
creates CTL/go-TAG (after CTL/at-TAG appears): ``lossN`` (inside the N-th training loss) or
``STATUSN`` (the N-th save of that record status, ``running``, ``interrupted`` or ``finished``,
paused after both temporary files are written, just before the first rename). While paused, the
child writes CTL/held-TAG-K when K signals have been received, so that the test knows a signal
has arrived before it lets the run go on: no sleeps that race.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import ddpm_course._atomic as atomic
import ddpm_course.checkpoint as checkpoint
import ddpm_course.losses as losses
from ddpm_course import cli

CTL = Path(os.environ["CTL"])
PAUSE = set(filter(None, os.environ.get("PAUSE", "").split(",")))
counts: dict[str, int] = {}
current: list[str] = [""]


def received() -> int:
    """How many stop signals the handler now installed has noted."""
    owner = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if hasattr(owner, "pending"):
        return len(owner.pending)
    return int(getattr(owner, "requested", False))


def wait(tag: str) -> None:
    (CTL / f"at-{tag}").touch()
    seen, deadline = -1, time.monotonic() + 60
    while not (CTL / f"go-{tag}").exists():
        n = received()
        if n != seen:
            (CTL / f"held-{tag}-{n}").touch()
            seen = n
        if time.monotonic() > deadline:
            os._exit(99)
        time.sleep(0.005)


def count(kind: str) -> str:
    counts[kind] = counts.get(kind, 0) + 1
    return f"{kind}{counts[kind]}"


real_loss, real_replace, real_move = losses.l_simple, checkpoint._replace_pair, atomic._move


def l_simple(*args, **kwargs):
    tag = count("loss")
    if tag in PAUSE:
        wait(tag)
    return real_loss(*args, **kwargs)


def replace_pair(folder, dests, blobs, overwrite):
    current[0] = count(json.loads(blobs[1])["record"]["status"])
    return real_replace(folder, dests, blobs, overwrite)


def move(tmp, dest, overwrite):
    if current[0] in PAUSE and dest.suffix == ".safetensors":  # both temporaries are on disk now
        wait(current[0])
    return real_move(tmp, dest, overwrite)


# save_checkpoint calls checkpoint._replace_pair, which calls _atomic._move: each patched where it is looked up
losses.l_simple, checkpoint._replace_pair, atomic._move = l_simple, replace_pair, move

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
