"""The README and the guide pages say what is true: every Python block runs as written (in a
scratch folder), the two commands are the ones CI runs, the Quick start comes first, every
page is in the site's navigation, and every number quoted comes from docs/results.json."""
import importlib.util
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: pages whose Python blocks are run here (performance.md and fashion_mnist.md hold commands only)
PAGES = [README, *sorted((DOCS / "guide").glob("*.md"))]
OPTIONAL = ("torch", "onnx", "onnxruntime")


def _blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


BLOCKS = [(page, code) for page in PAGES for code in _blocks(page)]


@pytest.mark.parametrize("page, code", BLOCKS,
                         ids=[f"{page.stem}-block{i}" for i, (page, _) in enumerate(BLOCKS)])
def test_python_block_runs(page, code, tmp_path, monkeypatch):
    for module in OPTIONAL:
        if re.search(rf"^import {module}\b|^from {module}\b", code, flags=re.M):
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(page), "exec"), {"__name__": "__readme__"})


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "pip install -e . && python train.py" in text
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = re.search(r"```bash\n(pip install -e \"\.\[test[^\n]*pytest[^\n]*)\n```", text).group(1)
    assert test_cmd == ci.rstrip().splitlines()[-1], "the README's test command must end .ci/run"


def test_quick_start_is_on_the_first_screen():
    lines = README.read_text().splitlines()
    heading = lines.index("## Quick start")
    assert heading < 40 and lines[heading + 2] == "```python", lines[:heading + 3]


def test_readme_sections_in_the_learners_order():
    headings = [line[3:] for line in README.read_text().splitlines() if line.startswith("## ")]
    order = ["Two commands", "Quick start", "Write your own layer", "Reading the kernels", "Train",
             "Look inside", "Export"]
    assert [h for h in headings if h in order] == order, headings


def test_every_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    in_nav = set(re.findall(r":\s*(\S+\.md)\s*$", nav, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == in_nav, f"not in mkdocs.yml's nav: {pages - in_nav}; missing pages: {in_nav - pages}"


def test_readme_links_point_at_files():
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def _measure():
    spec = importlib.util.spec_from_file_location("measure", DOCS / "measure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numbers_quoted_are_the_measured_ones():
    """Rerunning docs/measure.py changes results.json; this fails until the README agrees."""
    measure = _measure()
    results = json.loads((DOCS / "results.json").read_text())
    text = README.read_text()
    claims = measure.readme_claims(results)
    assert claims, "results.json has none of the parts the README quotes"
    missing = {what: quoted for what, quoted in claims.items() if quoted not in text}
    assert not missing, f"README.md does not quote docs/results.json: {missing}"


def test_results_page_is_generated_from_results_json():
    measure = _measure()
    results = json.loads((DOCS / "results.json").read_text())
    assert (DOCS / "results.md").read_text() == measure.results_page(results), \
        "docs/results.md is stale: python docs/measure.py --page-only"


def test_measure_reads_the_readme_fit_snippet():
    code = _measure().readme_fit_snippet(num_train=5000, epochs=5)
    assert "synthetic_cifar(5000," in code and "epochs=5," in code and "fit(" in code
