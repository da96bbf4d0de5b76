"""The tree stays clean: generated files only under tests/data and docs/, and no issue-tracker
numbers in code (help strings, docstrings and comments must make sense without the tracker)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = (".npz", ".npy", ".png", ".pt", ".pth", ".onnx", ".pkl", ".pickle")
ALLOWED_HOMES = ("tests/data/", "docs/")
#: Python code and notebooks read by users. benchmarks/ joins once its help strings are clean.
CODE_ROOTS = ("minicnn", "examples", "tests", "train.py")
ISSUE_NUMBER = re.compile(r"\b(?:issue|pull request|PR)s?\s*#?\d+|\(#\d+\)|(?<![\w&\"'])#\d{1,4}\b(?![\w])",
                          re.IGNORECASE)


def _git(*args):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_generated_files_are_committed_only_under_tests_data_and_docs():
    tracked = _git("ls-files").splitlines()
    strays = [f for f in tracked if f.endswith(GENERATED) and not f.startswith(ALLOWED_HOMES)]
    assert not strays, f"generated files outside {ALLOWED_HOMES}: {strays}"


def test_gitignore_keeps_weights_out_but_not_the_test_fixtures():
    # check-ignore prints the paths that are ignored (exit 1 when none is)
    paths = ["model.npz", "examples/resnet_small.npz", "runs/a/best.npz", "site/index.html",
             "tests/data/run_v0_1/best.npz", "tests/data/new_fixture.npz"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                          capture_output=True, text=True) if shutil.which("git") else None
    if done is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = set(done.stdout.split())
    assert ignored == {"model.npz", "examples/resnet_small.npz", "runs/a/best.npz", "site/index.html"}


def _code_files():
    for name in CODE_ROOTS:
        path = ROOT / name
        if path.is_file():
            yield path
        else:
            yield from sorted(path.rglob("*.py"))
            yield from sorted(path.rglob("*.ipynb"))


def test_no_issue_numbers_in_code():
    hits = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
            for path in _code_files() if path.name != Path(__file__).name
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if ISSUE_NUMBER.search(line)]
    assert not hits, "issue numbers in code:\n" + "\n".join(hits)


@pytest.mark.parametrize("text, found", [
    ("see issue 14", True), ("(issue #13)", True), ("fixed in PR 7", True), ("fixes (#12)", True),
    ("a # 3 comment", False), ('color="#333"', False), ("issubclass(x, int)", False),
    ("tissue 3", False), ("the 2nd issue of the day", False),
])
def test_issue_number_pattern(text, found):
    assert bool(ISSUE_NUMBER.search(text)) is found
