"""``ddpm-course grade``: learners' notebooks graded in fresh kernels, on visible and hidden cases.

The notebooks here are small: the real lessons' "Your turn" check cells (read from
notebooks/NN_topic.ipynb), each preceded by the answer it checks (the reference solution from
solutions/NN_topic.py, a listed mistake, a hard-coded table), after the lesson's Colab install
cell and an import. Executing a whole lesson takes minutes; the grading around it is what is
tested. Every notebook runs in its own kernel, so each test costs a kernel start (a few seconds).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest
import torch
from _solutions import ROOT, lesson_file

from ddpm_course import cli, exercises, grade
from ddpm_course.exercises import NumberExercise

CHECK = re.compile(r'check\("(\d\d\.\w+)", (\w+)\)')
LESSONS = sorted({name[:2] for name in exercises.names()})


def solution(name: str) -> str:
    return f'ANSWERS["{name}"]'


def your_turn(lesson: str, answer=solution) -> list[str]:
    """The lesson's solutions, then its real check cells, each check preceded by ``VAR = answer(name)``."""
    real = nbformat.read(lesson_file(lesson, "notebooks").with_suffix(".ipynb"), as_version=4)
    start = next(i for i, c in enumerate(real.cells) if c.cell_type == "markdown" and "## Your turn" in c.source)
    cells = [lesson_file(lesson, "solutions").read_text()]
    for cell in real.cells[start:]:
        if cell.cell_type == "code" and CHECK.search(cell.source):
            lines = []
            for line in cell.source.splitlines():
                match = CHECK.search(line)
                if match:
                    lines.append(f"{match.group(2)} = {answer(match.group(1))}")
                lines.append(line)
            cells.append("\n".join(lines))
    return cells


def notebook(path: Path, *parts: list[str] | str) -> Path:
    """Write a notebook of the Colab install cell, an import, then the given cells."""
    install = next(c for c in nbformat.read(ROOT / "notebooks" / "01_fog.ipynb", as_version=4).cells
                   if c.cell_type == "code")
    sources = [install.source, "import math\nimport torch\nimport ddpm_course as dc"]
    for part in parts:
        sources.extend([part] if isinstance(part, str) else part)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def statuses(result: grade.NotebookGrade) -> dict[str, str]:
    return {v.name: v.status for v in result.verdicts}


# ---------------------------------------------------------------------------------------------- no kernel


