"""Grade learners' notebooks: ``ddpm-course grade NOTEBOOK.ipynb [...] [--hidden] [--json FILE] [--timeout S]``.

Every lesson ends with "Your turn": cells that call ``dc.exercises.check("NN.name", answer)``.
Grading runs a learner's notebook headless and checks each of those answers again, on the
visible cases or, with ``--hidden``, on the exercise's hidden variant (other shapes, schedules and
edge steps, drawn with a grading-only seed; see :mod:`ddpm_course.exercises`).

| step | where                          | what happens                                                     |
|------|--------------------------------|------------------------------------------------------------------|
| 1    | grading process                | reads the notebook, keeps its code cells, drops the Colab install |
|      |                                | cell, and puts one recorder cell first                           |
| 2    | a fresh kernel per notebook    | runs the cells one by one, each within ``timeout`` seconds; a    |
|      | (its own process, this Python) | cell that runs over is interrupted, a kernel that then does not  |
|      |                                | answer is killed, with every process it started                  |
| 3    | the recorder, in the kernel    | wraps ``exercises.check``: each time a cell checks an answer, it |
|      |                                | calls the answer on the grading cases and writes what came back  |
|      |                                | (tensors, numbers, errors; never code) as JSON into a folder the |
|      |                                | grading process created                                          |
| 4    | grading process                | replays those results through the exercise's own checker (its    |
|      |                                | reference, mistakes and hints): the verdict is decided here      |

So the learner's functions never leave their kernel and the notebook is never imported into the
grading process; only data comes back, read with :mod:`json` and checked field by field. A
notebook that patches the checker inside its kernel cannot make a wrong answer read correct: the
verdict is computed from its answers' results by the grading process's own copy of the package
(and a record that does not follow the grader's cases reads ``error``).

Verdicts (``Verdict.status``): ``correct``, ``not attempted``, ``mistake`` (with its hint),
``wrong`` (with the first failing case), ``error`` (the kernel died, the record is unreadable)
and ``timed out``.

Trust model: this is **not a sandbox**. The learner's code runs with the grader's permissions:
it can read and write files, use the network, spend memory and start processes; the only limit
is the time per cell.
Grade untrusted submissions inside a container or a throw-away virtual machine. The hidden
variants stop answers fitted to the visible cases, not code that calls the package's own
implementation (a learner's function may do that; read the code for it).
"""
from __future__ import annotations

import argparse
import builtins
import functools
import itertools
import json
import logging
import math
import numbers
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import exercises
from .exercises import HIDDEN_SEED, FunctionExercise, Verdict

__all__ = ["grade_notebook", "NotebookGrade", "add_grade_parser", "STATUSES", "DEFAULT_TIMEOUT"]

STATUSES = ("correct", "not attempted", "mistake", "wrong", "error", "timed out")
DEFAULT_TIMEOUT = 600.0  # seconds per cell: the longest training cell of a lesson takes a few minutes
RECORDER_TIMEOUT = 120.0  # seconds the recorder cell (it imports the package) may take at least
PROBE_TIMEOUT = 10.0  # seconds an interrupted kernel has to answer before it is killed
MAX_ELEMENTS = 100_000  # a result with more numbers is not sent back (the cases' results are small)
MAX_RECORD_BYTES = 64 * 2**20
_CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d)\.\w+["']""")
_LESSON_FILE = re.compile(r"^(\d\d)_")
_TENSOR_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
    torch.uint8, torch.bool)}


# ============================================================================ results sent back as data
# The kernel encodes what the learner's answer returned or raised; the grading process decodes it.
# Only plain JSON crosses: numbers, tensors as (dtype, shape, values), tuples, short strings.


