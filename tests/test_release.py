"""The release machinery, checked here because GitHub's runners cannot be: the two workflows
parse and hold the jobs and steps they promise, the version lives in one place, the changelog and
the release notes exist, and the repository URL is the one ``ddpm_course._colab`` defines.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import ddpm_course
from ddpm_course import _colab

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(wf, dict) and isinstance(wf.get("jobs"), dict), f"{name} is not a workflow"
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as true
    return wf


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(job))


def _uses(job: dict) -> list[str]:
    return [step["uses"] for step in _steps(job) if "uses" in step]


def _readme_test_command() -> str:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    (line,) = [line for line in block.splitlines() if "# the tests" in line]
    return line.split("#")[0].strip()


def test_the_test_workflow_runs_the_readme_command_on_linux_cpu_python_310_to_312():
    wf = _workflow("test.yml")
    assert "push" in wf["on"] and "pull_request" in wf["on"]
    (job,) = wf["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12"]
    setup = [s for s in _steps(job) if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup and setup[0]["with"]["python-version"] == "${{ matrix.python-version }}"
    assert "download.pytorch.org/whl/cpu" in _runs(job)  # the CPU build of torch, not CUDA's
    assert "bash .ci/run" in _runs(job)
    command = _readme_test_command()
    assert command == "python -m pytest"
    assert re.search(rf"^{re.escape(command)}( |$)", (ROOT / ".ci" / "run").read_text(), re.M), \
        f".ci/run does not run the README's test command {command!r}"
    requires = re.search(r'^requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert requires == "3.10"


def test_the_release_workflow_builds_checks_tests_and_publishes_on_a_version_tag():
    wf = _workflow("release.yml")
    assert wf["on"] == {"push": {"tags": ["v*"]}}
    jobs = wf["jobs"]
    build, tested, publish = jobs["build"], jobs["test-installed"], jobs["publish"]
    assert "python -m build" in _runs(build)
    assert "twine check --strict dist/*" in _runs(build)
    assert 'test "${GITHUB_REF_NAME}" = "v${version}"' in _runs(build)  # the tag is the package's version
    assert any(u.startswith("actions/upload-artifact@") for u in _uses(build))

    assert tested["needs"] == "build"
    assert any(u.startswith("actions/download-artifact@") for u in _uses(tested))
    step = next(s for s in _steps(tested) if "pytest" in s.get("run", ""))
    assert step["env"]["DDPM_COURSE_DIST"] == "dist"  # the very files that will be published
    assert "tests/test_wheel.py" in step["run"] and "tests/test_colab.py" in step["run"]
    # the lessons under nbval (addopts kept: --nbval), in the kernel of those very files
    assert step["run"].split()[-1] == "notebooks" and "addopts" not in step["run"]
    assert (ROOT / "tests" / "test_wheel.py").exists() and (ROOT / "tests" / "test_colab.py").exists()

    assert set(publish["needs"]) == {"build", "test-installed"}
    assert publish["permissions"] == {"id-token": "write"}  # trusted publishing
    (pypi,) = [s for s in _steps(publish) if s.get("uses", "").startswith("pypa/gh-action-pypi-publish@")]
    assert not {"password", "user"} & set(pypi.get("with", {})), "trusted publishing needs no token"
    assert "gh release create" in _runs(jobs["github-release"])  # where the install cell sends a wheel's uploader


def test_the_version_lives_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert re.search(r'^version = \{ attr = "ddpm_course.__version__" \}', pyproject, re.M)
    assert not re.search(r'^version = "', pyproject, re.M)
    assert re.fullmatch(r"\d+\.\d+\.\d+", ddpm_course.__version__)
    assert _colab.VERSION_RANGE == ">={0}.{1},<{0}.{2}".format(*ddpm_course.__version__.split(".")[:2],
                                                               int(ddpm_course.__version__.split(".")[1]) + 1)


def test_the_changelog_names_this_version_and_releasing_md_says_how():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (\d+\.\d+\.\d+) ", changelog, re.M)
    assert versions and versions[0] == ddpm_course.__version__, f"CHANGELOG.md's newest entry is {versions[:1]}"
    releasing = (ROOT / "RELEASING.md").read_text()
    assert len(releasing.splitlines()) <= 30
    for needed in ("__version__", "CHANGELOG.md", "git tag", "release.yml", "trusted publish"):
        assert needed in releasing, f"RELEASING.md does not mention {needed!r}"


def test_the_repository_url_is_defined_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'^Homepage = "{re.escape(_colab.REPOSITORY)}"$', pyproject, re.M)


def test_notebooks_and_readme_are_generated_from_the_constant(tmp_path):
    """Running the writer (``python -m ddpm_course._colab --write-notebooks``) on a copy changes nothing."""
    (tmp_path / "notebooks").mkdir()
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.*"))
    for path in [*lessons, ROOT / "README.md"]:
        (tmp_path / path.relative_to(ROOT)).write_bytes(path.read_bytes())
    changed = _colab.write_all(tmp_path)
    assert not changed, (f"{[str(p.relative_to(tmp_path)) for p in changed]} disagree with ddpm_course/_colab.py: "
                         "run `python -m ddpm_course._colab --write-notebooks`")
    assert _colab.main(["--write-notebooks", "--root", str(tmp_path)]) == 0
    # The control: an old install cell and a badge of another repository are rewritten, and twice is once.
    lesson = tmp_path / "notebooks" / lessons[0].name
    lesson.write_text(lesson.read_text().replace(_colab.REQUIREMENT, "ddpm-course[colab]>=0.1")
                      .replace(_colab.REPOSITORY.removeprefix("https://github.com/"), "someone/else"))
    assert _colab.write_all(tmp_path) == [lesson]
    assert lesson.read_bytes() == lessons[0].read_bytes()
    assert _colab.write_all(tmp_path) == []


def test_every_lesson_opens_with_its_badge_and_the_install_cell():
    readme = (ROOT / "README.md").read_text()
    ipynbs = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(ipynbs) >= 12
    for ipynb in ipynbs:
        nb = json.loads(ipynb.read_text())
        first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        assert "".join(first_md["source"]).splitlines()[0] == _colab.badge(ipynb.name), ipynb.name
        assert "".join(first_code["source"]) == _colab.install_cell(), ipynb.name
        assert first_code["outputs"] == [], f"{ipynb.name}: off Colab the install cell prints nothing"
        assert f"| {_colab.badge(ipynb.name)} |" in readme, f"README's lesson table lacks {ipynb.name}'s badge"
        py = ipynb.with_suffix(".py").read_text()
        assert "# " + _colab.badge(ipynb.name) in py
        assert "# %%\n" + _colab.install_cell() + "\n\n# %%" in py, ipynb.with_suffix(".py").name


def test_the_readme_colab_section_says_what_the_install_cell_does():
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Colab\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README.md has no '## Colab' section"
    text = section.group(1)
    for needed in (_colab.REQUIREMENT, _colab.FROM_ARCHIVE, _colab.FROM_WHEEL, "tests/test_colab.py", "ipywidgets 7"):
        assert needed in text, f"README's Colab section does not say {needed!r}"
