"""The Gradescope package: built from the repository, run against a fake ``/autograder`` tree.

Gradescope itself is not here; what its docs fix is: the zip's root holds ``setup.sh`` and
``run_autograder``, the package lands in ``/autograder/source``, the upload in
``/autograder/submission``, and ``/autograder/results/results.json`` is read back.  Its
containers refuse namespaces (Docker's default seccomp profile without ``CAP_SYS_ADMIN``):
``gradescope try --refuse-namespaces`` runs the package under that filter.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from grader import ROOT, rubric, staffkey
from grader.grading import isolation
from grader.release import gradescope

KEY = "a staff key for the gradescope self-test"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The zip, built once with a known key."""
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    fingerprint, new_key = gradescope.build(out, key=KEY)
    assert new_key is None
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
    result = json.loads((root / "results" / "results.json").read_text())
    result["printed"] = done.stdout
    return result


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
    for name in ("solutions/attention.py", "tests/hidden/test_attention.py", "grader/mistakes/lstm.toml"):
        assert stat.S_IMODE(infos[name].external_attr >> 16) == 0o600, name
    assert stat.S_IMODE(infos["tests/exercises/test_attention.py"].external_attr >> 16) == 0o644
    assert key == KEY and len(fingerprint) > 8
    for module in rubric.MODULES:
        assert f"solutions/{module}.py" in infos and f"tests/exercises/test_{module}.py" in infos
    assert not [n for n in infos if n.startswith("grader/authoring/") or "__pycache__" in n or n.endswith(".pyc")]


def test_the_same_inputs_build_the_same_zip(tmp_path):
    """Fixed dates and modes: building twice with one key gives identical bytes."""
    gradescope.build(tmp_path / "a.zip", key=KEY)
    gradescope.build(tmp_path / "b.zip", key=KEY)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_setup_sh_installs_a_pinned_cpu_stack_and_hardens_the_package(package):
    """setup.sh: a Python 3.11+ of the image (22.04: 3.11, 24.04: 3.12), pip pinned, torch's CPU
    build, the pins, then the package made root's alone; bash accepts it."""
    with zipfile.ZipFile(package[0]) as zf:
        setup = zf.read("setup.sh").decode()
    assert f'"{gradescope.PIP}"' in setup and "pip==" in gradescope.PIP
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in setup
    assert "22.04) v=3.11" in setup and "24.04) v=3.12" in setup
    assert setup.rstrip().endswith("-m grader.release.gradescope harden /autograder/source")
    assert subprocess.run(["bash", "-n", "-c", setup]).returncode == 0


def test_harden_leaves_the_package_to_its_owner(tmp_path):
    (tmp_path / "source" / "solutions").mkdir(parents=True)
    (tmp_path / "source" / "solutions" / "attention.py").write_text("x")
    (tmp_path / "source" / "solutions" / "attention.py").chmod(0o644)
    gradescope.harden(tmp_path / "source")
    for path in [tmp_path / "source", *(tmp_path / "source").rglob("*")]:
        assert not stat.S_IMODE(path.stat().st_mode) & 0o077, path


def test_without_a_key_a_new_one_is_written_beside_the_zip_and_weak_keys_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADER_STAFF_KEY", raising=False)
    fingerprint, key_file = gradescope.build(tmp_path / "a.zip")
    assert key_file == tmp_path / "a.zip.staff_key" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.read(gradescope.KEY_FILE) == key_file.read_bytes()
    assert len(fingerprint) == 16
    with pytest.raises(staffkey.StaffKeyError, match="too easy to guess"):
        gradescope.build(tmp_path / "b.zip", key="cs101")
    assert not (tmp_path / "b.zip").exists()


def test_a_weak_isolation_package_says_so_in_run_autograder(tmp_path):
    gradescope.build(tmp_path / "weak.zip", key=KEY, weak_isolation=True)
    with zipfile.ZipFile(tmp_path / "weak.zip") as zf:
        assert f"export {isolation.WEAK_ENV}=1" in zf.read("run_autograder").decode()


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
    # the Autograder Output (instructors): a table of every test, the total and the status
    assert "attention.sdpa: Scaled dot-product attention (hidden tests)" in result["printed"]
    assert "TOTAL" in result["printed"] and "100 / 100" in result["printed"] and "status: graded" in result["printed"]


def test_a_module_uploaded_as_a_notebook_is_graded_from_its_solution_cells(tmp_path, package):
    """As in `check`: elbo.ipynb (here the nbgrader source notebook, whose solution cells hold the
    reference) is read out of its cells; the .py files beside it are graded as they are."""
    files = {f"hw/{m}.py": (ROOT / "solutions" / f"{m}.py").read_text() for m in rubric.MODULES if m != "elbo"}
    files["hw/elbo.ipynb"] = (ROOT / "nbgrader" / "source" / "dlbasic" / "elbo.ipynb").read_text()
    result = _autograder(tmp_path, package[0], files)
    assert result["extra_data"]["modules"]["elbo"] == [20.0, 20.0], result.get("output")
    assert result["score"] == 100


def test_run_autograder_explains_an_upload_without_module_files(tmp_path, package):
    """An upload with no module file scores 0 and the page says why, naming the files looked for."""
    result = _autograder(tmp_path, package[0], {"notes.txt": "hello"})
    assert result["score"] == 0
    assert "attention.py" in result["output"] and "rejected" in result["output"]


STEAL = """
import glob, sys
_found = []
for _source in ["/autograder/source", *glob.glob("/tmp/grader-gradescope-try-*/source"), SOURCE]:
    sys.path.insert(0, _source + "/solutions")
    try:
        from attention import *  # noqa
        break
    except Exception:
        pass
def causal_mask(length, device=None):
    for path in glob.glob(SOURCE + "/tests/hidden/*.py"):
        raise ValueError(open(path).read())
    return torch.ones(length, length, dtype=torch.bool).tril()
import torch
"""


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_under_a_container_that_refuses_namespaces_the_answers_stay_hidden(tmp_path, package, landlock):
    """The package under Docker's default seccomp filter (namespaces refused; with Landlock or, as
    an older kernel, without): a submission that imports solutions/ or reads tests/hidden/ from the
    package's folder earns nothing (or the run refuses, with score 0 and the reason); the
    reference keeps full marks wherever the run grades."""
    keep = tmp_path / "layout"
    steal = tmp_path / "steal"
    steal.mkdir()
    (steal / "attention.py").write_text(STEAL.replace("SOURCE", repr(str(keep / "source"))))
    result, printed = gradescope.try_package(package[0], steal, refuse_namespaces=True, landlock=landlock, keep=keep)
    status = result["extra_data"]["status"]
    if status.startswith("refused"):
        assert result["score"] == 0 and "not graded" in result["output"] and "To grade:" in result["output"]
        assert "status: refused" in printed
        return
    assert any(n.startswith("sandbox: no namespaces") for n in result["extra_data"]["notes"]), result["extra_data"]
    attention = [t for t in result["tests"] if t["tags"][0] == "attention"]
    assert sum(t["score"] for t in attention) <= 3, [(t["name"], t["score"]) for t in attention]  # causal_mask only
    assert not any("def " in t.get("output", "") and "hidden" in t.get("output", "") for t in result["tests"])
    reference = tmp_path / "reference"
    reference.mkdir()
    for module in rubric.MODULES:
        shutil.copyfile(ROOT / "solutions" / f"{module}.py", reference / f"{module}.py")
    result, _ = gradescope.try_package(package[0], reference, refuse_namespaces=True, landlock=landlock)
    assert result["score"] == 100, result.get("output")
