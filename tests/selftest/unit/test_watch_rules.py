"""Watch mode's rules: which saves count as changes, and what a change re-grades."""

import os

from grader.grading.watch import changed_modules, snapshot, targets_for


def test_only_content_changes_count(tmp_path):
    (tmp_path / "attention.py").write_text("x = 1\n")
    (tmp_path / "notes.py").write_text("not a module of the course\n")
    before = snapshot(tmp_path)
    assert set(before) == {"attention"}
    os.utime(tmp_path / "attention.py", ns=(1, 1))  # touched: same content
    assert changed_modules(before, snapshot(tmp_path)) == []
    (tmp_path / "attention.py").write_text("x = 2\n")
    (tmp_path / "elbo.py").write_text("y = 1\n")
    after = snapshot(tmp_path)
    assert changed_modules(before, after) == ["attention", "elbo"]  # course order
    (tmp_path / "attention.py").unlink()
    assert changed_modules(after, snapshot(tmp_path)) == ["attention"]


def test_a_change_regrades_the_watched_targets_of_its_module():
    assert targets_for([], ["lstm"]) == ["lstm"]
    assert targets_for(["attention.sdpa", "lstm.cell", "attention"], ["attention"]) == ["attention.sdpa", "attention"]
    assert targets_for(["lstm.cell"], ["attention"]) == []
