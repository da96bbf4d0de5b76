"""examples/tour.ipynb runs top to bottom and is stored without outputs."""
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def test_tour_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_tour_runs_top_to_bottom(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    updates = []

    class Client(nbclient.NotebookClient):
        def process_message(self, msg, cell, cell_index):  # the live plot's in-place redraws
            if msg["msg_type"] == "update_display_data":
                updates.append(cell_index)
            return super().process_message(msg, cell, cell_index)

    Client(nb, timeout=120, kernel_name="python3",
           resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "validation accuracy" in text and "GradcheckResult" in text
    assert "learning-rate finder: " in text and "suggested rate" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # lr finder, live curves, filters, feature maps, pool routing
    fit_cell = next(i for i, c in enumerate(nb.cells)
                    if c.cell_type == "code" and 'progress="plot"' in c.source)
    shown = nb.cells[fit_cell].outputs
    assert [o.output_type for o in shown if "image/png" in o.get("data", {})] == ["display_data"]
    assert "epoch 1/" not in "".join(o.get("text", "") for o in shown)  # a plot, not lines
    assert updates.count(fit_cell) >= 2  # redrawn in place after every epoch after the first
