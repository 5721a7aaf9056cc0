"""Execute the tutorial notebooks (notebooks/*.ipynb) and fail on any cell error.

Each notebook is copied to a temporary folder and run there with nbclient (kernel "python3",
300 s per cell); the committed files are not touched. The notebooks use small data by default
and take a few seconds to a few tens of seconds each, hence the ``slow`` mark.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import classicvision

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _execute(path, tmp_path, monkeypatch, env=None):
    # The kernel imports the classicvision under test, not whatever the environment's site-packages
    # holds: after `pip install .` and then `pip install -e .` there, the first install's leftover
    # numba cache folders (files pip never recorded) make a package folder with no __init__.py that
    # shadows the editable install outside the checkout.
    source = str(Path(classicvision.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p))
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)      # inherited by the kernel process
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:                # run from scratch, not from the saved outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                           # raises CellExecutionError on the first failing cell
    nbformat.write(notebook, tmp_path / path.name)
    return notebook


def _errors(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def test_notebooks_exist():
    names = [path.name for path in NOTEBOOKS]
    assert names == ["01_filters_and_gradients.ipynb", "02_harris_and_sift.ipynb",
                     "03_matching.ipynb", "04_scene_recognition.ipynb", "05_what_the_cnn_learned.ipynb"]


@pytest.mark.parametrize("name", [path.name for path in NOTEBOOKS])
def test_committed_with_outputs(name):
    notebook = nbformat.read(NOTEBOOKS[[p.name for p in NOTEBOOKS].index(name)], as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "notebook saved unexecuted"
    assert any("image/png" in output.get("data", {}) for cell in code for output in cell.outputs)
    assert not _errors(notebook)
    assert any("from classicvision" in cell.source for cell in code)   # uses the library, not copies


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    notebook = _execute(path, tmp_path, monkeypatch)
    assert not _errors(notebook)
    assert any("image/png" in output.get("data", {}) for cell in notebook.cells
               if cell.cell_type == "code" for output in cell.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["03_matching.ipynb", "04_scene_recognition.ipynb"])
def test_notebook_runs_without_data(name, tmp_path, monkeypatch):
    # The fallbacks: no course data (Notre Dame skipped, generated textures instead of 15-Scene).
    path = next(p for p in NOTEBOOKS if p.name == name)
    notebook = _execute(path, tmp_path, monkeypatch, env={"CLASSICVISION_DATA": str(tmp_path / "absent")})
    assert not _errors(notebook)
    text = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)
    assert ("no pairs" in text) if name.startswith("03") else ("generated textures" in text)


@pytest.mark.slow
def test_cnn_notebook_without_data_shows_the_classical_matrices(tmp_path, monkeypatch):
    # Generated textures instead of 15-Scene, and a compare.json of one classical method beside the CNN's matrix.
    pytest.importorskip("torch")
    import json

    compare = tmp_path / "compare.json"
    names = ["horizontal", "vertical", "blobs", "checks"]
    rows = [{"key": key, "method": method, "confusion_matrix": (5 * np.eye(4, dtype=int)).tolist(),
             "class_names": names} for key, method in (("bovw", "bag of words + linear SVM"), ("cnn", "CNN"))]
    compare.write_text(json.dumps({"rows": rows}))
    path = next(p for p in NOTEBOOKS if p.name.startswith("05"))
    notebook = _execute(path, tmp_path, monkeypatch, env={"CLASSICVISION_DATA": str(tmp_path / "absent"),
                                                          "CLASSICVISION_COMPARE": str(compare)})
    assert not _errors(notebook)
    text = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)
    assert "generated textures" in text and "compare.json: bag of words + linear SVM" in text
