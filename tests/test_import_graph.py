"""The package's layers, read from its source with `ast` (nothing imported):
the library never imports its command line, module-level imports have no
cycles, and the command line starts without TensorFlow, Keras or a backend."""

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

PACKAGE = "keras_adadim"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
CLI = f"{PACKAGE}.cli"
HEAVY = ("tensorflow", "keras", "jax", "torch")


def _modules():
    """module name -> path, for every .py file of the package."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _target(name):
    """The package module an imported dotted name refers to (its longest
    prefix that is a module), or None outside the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module, path):
    """(target, module_level) for each intra-package import of a module,
    function-level imports included; also import_module("...") calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else \
        module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, not in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    # `from pkg import sub` imports pkg.sub when it is one.
                    full = f"{base}.{alias.name}"
                    found.append((full if full in MODULES else base,
                                  not in_function))
            elif (isinstance(child, ast.Call) and child.args
                  and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)
                  and getattr(child.func, "attr", getattr(
                      child.func, "id", None)) in ("import_module",
                                                   "__import__")):
                found.append((child.args[0].value, not in_function))
            visit(child, nested)

    visit(tree, False)
    return [(t, level) for t, level in
            ((_target(name), level) for name, level in found)
            if t is not None and t != module]


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_the_graph_sees_the_package():
    assert len(MODULES) > 20 and CLI in MODULES
    assert ("keras_adadim.zoo", True) in GRAPH["keras_adadim.hub"]


def test_nothing_imports_the_command_line():
    importers = sorted(m for m, edges in GRAPH.items()
                       if any(t == CLI for t, _ in edges))
    assert importers == [], (
        f"{importers} import {CLI}; the library must not depend on its "
        "command line (move what they need into a library module)")


def _cycles(edges):
    """The import cycles of a graph {module: [imported module, ...]}."""
    cycles, state, stack = [], {}, []

    def dfs(m):
        state[m] = "open"
        stack.append(m)
        for t in edges.get(m, ()):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                dfs(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            dfs(m)
    return cycles


def test_no_cycles_among_module_level_imports():
    edges = {m: sorted({t for t, top in e if top}) for m, e in GRAPH.items()}
    cycles = _cycles(edges)
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_the_graph_finds_a_cycle_and_a_cli_import(tmp_path, monkeypatch):
    """The checks above would see a violation (no vacuous pass)."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(f"from {PACKAGE} import hub\n")
    b.write_text(f"def f():\n    from {PACKAGE} import cli\n")
    monkeypatch.setitem(MODULES, f"{PACKAGE}.a", a)
    monkeypatch.setitem(MODULES, f"{PACKAGE}.b", b)
    assert _imports(f"{PACKAGE}.a", a) == [(f"{PACKAGE}.hub", True)]
    assert _imports(f"{PACKAGE}.b", b) == [(CLI, False)]
    assert _cycles({"x": ["y"], "y": ["z"], "z": ["x"], "w": ["x"]}) == [
        ["x", "y", "z", "x"]]
    assert _cycles({"x": ["y"], "y": [], "w": ["x", "y"]}) == []


def _fresh_python(code):
    """Run ``code`` in a new interpreter (TensorFlow's log level untouched,
    the repository first on the path); returns (stdout, seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT.parent), env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr, elapsed


_LOADED = (f"import sys; print(sorted(m for m in {HEAVY!r} "
           "if m in sys.modules))")


def test_importing_the_package_and_cli_loads_no_backend():
    out, _, _ = _fresh_python(f"import {PACKAGE}, {CLI}; {_LOADED}")
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv", [
    ["--help"], ["pretrain", "--help"], ["zoo", "list"],
    ["pretrain", "--epochs", "0"], ["pretrain", "--eval", "foo"],
    ["evaluate", "--knn-k", "0", "somewhere"], ["nonsense"],
])
def test_fast_commands_start_without_tensorflow(argv):
    """`adadim --help`, `zoo list` and argument errors: no TensorFlow,
    Keras or backend imported (what makes them start in a fraction of a
    second; not timed here: a timing fails on a loaded machine), and no
    native-library noise."""
    code = (f"import sys\nfrom {CLI} import main\n"
            f"try:\n    status = main({argv!r})\n"
            "except SystemExit as e:\n    status = e.code\n"
            f"print('status', status)\n{_LOADED}")
    out, err, _ = _fresh_python(code)
    status, loaded = out.strip().splitlines()[-2:]
    assert loaded == "[]", f"`adadim {' '.join(argv)}` imported {loaded}"
    assert "absl" not in err and "cuda" not in err.lower()
    if argv[-1] in ("--help", "list"):
        assert status in ("status 0", "status None")
    else:
        assert status == "status 2" and "error:" in err


def test_adadim_console_script_help_is_fast():
    """The installed `adadim --help` imports no backend (Python's own
    import log, ``-X importtime``, lists every module it loads) and prints
    nothing on stderr."""
    script = Path(sys.executable).with_name("adadim")
    if not script.exists():
        pytest.skip("the adadim console script is not installed here")
    done = subprocess.run([str(script), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "pretrain" in done.stdout
    assert done.stderr == ""
    profiled = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0]
              for line in profiled.stderr.splitlines() if "|" in line}
    assert "keras_adadim" in loaded  # the log is read right
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_heavy_commands_start_quietly_without_a_gpu():
    """What `adadim pretrain` / `evaluate` do before importing the library:
    on a machine without a GPU, TensorFlow's C++/absl start-up lines
    (oneDNN, "could not find cuda drivers", cuInit) are hidden unless
    `--verbose 2`."""
    from keras_adadim import cli

    if cli._has_gpu():
        pytest.skip("this machine has a GPU: its start-up logs are kept")
    code = (f"import argparse\nfrom {CLI} import _quiet_native_logs, "
            "_quiet_tensorflow\n"
            "args = argparse.Namespace(quiet=_quiet_native_logs({v}))\n"
            "_quiet_tensorflow(args)\nimport keras, tensorflow as tf\n"
            "print(float(tf.reduce_sum(tf.ones(3))))")
    out, err, _ = _fresh_python(code.format(v=1))
    assert out.strip() == "3.0" and err == "", err
    out, err, _ = _fresh_python(code.format(v=2))  # --verbose 2: kept
    assert out.strip() == "3.0"


def test_tests_mirror_the_package_layout():
    """A sub-folder of tests/ is named after a sub-package of the library
    (tests/methods/ tests keras_adadim/methods/, ...); test modules of the
    package's top-level modules sit in tests/ itself. Test module names are
    unique (pytest imports them by base name)."""
    tests = Path(__file__).resolve().parent
    subpackages = {p.name for p in ROOT.iterdir()
                   if (p / "__init__.py").exists()}
    folders = {p.name for p in tests.iterdir()
               if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders <= subpackages, folders - subpackages
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names))
    for folder in folders:
        assert list((tests / folder).glob("test_*.py")), folder
