"""Shared pieces of the Python test suite (run by CTest, one test per file; see
tests/CMakeLists.txt). The build tells the tests where things are through the
environment: PYTHONPATH (build/python), OPGRAPH_BINARY (the opgraph command),
OPGRAPH_SOURCE_DIR, OPGRAPH_PLUGIN_DIR (the test plugins), OPGRAPH_EXAMPLE_DIR (the C++
examples)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

SOURCE = os.environ.get("OPGRAPH_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY = os.environ.get("OPGRAPH_BINARY", os.path.join(SOURCE, "build", "opgraph"))
PLUGINS = os.environ.get("OPGRAPH_PLUGIN_DIR", os.path.join(SOURCE, "build", "tests"))
EXAMPLES = os.environ.get("OPGRAPH_EXAMPLE_DIR", os.path.join(SOURCE, "build", "examples"))

_data_skips = []


def need_data():
    """Skips a test that needs $OPGRAPH_DATA when it is not set; with
    OPGRAPH_REQUIRE_DATA=1 (CI) that is a failure instead."""
    if os.environ.get("OPGRAPH_DATA"):
        return os.environ["OPGRAPH_DATA"]
    if os.environ.get("OPGRAPH_REQUIRE_DATA") == "1":
        pytest.fail("needs OPGRAPH_DATA, and OPGRAPH_REQUIRE_DATA=1")
    _data_skips.append(1)
    pytest.skip("skipped: needs OPGRAPH_DATA (the folder holding mnist/ and small/)")


def pytest_sessionfinish(session, exitstatus):
    # Explicit skips for CTest (SKIP_RETURN_CODE 77): a file whose tests all skipped for want
    # of data reports skipped, never passed.
    if exitstatus == 0 and _data_skips and session.testscollected == len(_data_skips):
        session.exitstatus = 77


def run_json(argv, cwd=None, env=None):
    """Runs a program, returns (the JSON object on its last line, its whole stdout)."""
    p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    assert p.returncode == 0, f"{argv} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    last = p.stdout.strip().splitlines()[-1]
    return json.loads(last), p.stdout


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def python():
    return sys.executable


def xor_graph():
    """The 2-2-1 sigmoid XOR network of examples/xor_plan.cpp: inputs x [N,2], y [N,1]."""
    import opgraph as og
    g = og.Graph()
    x = g.input("x", ("N", 2))
    y = g.input("y", ("N", 1))
    h = og.nn.logistic(og.nn.dense(x, 2, "hidden"))
    p = og.nn.logistic(og.nn.dense(h, 1, "out")).named("p")
    g.set_loss(og.nn.binary_cross_entropy(p, y).named("loss"))
    return g
