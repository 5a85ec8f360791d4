"""examples/python/: each runs as documented and reaches the figures of its reference
notebook (the bounds of the C++ examples' tests)."""
import importlib.util
import os

import pytest

from conftest import SOURCE, python, run_json

FOLDER = os.path.join(SOURCE, "examples", "python")


def run(name, *args, cwd=None):
    return run_json([python(), os.path.join(FOLDER, name)] + list(args), cwd=cwd)[0]


def test_logistic_and_its_derivative():
    r = run("logistic.py")
    assert r["points"] == 2001 and r["slope_at_0"] == 0.25
    assert r["value_error"] <= 1e-15 and r["derivative_error"] <= 1e-15
    assert r["finite_difference_error"] <= 1e-9


def test_xor_by_hand():
    r = run("xor.py")
    assert r["loss"] <= 0.01 and r["worst_output_error"] <= 0.05 and r["epochs"] == 4714


def test_iris():
    r = run("iris.py")
    assert r["train_accuracy_all"] >= 0.96 and r["test_accuracy"] >= 0.93


def test_blobs_with_gradient_checks():
    r = run("blobs.py")
    assert r["test_accuracy"] >= 0.95 and r["gradient_checks"] >= 10 and r["worst_gradient_error"] <= 1e-6


def test_moons_and_circles(tmp_path):
    r = run("moons.py", "--plot", str(tmp_path / "moons.png"))
    for key in ("moons_relu", "moons_tanh", "circles_relu", "circles_tanh"):
        assert r[f"{key}_test_accuracy"] >= 0.95, key
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert r["plotted"] is has_matplotlib
    if has_matplotlib:
        assert (tmp_path / "moons.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_custom_op():
    r = run("custom_op.py")
    assert r["check_passed"] is True and r["gradient_error"] <= 1e-8
    assert r["test_accuracy"] >= 0.95 and abs(r["test_accuracy"] - r["builtin_test_accuracy"]) <= 0.02
