"""Start-up: a lazy import, the numba cache where the package is read-only, and the parallel first
compilation (classicvision._warm)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import classicvision


def _python(code, env=None, timeout=600):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_loads_no_heavy_dependency():
    out = _python("""
        import json, sys
        import classicvision
        heavy = ("sklearn", "torch", "matplotlib", "numba", "scipy", "cv2", "skimage")
        print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))
    """)
    assert json.loads(out) == []


def test_dir_lists_the_api_and_every_name_loads():
    names = dir(classicvision)
    for name in classicvision.__all__:
        assert name in names
        assert getattr(classicvision, name) is not None
    assert {"features", "matching", "recognition"} <= set(names)
    assert classicvision.match_images is classicvision.matching.pipeline.match_images
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        classicvision.nope


def test_numba_cache_dir_is_honoured(tmp_path):
    _python("""
        import numpy as np
        from classicvision._kernels.blur import _upsample2
        _upsample2(np.zeros((4, 4), np.float32))
    """, {"NUMBA_CACHE_DIR": str(tmp_path)})
    assert any(p.name.startswith("blur._upsample2_rows-") for p in tmp_path.rglob("*.nbi"))


def test_read_only_package_falls_back_to_a_user_cache(tmp_path):
    """As root, chmod cannot make a folder read-only, so the package's __pycache__ is made to refuse
    writes the way numba probes it (a temporary file); the cache must then go to the user folder."""
    package = os.path.dirname(classicvision.__file__)
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    code = f"""
        import tempfile
        real = tempfile.TemporaryFile
        def refuse(*args, dir=None, **kwargs):
            if dir is not None and str(dir).startswith({package!r}):
                raise PermissionError(13, "Permission denied (read-only site-packages)", dir)
            return real(*args, dir=dir, **kwargs)
        tempfile.TemporaryFile = refuse
        import numpy as np
        from classicvision._kernels.blur import _upsample2, _upsample2_rows
        _upsample2(np.zeros((4, 4), np.float32))
        print(_upsample2_rows.stats.cache_path)
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(tmp_path / "user-cache"))
    assert any(p.name.startswith("blur._upsample2_rows-") for p in (tmp_path / "user-cache").rglob("*.nbi"))


@pytest.mark.slow
@pytest.mark.parametrize("job, threaded", [("match_dog", False), ("match_harris", False), ("match_dog", True)])
def test_precompile_fills_a_cold_cache_and_leaves_no_process(tmp_path, job, threaded):
    """The child is forked when the caller has one thread, a new Python process otherwise
    (``threaded``: another thread is running); either way the cache ends warm, nothing is left."""
    out = _python(f"""
        import json, os, threading
        from classicvision import _warm
        from classicvision._warm import is_cold, precompile
        started = []
        original = _warm._start_child
        _warm._start_child = lambda groups: started.append(original(groups)) or started[-1]
        stop = threading.Event()
        if {threaded!r}:
            threading.Thread(target=stop.wait, daemon=True).start()
        before = is_cold({job!r})
        did = precompile({job!r})
        stop.set()
        assert type(started[0]).__name__ == ("Popen" if {threaded!r} else "_Forked"), started
        children = [p for p in os.listdir("/proc") if p.isdigit()
                    and open(f"/proc/{{p}}/stat").read().split(")")[-1].split()[1] == str(os.getpid())]
        print(json.dumps([before, did, is_cold({job!r}), precompile({job!r}), children]))
    """, {"NUMBA_CACHE_DIR": str(tmp_path)})
    before, did, after, again, children = json.loads(out)
    assert before and did and not after and not again and children == []