class _Unsent:
    """A result that was not sent back (too large, or not a tensor, number or tuple): it equals nothing."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return self.description


def _encode(value: Any, depth: int = 0) -> dict:
    if depth > 6:
        return {"unsent": "a value nested too deeply"}
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > 10_000:
            return {"unsent": f"a string of {len(value)} characters"}
        return {"py": value}
    if isinstance(value, numbers.Integral) and not isinstance(value, Tensor):
        value = int(value)
        return {"int": value} if abs(value) < 2**63 else {"unsent": "an integer too large to send back"}
    if isinstance(value, numbers.Real) and not isinstance(value, Tensor):
        return {"float": float(value)}
    if isinstance(value, Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _TENSOR_DTYPES:
            return {"unsent": f"a tensor of shape {tuple(value.shape)} and dtype {dtype}"}
        if value.numel() > MAX_ELEMENTS:
            return {"unsent": f"a tensor of shape {tuple(value.shape)} (too large to send back)"}
        flat = value.detach().to("cpu").reshape(-1).tolist()
        return {"tensor": dtype, "shape": list(value.shape), "values": flat}
    if type(value).__module__ == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape"):
        if getattr(value, "size", 0) == 1 and value.dtype.kind in "fiu":  # read as a number, as the checker does
            return {"float": float(value)}
        return {"unsent": f"a NumPy array of shape {tuple(value.shape)} (return a tensor)"}
    if isinstance(value, (tuple, list)):
        if len(value) > 1000:
            return {"unsent": f"a {type(value).__name__} of {len(value)} items"}
        return {type(value).__name__: [_encode(v, depth + 1) for v in value]}
    return {"unsent": f"an object of type {type(value).__qualname__}"}


def _decode(data: Any) -> Any:
    if not isinstance(data, dict) or len(data) not in (1, 3):
        raise _DamagedRecord(f"not an encoded value: {str(data)[:80]}")
    if "py" in data and (data["py"] is None or isinstance(data["py"], (bool, str))):
        return data["py"]
    if "int" in data and isinstance(data["int"], int) and not isinstance(data["int"], bool):
        return data["int"]
    if "float" in data and isinstance(data["float"], (int, float)) and not isinstance(data["float"], bool):
        return float(data["float"])
    if "unsent" in data and isinstance(data["unsent"], str):
        return _Unsent(data["unsent"][:200])
    for kind, maker in (("tuple", tuple), ("list", list)):
        if kind in data and isinstance(data[kind], list):
            return maker(_decode(v) for v in data[kind])
    if "tensor" in data:
        dtype, shape, values = data.get("tensor"), data.get("shape"), data.get("values")
        ok_shape = isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)
        if dtype not in _TENSOR_DTYPES or not ok_shape or not isinstance(values, list):
            raise _DamagedRecord("a tensor with a bad dtype, shape or values")
        if len(values) != math.prod(shape) or len(values) > MAX_ELEMENTS:
            raise _DamagedRecord("a tensor whose values do not fill its shape")
        if not all(isinstance(v, (int, float)) for v in values):
            raise _DamagedRecord("a tensor with values that are not numbers")
        return torch.tensor(values, dtype=_TENSOR_DTYPES[dtype]).reshape(shape)
    raise _DamagedRecord(f"not an encoded value: {str(data)[:80]}")


def _encode_error(err: BaseException) -> dict:
    kind = type(err)
    return {"type": kind.__name__, "module": kind.__module__, "message": str(err)[:10_000],
            "args": [_encode(a) for a in err.args[:4]]}


def _decode_error(data: Any) -> Exception:
    """The learner's error, rebuilt so that the checker can compare it with a mistake's (same type and
    message): only classes of modules the grading process has already imported are used."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("type", "module", "message")):
        raise _DamagedRecord("an error without type, module and message")
    name, module, message = data["type"], data["module"], data["message"]
    kind = getattr(sys.modules.get(module), name, None) if module != "builtins" else getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        for args in ([_decode(a) for a in data.get("args", []) if isinstance(a, dict)], [message]):
            try:
                err = kind(*args)
            except Exception:  # an exception class with another signature: try the next way
                continue
            if str(err) == message:
                return err
    # Another class (or one the grading process does not know): same name and message, never the same type.
    return type(name, (Exception,), {"__str__": lambda self: message, "__module__": module})()


def _fingerprint(args: tuple, kwargs: dict) -> list:
    """What the recorded call was given, to check that the replay follows the same cases."""
    def one(v: Any) -> list:
        if isinstance(v, Tensor):
            return ["tensor", str(v.dtype), list(v.shape)]
        if v is None or isinstance(v, (bool, int, float, str)):
            return ["value", repr(v)]
        return ["object", type(v).__qualname__]

    return [[one(a) for a in args], [[k, one(v)] for k, v in sorted(kwargs.items())]]


# ============================================================================ the kernel side


