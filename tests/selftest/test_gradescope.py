"""The Gradescope package: built from the repository, run against a fake ``/autograder`` tree.

Gradescope itself is not here; what its docs fix is: the zip's root holds ``setup.sh`` and
``run_autograder``, the package lands in ``/autograder/source``, the upload in
``/autograder/submission``, and ``/autograder/results/results.json`` is read back.
"""

import json
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from grader import ROOT, rubric
from grader.release import gradescope

KEY = "a staff key for the gradescope self-test"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The zip, built once with a known key."""
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    fingerprint = gradescope.build(out, key=KEY)
    return out, fingerprint


def _autograder(tmp_path, package_zip, files):
    """A fake /autograder tree: the package unzipped into source/, ``files`` as the upload."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(package_zip) as zf:
        zf.extractall(root / "source")
    run = root / "source" / "run_autograder"
    run.chmod(run.stat().st_mode | stat.S_IXUSR)
    (root / "submission").mkdir(parents=True)
    for name, text in files.items():
        target = root / "submission" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    env.pop("GRADER_STAFF_KEY", None)
    done = subprocess.run(["bash", str(run)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def test_the_package_holds_the_scripts_the_key_and_no_staff_tools(package):
    """setup.sh and run_autograder at the root (executable), the key (mode 600), the
    hidden tests and the reference; no authoring tools and nothing generated."""
    out, fingerprint = package
    with zipfile.ZipFile(out) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        key = zf.read(gradescope.KEY_FILE).decode().strip()
    assert stat.S_IMODE(infos["run_autograder"].external_attr >> 16) == 0o755
    assert stat.S_IMODE(infos["setup.sh"].external_attr >> 16) == 0o755
    assert stat.S_IMODE(infos[gradescope.KEY_FILE].external_attr >> 16) == 0o600
    assert key == KEY and len(fingerprint) > 8
    for module in rubric.MODULES:
        assert f"solutions/{module}.py" in infos and f"tests/exercises/test_{module}.py" in infos
    assert not [n for n in infos if n.startswith("grader/authoring/") or "__pycache__" in n or n.endswith(".pyc")]


def test_the_same_inputs_build_the_same_zip(tmp_path):
    """Fixed dates and modes: building twice with one key gives identical bytes."""
    gradescope.build(tmp_path / "a.zip", key=KEY)
    gradescope.build(tmp_path / "b.zip", key=KEY)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_run_autograder_grades_the_reference_with_hidden_tests(tmp_path, package):
    """The reference, uploaded one folder down, gets full marks; hidden tests appear as
    separate Gradescope tests with visibility after_published, name and pass/fail only."""
    files = {f"hw/{m}.py": (ROOT / "solutions" / f"{m}.py").read_text() for m in rubric.MODULES}
    result = _autograder(tmp_path, package[0], files)
    assert result["score"] == result["max_score"] == 100, result.get("output")
    assert result["stdout_visibility"] == "hidden"
    hidden = [t for t in result["tests"] if t["visibility"] == "after_published"]
    assert hidden and all(t["output"].startswith(("passed: ", "failed: ")) for t in hidden)
    assert all(t["visibility"] in ("visible", "after_published") for t in result["tests"])


def test_run_autograder_explains_an_upload_without_module_files(tmp_path, package):
    """An upload with no module file scores 0 and the page says why, naming the files looked for."""
    result = _autograder(tmp_path, package[0], {"notes.txt": "hello"})
    assert result["score"] == 0
    assert "attention.py" in result["output"] and "rejected" in result["output"]