@pytest.mark.slow
def test_an_error_inside_precompiling_kills_the_child_at_once(tmp_path):
    """The CLI reads its inputs inside ``precompiling`` (the child starts first): bad input ends
    the command without waiting for the child's compilation, and leaves no process behind."""
    out = _python("""
        import json, os, time
        from classicvision._warm import is_cold, precompiling
        start = time.perf_counter()
        try:
            with precompiling("match_dog") as cold:
                raise ValueError("bad input")
        except ValueError as exc:
            error = str(exc)
        seconds = time.perf_counter() - start
        children = [p for p in os.listdir("/proc") if p.isdigit()
                    and open(f"/proc/{p}/stat").read().split(")")[-1].split()[1] == str(os.getpid())]
        print(json.dumps([cold, error, seconds, children, is_cold("match_dog")]))
    """, {"NUMBA_CACHE_DIR": str(tmp_path)})
    cold, error, seconds, children, still_cold = json.loads(out)
    assert cold and error == "bad input" and children == [] and still_cold
    assert seconds < 2.0          # the kernels take several seconds to compile: nobody waited for them


_ALLOCATION = re.compile(r"np\.(empty|zeros|full|ones|empty_like|zeros_like|full_like|concatenate|stack)\(|"
                         r"\.copy\(\)|\.view\(|\.sum\(\)|\b(min|max|int)\(")


@pytest.mark.parametrize("job", ["match_dog", "match_harris"])
def test_kernels_of_a_first_run_neither_allocate_nor_call_min_max_or_int(job):
    """Compile time on a first run: an allocation (or ``.view``, ``.sum()``, builtin ``min``,
    ``max`` or ``int``) inside compiled code compiles one more specialization of numba's
    implementation per type signature; the kernels of ``classicvision match`` take their working
    memory from the caller (``jit.claim_slot``) and convert with ``np.int64`` (``math.floor``,
    ``math.ceil`` and ``round`` already return integers). Checked on the source, docstrings and
    comments left out."""
    import ast
    import importlib
    import inspect

    from numba.core.registry import CPUDispatcher

    from classicvision._warm import JOBS

    def body(function):
        statements = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0].body
        if isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
            statements = statements[1:]                          # the docstring
        return statements

    todo = []
    for name in JOBS[job][2]:
        module, attribute = name.split(".")
        todo.append(getattr(importlib.import_module(f"classicvision._kernels.{module}"), attribute).py_func)
    seen, offenders = set(), []
    while todo:                                                  # the kernels and every jitted helper they call
        function = todo.pop()
        if function in seen:
            continue
        seen.add(function)
        statements = body(function)
        if _ALLOCATION.search("\n".join(ast.unparse(statement) for statement in statements)):
            offenders.append(f"{function.__module__}.{function.__qualname__}")
        for node in ast.walk(ast.Module(statements, [])):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                callee = function.__globals__.get(node.func.id)
                if isinstance(callee, CPUDispatcher):
                    todo.append(callee.py_func)
    assert len(seen) > 8
    assert sorted(offenders) == []


def test_no_kernel_assigns_an_array_to_a_slice():
    """``a[i, :] = b`` in compiled code makes numba compile its formatted shape-mismatch error
    (2.6 s of string code on a first run, in every process); kernels copy with a loop."""
    import ast
    import importlib
    import inspect
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import classicvision._kernels as kernels

    offenders, checked = [], 0
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"classicvision._kernels.{info.name}")
        for name, value in vars(module).items():
            if not (isinstance(value, CPUDispatcher) and value.__module__ == module.__name__):
                continue
            checked += 1
            for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(value.py_func)))):
                if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Subscript) and any(isinstance(s, ast.Slice) for s in ast.walk(t.slice))
                        for t in node.targets):
                    constant = isinstance(node.value, ast.Constant) or (
                        isinstance(node.value, ast.UnaryOp) and isinstance(node.value.operand, ast.Constant))
                    if not constant:
                        offenders.append(f"{info.name}.{name}: {ast.unparse(node)}")
    assert checked > 20
    assert offenders == []


def test_embedded_pair_is_skimages_without_its_reader():
    from skimage import data

    from classicvision.datasets import stereo_pair
    from classicvision.io import as_float_image

    left, right, disparity = stereo_pair()
    expected = data.stereo_motorcycle()
    np.testing.assert_array_equal(left, as_float_image(expected[0]))
    np.testing.assert_array_equal(right, as_float_image(expected[1]))
    np.testing.assert_array_equal(disparity, expected[2].astype(np.float32))