def _write_json(path: str, record: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def _record(folder: str, index: int, name: Any, answer: Any, hidden: bool, seed: int | None) -> None:
    """Call ``answer`` on the grading cases of exercise ``name`` and write what it returned or raised."""
    exercises.load_lessons()
    if not isinstance(name, str) or name not in exercises.EXERCISES:
        return  # the learner's cell already raised: not one of the exercises
    path = os.path.join(folder, f"{index:05d}.json")
    _write_json(path, {"name": name, "state": "started"})
    exercise = exercises.EXERCISES[name]
    if hidden and hasattr(exercise, "hidden"):
        exercise = exercise.hidden(seed)
    record: dict[str, Any] = {"name": name, "state": "done", "package": _package_file()}
    if isinstance(exercise, FunctionExercise) and callable(answer):
        calls: list[dict] = []

        def recorder(*args: Any, **kwargs: Any) -> Any:
            entry: dict[str, Any] = {"args": _fingerprint(args, kwargs)}
            calls.append(entry)
            try:
                out = answer(*args, **kwargs)
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # the learner's code may fail in any way: the grader judges it
                entry["raised"] = _encode_error(err)
                raise
            try:
                entry["returned"] = _encode(out)
            except Exception as err:  # an object that breaks even its description: it equals nothing
                entry["returned"] = {"unsent": f"an object of type {type(out).__qualname__} ({type(err).__name__})"}
            return out

        try:
            exercise.verdict(recorder)  # drives the calls as the checker makes them; its verdict is not used
        except KeyboardInterrupt:
            _write_json(path, {"name": name, "state": "interrupted"})
            raise
        except BaseException:  # noqa: S110 - an error of the answer is in the calls; the grader judges it
            pass
        record["calls"] = calls
    else:
        record["value"] = _encode(answer)
    _write_json(path, record)


def _record_checks(folder: str, hidden: bool, seed: int | None) -> None:
    """Run first in the learner's kernel: from now on ``exercises.check`` also records each answer."""
    original = exercises.check
    counter = itertools.count()

    @functools.wraps(original)
    def check(name: str, answer: Any, *args: Any, **kwargs: Any) -> Verdict:
        index = next(counter)
        try:
            verdict = original(name, answer, *args, **kwargs)  # what the learner sees
        except KeyboardInterrupt:
            if isinstance(name, str) and name in exercises.EXERCISES:
                _write_json(os.path.join(folder, f"{index:05d}.json"), {"name": name, "state": "interrupted"})
            raise
        except BaseException:
            _record(folder, index, name, answer, hidden, seed)
            raise
        _record(folder, index, name, answer, hidden, seed)
        return verdict

    exercises.check = check


def _package_file() -> str:
    from . import __file__ as package_init

    return str(Path(package_init).resolve())


# ============================================================================ the grading side


class _DamagedRecord(Exception):
    """The kernel's record cannot be read as the recorder writes it."""


class _ReplayMismatch(BaseException):
    """The checker asked for a call the record does not hold (a BaseException: no checker may catch it)."""


class _Replay:
    """Stands for the learner's function: returns (or raises) what it returned on the same call."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.used = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.used >= len(self.calls):
            raise _ReplayMismatch("the checker made more calls than the notebook's kernel recorded")
        entry = self.calls[self.used]
        self.used += 1
        if not isinstance(entry, dict) or entry.get("args") != _fingerprint(args, kwargs):
            raise _ReplayMismatch("the recorded calls were made with other arguments than the grader's cases")
        if "raised" in entry:
            raise _decode_error(entry["raised"])
        if "returned" in entry:
            return _decode(entry["returned"])
        raise _ReplayMismatch("a recorded call neither returned nor raised")


def _judge(name: str, record: dict, hidden: bool, seed: int | None) -> Verdict:
    """The verdict on one recorded answer, computed by this process's copy of the checker."""
    exercise = exercises.EXERCISES[name]
    if hidden and hasattr(exercise, "hidden"):
        exercise = exercise.hidden(seed)
    if record.get("package") != _package_file():
        return Verdict(name, "error", f"the notebook's kernel imported ddpm_course from {record.get('package')}, "
                       f"the grader from {_package_file()}: run both with the same installation")
    try:
        if "calls" in record:
            if not isinstance(record["calls"], list):
                raise _DamagedRecord("calls is not a list")
            replay = _Replay(record["calls"])
            verdict = exercise.verdict(replay)
            if replay.used != len(replay.calls):
                raise _ReplayMismatch("the kernel recorded more calls than the checker made")
        else:
            value = _decode(record.get("value"))
            try:
                verdict = exercise.verdict(value)
            except (TypeError, ValueError) as err:  # e.g. a function's result passed instead of the function
                return Verdict(name, "wrong", f"not yet: {err}")
    except (_ReplayMismatch, _DamagedRecord) as err:
        return Verdict(name, "error", f"the notebook's record of this exercise cannot be checked: {err}")
    return Verdict(name, verdict.status, verdict.message)


@dataclass
class NotebookGrade:
    """One notebook's grade: a verdict per exercise of its lesson, and how its run ended.

    ``run`` is "ok", "timed out" (some cell ran over the limit), "kernel died" or "error"."""

    path: str
    lessons: list[str]
    verdicts: list[Verdict]
    run: str = "ok"
    run_message: str = ""
    seconds: float = 0.0
    hidden: bool = False
    seed: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    problems: list[str] = field(default_factory=list)

    @property
    def correct(self) -> int:
        return sum(v.status == "correct" for v in self.verdicts)

    @property
    def total(self) -> int:
        return len(self.verdicts)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.correct == self.total

    def as_dict(self) -> dict:
        return {
            "path": self.path, "lessons": self.lessons, "hidden": self.hidden, "seed": self.seed,
            "timeout_s": self.timeout, "seconds": round(self.seconds, 2),
            "run": {"status": self.run, "message": self.run_message},
            "exercises": [{"name": v.name, "status": v.status, "message": v.message} for v in self.verdicts],
            "correct": self.correct, "total": self.total,
        }

    def table(self) -> str:
        cases = f"hidden cases (seed {self.seed})" if self.hidden else "visible cases"
        lessons = ", ".join(self.lessons) or "?"
        lines = [f"{self.path}: lesson {lessons}, {cases}, ran in {self.seconds:.1f} s"]
        if self.run != "ok":
            lines.append(f"  the run: {self.run}: {self.run_message}")
        width = max([len("exercise")] + [len(v.name) for v in self.verdicts])
        lines.append(f"  {'exercise':<{width}}  {'verdict':<13}  detail")
        for v in self.verdicts:
            detail = "" if v.message in (exercises.CORRECT, exercises.NOT_ATTEMPTED) else v.message
            lines.append(f"  {v.name:<{width}}  {v.status:<13}  {detail.removeprefix('not yet: ')}".rstrip())
        lines.append(f"  total: {self.correct} of {self.total} correct")
        return "\n".join(lines)


def _lessons_of(nb: Any, path: Path) -> list[str]:
    """The lessons a notebook belongs to: those its check calls name, and its file name's NN_ prefix."""
    found = {m.group(1) for cell in nb.cells if cell.cell_type == "code" for m in _CHECK_CALL.finditer(cell.source)}
    named = _LESSON_FILE.match(path.name)
    if named:
        found.add(named.group(1))
    return sorted(found)


def _exercises_of(lessons: list[str]) -> list[str]:
    """The exercises of these lessons, in lesson order and, within a lesson, in the notebook's order."""
    exercises.load_lessons()
    return sorted((n for n in exercises.EXERCISES if n[:2] in lessons), key=lambda n: n[:2])


def _is_install_cell(source: str) -> bool:
    """The Colab install cell every lesson opens with (after comment lines): it only acts on Colab."""
    code = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(code) and code[0].startswith("import subprocess, sys") and "google.colab" in source


def _snippet(source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return first if len(first) <= 60 else first[:57] + "..."


def _kernel_manager() -> Any:
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        """Every kernel is this interpreter, whatever kernels are installed."""

        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="this Python", language="python")

    # asynchronous: nbclient then watches the kernel's heartbeat while it waits, so a dead kernel is noticed
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def _client_class() -> type:
    from nbclient import NotebookClient

    class QuietClient(NotebookClient):
        """Keeps no outputs: a notebook that prints megabytes costs time, not memory."""

        def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
            return None

    return QuietClient


def _run(cells: list[tuple[int, str]], folder: str, hidden: bool, seed: int | None, timeout: float,
         cwd: Path) -> tuple[str, str, str]:
    """Execute the recorder cell and then ``cells`` ((number, source) each) in a fresh kernel; returns
    how the run went, ("ok" | "timed out" | "kernel died" | "error", message, why it stopped early or "")."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    recorder = (f"import ddpm_course.grade as _ddpm_course_grade\n"
                f"_ddpm_course_grade._record_checks({folder!r}, hidden={hidden!r}, seed={seed!r})\n"
                f"del _ddpm_course_grade")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(recorder)] + [nbformat.v4.new_code_cell(s) for _, s in cells]
    nb.cells[0].metadata["timeout"] = max(timeout, RECORDER_TIMEOUT)  # it imports torch: not the learner's time
    km = _kernel_manager()
    quiet = logging.getLogger("ddpm_course.grade.kernel")  # timeouts are reported in the verdicts instead
    quiet.setLevel(logging.CRITICAL)
    client = _client_class()(nb, km=km, allow_errors=True, timeout_func=lambda cell: cell.metadata.get(
        "timeout", timeout), shutdown_kernel="immediate", resources={"metadata": {"path": str(cwd)}}, log=quiet)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(_package_file()).parents[1])] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))  # the kernel imports this very package
    status = ("ok", "")
    stop = ""
    pgid = None
    where = "the start of the kernel"
    try:
        with client.setup_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL):
            pgid = getattr(km.provisioner, "pgid", None)
            for index, cell in enumerate(nb.cells):
                where = "the recorder cell" if index == 0 else \
                    f"code cell {cells[index - 1][0]} ({_snippet(cell.source)})"
                try:
                    client.execute_cell(cell, index, store_history=index > 0)
                except CellTimeoutError:
                    status = ("timed out", "; ".join(filter(None, [status[1], f"{where} ran past the {timeout:g} s "
                                                                   "limit"])))
                    run_sync(km.interrupt_kernel)()
                    probe = nbformat.v4.new_code_cell("pass")
                    probe.metadata["timeout"] = PROBE_TIMEOUT
                    try:
                        client.execute_cell(probe, index, store_history=False)
                    except CellTimeoutError:
                        stop = f"{where} did not stop when interrupted; the kernel was killed"
                        status = ("timed out", f"{status[1]}; {stop}")
                        break
    except DeadKernelError:
        stop = f"the kernel died in {where}"
        status = ("kernel died", "; ".join(filter(None, [status[1], stop])))
    except Exception as err:  # the kernel could not start, or the client failed: a verdict, not a crash
        stop = f"{type(err).__name__}: {err} (in {where})"
        status = ("error", stop)
    finally:
        if pgid is not None:
            try:  # whatever the notebook started in the kernel's process group goes too
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
    return status[0], status[1], stop


def _read_records(folder: str) -> tuple[dict[str, dict], list[str]]:
    """The last record of each exercise in the folder, and the problems met reading them."""
    records: dict[str, dict] = {}
    problems = []
    try:
        names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"\d{5}\.json", n))
    except OSError as err:
        return records, [f"the grader's folder {folder} could not be read: {err.strerror}"]
    for file_name in names:
        path = os.path.join(folder, file_name)
        try:
            if os.path.getsize(path) > MAX_RECORD_BYTES:
                problems.append(f"{file_name} is larger than {MAX_RECORD_BYTES // 2**20} MiB")
                continue
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError) as err:
            problems.append(f"{file_name} could not be read: {err}")
            continue
        if isinstance(record, dict) and isinstance(record.get("name"), str) and record.get("state") in (
                "started", "interrupted", "done"):
            records[record["name"]] = record
        else:
            problems.append(f"{file_name} is not a record")
    return records, problems


def _verdict(name: str, record: dict | None, run: tuple[str, str, str], problems: list[str], hidden: bool,
             seed: int | None) -> Verdict:
    status, message, stop = run
    if record is None:
        if stop:
            return Verdict(name, "timed out" if status == "timed out" else "error", f"never checked: {stop}")
        if problems:
            return Verdict(name, "error", f"no readable record: {'; '.join(problems)[:300]}")
        return Verdict(name, "not attempted", f"{exercises.NOT_ATTEMPTED} (the notebook never passes an answer "
                       f'to dc.exercises.check("{name}", ...))')
    if record["state"] == "interrupted" or (record["state"] == "started" and status == "timed out"):
        return Verdict(name, "timed out", "the answer did not finish on the grading cases within the time limit")
    if record["state"] == "started":
        return Verdict(name, "error", f"the check of this answer did not finish: {message or 'no record'}")
    try:
        return _judge(name, record, hidden, seed)
    except Exception as err:  # a record that breaks the checker is graded as an error, not a crash
        return Verdict(name, "error", f"the grader could not check this answer: {type(err).__name__}: {err}")


def grade_notebook(path: str | os.PathLike, hidden: bool = False, seed: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> NotebookGrade:
    """Grade one notebook: run it in a fresh kernel (``timeout`` seconds per cell) and check every
    exercise of its lesson, on the hidden cases drawn with ``seed`` (default HIDDEN_SEED) if ``hidden``."""
    import nbformat

    path = Path(path)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    seed = (HIDDEN_SEED if seed is None else int(seed)) if hidden else None
    start = time.perf_counter()
    grade = NotebookGrade(str(path), [], [], hidden=hidden, seed=seed, timeout=timeout)
    try:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code"]
        sources = [(i + 1, c.source) for i, c in enumerate(cells)]
    except Exception as err:  # not a notebook (bad JSON, wrong format): a verdict for every exercise it could be
        named = _LESSON_FILE.match(path.name)
        grade.lessons = [named.group(1)] if named else []
        grade.run, grade.run_message = "error", f"not a readable notebook: {type(err).__name__}: {err}"[:300]
        grade.verdicts = [Verdict(n, "error", grade.run_message) for n in _exercises_of(grade.lessons)]
        grade.seconds = time.perf_counter() - start
        return grade
    if sources and _is_install_cell(sources[0][1]):
        sources = sources[1:]
    grade.lessons = _lessons_of(nb, path)
    names = _exercises_of(grade.lessons)
    folder = tempfile.mkdtemp(prefix="ddpm-course-grade-")
    try:
        run = _run(sources, folder, hidden, seed, timeout, path.resolve().parent)
        records, problems = _read_records(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    grade.run, grade.run_message = run[:2]
    grade.problems = problems
    grade.verdicts = [_verdict(n, records.get(n), run, problems, hidden, seed) for n in names]
    if not names:
        grade.verdicts = [Verdict("lesson", "error", "cannot tell the notebook's lesson: no "
                                  'dc.exercises.check("NN.name", ...) call and no NN_ prefix in its name')]
    grade.seconds = time.perf_counter() - start
    return grade


# ============================================================================ ddpm-course grade


def add_grade_parser(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()):
    """Register ``ddpm-course grade``."""
    from ._commands import _finite, _seed

    parser = subparsers.add_parser(
        "grade",
        parents=list(parents),
        help="grade learners' notebooks: every exercise checked again in a fresh kernel",
        description="Run each notebook headless in its own fresh kernel (the Colab install cell skipped, "
        "--timeout seconds per cell) and check every exercise of its lesson again, from the answers its "
        "'Your turn' cells pass to dc.exercises.check. Prints a table per notebook; exit status 0 only when "
        "every exercise of every notebook is correct, 1 otherwise. Not a sandbox: grade untrusted "
        "notebooks inside a container. Example: ddpm-course grade submissions/*.ipynb --hidden --json grades.json",
    )
    add = parser.add_argument
    add("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="the .ipynb files to grade")
    add("--hidden", action="store_true", help="check on the hidden variants (other shapes, schedules, edge steps)")
    add("--seed", type=_seed, default=None,
        help=f"seed of the hidden cases, with --hidden (default {HIDDEN_SEED}; choose your own in CI)")
    add("--json", dest="json_path", type=Path, default=None, metavar="FILE",
        help="also write the grades as JSON (a gradebook)")
    add("--overwrite", action="store_true", help="replace an existing --json file")
    add("--timeout", type=_finite(0.0, low_open=True), default=DEFAULT_TIMEOUT,
        help=f"seconds each cell may run (default {DEFAULT_TIMEOUT:g})")
    parser.set_defaults(func=_run_grade)
    return parser


def _run_grade(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ._commands import CLIError, _write_atomically, check_output

    if args.seed is not None and not args.hidden:
        raise CLIError("--seed chooses the hidden cases; pass --hidden too")
    try:
        import ipykernel  # noqa: F401 - the kernel the notebooks run in
        import nbclient  # noqa: F401
    except ImportError as err:
        raise CLIError(f"ddpm-course grade needs {err.name}: pip install \"ddpm-course[grade]\"") from None
    for path in args.notebooks:
        if not path.is_file():
            raise CLIError(f"{path} is not a file" if path.exists() else f"{path} does not exist")
    if args.json_path is not None:
        check_output(args.json_path, args.overwrite, what="--json")
    grades = []
    for path in args.notebooks:
        grade = grade_notebook(path, hidden=args.hidden, seed=args.seed, timeout=args.timeout)
        grades.append(grade)
        print(grade.table(), flush=True)
    correct, total = sum(g.correct for g in grades), sum(g.total for g in grades)
    if len(grades) > 1:
        print(f"all notebooks: {correct} of {total} correct")
    if args.json_path is not None:
        report = {"hidden": args.hidden, "seed": grades[0].seed, "timeout_s": args.timeout,
                  "notebooks": [g.as_dict() for g in grades], "correct": correct, "total": total}
        _write_atomically(args.json_path, args.overwrite,
                          lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    return 0 if all(g.ok for g in grades) else 1