def test_the_install_cell_of_every_lesson_is_recognised_and_nothing_else():
    for lesson in LESSONS:
        nb = nbformat.read(lesson_file(lesson, "notebooks").with_suffix(".ipynb"), as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert grade._is_install_cell(code[0]), lesson
        assert not any(grade._is_install_cell(s) for s in code[1:]), lesson


def test_results_cross_as_data_and_come_back_equal():
    values = [torch.randn(3, 2, dtype=torch.float64), torch.rand(2, 5).float(), torch.tensor([1, 2]),
              torch.zeros(0, 3), (torch.ones(2), 3.5), 7, float("nan"), None, "text", True]
    for value in values:
        back = grade._decode(json.loads(json.dumps(grade._encode(value))))
        if isinstance(value, torch.Tensor):
            assert back.dtype == value.dtype and back.shape == value.shape and torch.equal(back, value)
        elif isinstance(value, float) and value != value:
            assert back != back
        elif isinstance(value, tuple):
            assert torch.equal(back[0], value[0]) and back[1] == value[1]
        else:
            assert back == value and type(back) is type(value)
    huge = grade._decode(grade._encode(torch.zeros(grade.MAX_ELEMENTS + 1)))
    assert isinstance(huge, grade._Unsent) and not exercises._checker._close(huge, torch.zeros(3), 1e-5, 1e-6)
    assert isinstance(grade._decode(grade._encode(object())), grade._Unsent)


@pytest.mark.parametrize("data", [{"tensor": "float64", "shape": [2], "values": [1.0]},
                                  {"tensor": "object", "shape": [1], "values": [1]},
                                  {"tensor": "float64", "shape": [1], "values": ["1"]},
                                  {"code": "import os"}, [1, 2], {"int": True}])
def test_a_damaged_record_is_refused(data):
    with pytest.raises(grade._DamagedRecord):
        grade._decode(data)


def test_errors_come_back_with_their_type_and_message():
    for err in (RuntimeError("The size of tensor a (4) must match"), KeyError((3, 64, 3)), IndexError("index 5"),
                ZeroDivisionError("boom")):
        back = grade._decode_error(json.loads(json.dumps(grade._encode_error(err))))
        assert type(back) is type(err) and str(back) == str(err)
    odd = grade._decode_error({"type": "Mine", "module": "learner_module", "message": "odd", "args": []})
    assert type(odd).__name__ == "Mine" and str(odd) == "odd" and isinstance(odd, Exception)


def test_a_record_that_does_not_follow_the_cases_is_an_error_not_a_verdict():
    record = {"name": "02.q_sample", "state": "done", "package": grade._package_file(),
              "calls": [{"args": [[], []], "returned": {"float": 0.0}}]}
    verdict = grade._judge("02.q_sample", record, hidden=False, seed=None)
    assert verdict.status == "error" and "other arguments" in verdict.message


# ---------------------------------------------------------------------------------------------- kernels


@pytest.mark.kernel
def test_every_lesson_solved_grades_all_correct_on_visible_and_hidden_cases(tmp_path):
    # One notebook with every lesson's "Your turn", each exercise answered by its reference solution.
    path = notebook(tmp_path / "all_solved.ipynb", *[your_turn(lesson) for lesson in LESSONS])
    for hidden in (False, True):
        result = grade.grade_notebook(path, hidden=hidden, timeout=120)
        assert result.run == "ok", result.table()
        assert result.lessons == LESSONS
        assert sorted(v.name for v in result.verdicts) == exercises.names()
        assert result.ok and result.correct == len(exercises.names()), result.table()


@pytest.mark.kernel
@pytest.mark.parametrize("index", range(max(len(e.mistakes) for e in exercises.EXERCISES.values())))
def test_each_listed_mistake_grades_its_hint_on_the_hidden_cases(tmp_path, index):
    # Notebook number k answers every exercise with its k-th listed mistake (the solution where it lists fewer).
    def mistake(name):
        exercise = exercises.EXERCISES[name]
        if index >= len(exercise.mistakes):
            return solution(name)
        call = "()" if isinstance(exercise, NumberExercise) else ""
        return f'dc.exercises.EXERCISES["{name}"].mistakes[{index}].impl{call}'

    path = notebook(tmp_path / f"mistakes_{index}.ipynb", "_ = dc.exercises.names()  # loads every lesson's checkers",
                    *[your_turn(lesson, mistake) for lesson in LESSONS])
    result = grade.grade_notebook(path, hidden=True, timeout=120)
    assert result.run == "ok", result.table()
    for verdict in result.verdicts:
        exercise = exercises.EXERCISES[verdict.name]
        if index < len(exercise.mistakes):
            assert verdict.status == "mistake", verdict
            assert verdict.message.startswith(f"not yet: {exercise.mistakes[index].hint}"), verdict
        else:
            assert verdict.status == "correct", verdict


@pytest.mark.kernel
def test_an_answer_hard_coded_to_the_visible_cases_passes_without_hidden_and_fails_with_it(tmp_path, capsys):
    exercise = exercises.EXERCISES["04.conv_params"]
    cases = exercise.cases(torch.Generator().manual_seed(exercise.seed))
    table = {case.args: exercise.reference(*case.args) for case in cases}  # e.g. {(3, 64, 3): 1792, ...}
    hard_coded = f"lambda c_in, c_out, k: {table!r}[(c_in, c_out, k)]"
    path = notebook(tmp_path / "04_unet.ipynb", your_turn(
        "04", lambda name: hard_coded if name == "04.conv_params" else solution(name)))

    assert cli.main(["grade", str(path)]) == 0
    assert "total: 3 of 3 correct" in capsys.readouterr().out
    assert cli.main(["grade", str(path), "--hidden", "--seed", "5"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"04\.conv_params +wrong +your function raised KeyError", out), out
    assert "hidden cases (seed 5)" in out and "total: 2 of 3 correct" in out


@pytest.mark.kernel
def test_a_hanging_notebook_gets_its_verdicts_in_time(tmp_path, monkeypatch):
    monkeypatch.setattr(grade, "PROBE_TIMEOUT", 3.0)
    # A cell that sleeps (interrupted, the run goes on), an answer that hangs on the hidden cases only,
    # then a cell that ignores the interrupt (the kernel is killed): what comes after it times out.
    hangs_on_hidden = ("lambda x0, t, noise, schedule: (exec('while True: pass') if x0.shape[0] == 7 "
                       "else ANSWERS['02.q_sample'](x0, t, noise, schedule))")
    cells = your_turn("02", lambda name: hangs_on_hidden if name == "02.q_sample" else solution(name))
    stubborn = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    path = notebook(tmp_path / "02_forward_chain.ipynb", "import time; time.sleep(600)", cells[:4], stubborn,
                    cells[4:])
    start = time.perf_counter()
    result = grade.grade_notebook(path, hidden=True, timeout=4)
    seconds = time.perf_counter() - start
    assert seconds < 60, seconds
    assert result.run == "timed out" and "(import time; time.sleep(600)) ran past the 4 s limit" in result.run_message
    assert result.run_message.endswith("the kernel was killed")
    assert statuses(result) == {"02.walk": "correct", "02.q_sample": "timed out", "02.posterior_mean": "correct",
                                "02.beta_tilde": "timed out"}, result.table()
    assert "never checked" in result.verdicts[3].message and "(import signal)" in result.verdicts[3].message
    # without --hidden the same answer is correct: the hang is the hidden cases' doing
    assert statuses(grade.grade_notebook(path, hidden=False, timeout=4))["02.q_sample"] == "correct"


@pytest.mark.kernel
def test_a_crashing_notebook_gets_its_verdicts(tmp_path):
    cells = your_turn("01")
    path = notebook(tmp_path / "01_fog.ipynb", cells[:2], "import os; os._exit(3)", cells[2:])
    start = time.perf_counter()
    result = grade.grade_notebook(path, hidden=True, timeout=60)
    assert time.perf_counter() - start < 60
    assert result.run == "kernel died" and "os._exit(3)" in result.run_message, result.table()
    assert statuses(result) == {"01.add_noise": "correct", "01.recover_x0": "error", "01.amplification": "error"}
    assert not result.ok


@pytest.mark.kernel
def test_a_notebook_that_prints_megabytes_deletes_itself_and_patches_the_checker_is_graded(tmp_path):
    cells = your_turn("09", lambda name: "None" if name == "09.kl_term" else solution(name))
    printing = "print('x' * 30_000_000)\nfor _ in range(100):\n    print('y' * 100_000)"
    deleting = "import os\nos.remove('09_latent.ipynb')"
    # A checker patched inside the kernel to say "correct" to everything changes nothing here.
    patching = ("dc.exercises.FunctionExercise.verdict = lambda self, answer: "
                "dc.exercises.Verdict(self.name, 'correct', 'correct')")
    path = notebook(tmp_path / "09_latent.ipynb", printing, deleting, cells[0], cells[1], patching,
                    cells[2], cells[4])  # the check cell of 09.latent_pipeline is deleted
    result = grade.grade_notebook(path, hidden=True, timeout=60)
    assert not path.exists()
    assert result.run == "ok", result.table()
    got = statuses(result)
    assert got["09.kl_term"] == "wrong" and "pass your function itself" in result.verdicts[0].message
    assert got["09.scale_factor"] == "error", result.table()  # the patched checker never called the answer
    messages = {v.name: v.message for v in result.verdicts}
    assert got["09.latent_pipeline"] == "not attempted" and "never passes an answer" in messages["09.latent_pipeline"]
    assert got["09.pass_ratio"] == "correct"


@pytest.mark.kernel
def test_json_gradebook_and_exit_codes(tmp_path, capsys):
    solved = notebook(tmp_path / "03_schedules.ipynb", your_turn("03"))
    stubs = your_turn("12", lambda name: "None" if isinstance(exercises.EXERCISES[name], NumberExercise) else "stub")
    stub = notebook(tmp_path / "learner.ipynb", 'def stub(*args):\n    raise NotImplementedError("your code here")',
                    stubs)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    gradebook = tmp_path / "grades.json"
    assert cli.main(["grade", str(solved), "--hidden", "--json", str(gradebook)]) == 0
    report = json.loads(gradebook.read_text())
    assert report["hidden"] is True and report["seed"] == exercises.HIDDEN_SEED
    assert report["correct"] == report["total"] == 4
    (entry,) = report["notebooks"]
    assert entry["path"] == str(solved) and entry["lessons"] == ["03"] and entry["run"]["status"] == "ok"
    assert [e["status"] for e in entry["exercises"]] == ["correct"] * 4

    args = ["grade", str(solved), str(stub), str(broken), "--json", str(gradebook)]
    assert cli.main(args) == 1
    assert "already exists" in capsys.readouterr().err  # an existing gradebook is kept without --overwrite
    assert cli.main([*args, "--overwrite"]) == 1
    out = capsys.readouterr().out
    assert "all notebooks: 4 of" in out and "the run: error: not a readable notebook" in out
    report = json.loads(gradebook.read_text())
    solved_entry, stub_entry, broken_entry = report["notebooks"]
    assert stub_entry["lessons"] == ["12"]  # found from its check calls: the file name says nothing
    assert {e["status"] for e in stub_entry["exercises"]} == {"not attempted"}
    assert broken_entry["run"]["status"] == "error" and broken_entry["exercises"] == []
    assert report["correct"] == 4 and report["total"] == 4 + len(stub_entry["exercises"])


@pytest.mark.parametrize(("args", "message"), [
    (["missing.ipynb"], "missing.ipynb does not exist"),
    (["{nb}", "--seed", "3"], "--seed chooses the hidden cases; pass --hidden too"),
    (["{nb}", "--timeout", "0"], "--timeout: must be a finite number"),
])
def test_bad_command_lines_fail_in_one_line_before_any_kernel_starts(tmp_path, capsys, args, message):
    nb = notebook(tmp_path / "x.ipynb")
    code = cli.main(["grade", *[a.replace("{nb}", str(nb)) for a in args]])
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and len(err.strip().splitlines()) == 1, err
