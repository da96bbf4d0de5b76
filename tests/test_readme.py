"""Every Python block in the README runs as written (in a scratch folder)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
OPTIONAL = ("torch", "onnx", "onnxruntime")


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code, tmp_path, monkeypatch):
    for module in OPTIONAL:
        if re.search(rf"^import {module}\b|^from {module}\b", code, flags=re.M):
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "pip install -e . && python train.py" in text
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = re.search(r"```bash\n(pip install -e \"\.\[test[^\n]*pytest[^\n]*)\n```", text).group(1)
    assert test_cmd in ci.splitlines()
