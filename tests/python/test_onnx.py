"""ONNX export checked by real tools: the ONNX checker (python3-onnx, full_check) and ONNX
Runtime (npm's onnxruntime-node, run through tests/onnx/ort_run.js), against opgraph's
own eval-mode outputs at batch sizes 1 and 37."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import opgraph as og
from conftest import SOURCE, need_data

MODELS = os.path.join(SOURCE, "examples", "models")
ORT = os.environ.get("OPGRAPH_ORT_NODE", os.path.join(SOURCE, "build", "npm", "node_modules", "onnxruntime-node"))
RUNNER = os.path.join(SOURCE, "tests", "onnx", "ort_run.js")


def need_tools():
    missing = []
    try:
        import onnx  # noqa: F401
    except ImportError:
        missing.append("python3-onnx")
    if not shutil.which("node") or not os.path.isdir(ORT):
        missing.append(f"node with onnxruntime-node in {ORT} (scripts/deps installs it)")
    if missing:
        if os.environ.get("OPGRAPH_REQUIRE_TOOLS") == "1":
            pytest.fail("missing " + ", ".join(missing) + ", and OPGRAPH_REQUIRE_TOOLS=1")
        pytest.skip("skipped: needs " + ", ".join(missing))


def run_ort(path, inputs):
    given = {}
    for name, a in inputs.items():
        a = np.asarray(a)
        kind = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64", np.dtype(np.int64): "int64"}[a.dtype]
        given[name] = {"dims": list(a.shape), "type": kind, "data": a.ravel().tolist()}
    p = subprocess.run(["node", RUNNER, str(path)], input=json.dumps(given), capture_output=True, text=True,
                       env=dict(os.environ, ORT_NODE_MODULE=ORT), timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    return {k: np.array(v["data"]).reshape(v["dims"]) for k, v in out.items()}


def check_round_trip(model, path, make_inputs, head, labels):
    import onnx
    model.export_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    assert [o.name for o in proto.graph.output] == [head]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    worst = 0.0
    for batch in (1, 37):
        inputs = make_inputs(batch)
        plan = model.compile(batch=batch, mode="eval", keep=[head], backward=False)
        plan.forward({**inputs, **labels(batch)})  # the plan computes the loss too; ONNX gets no labels
        ours = np.array(plan.value(head), dtype=np.float64)
        theirs = run_ort(path, inputs)[head]
        assert theirs.shape == ours.shape
        err = np.max(np.abs(theirs - ours) / np.maximum(1.0, np.abs(ours)))
        assert err <= 1e-5, f"batch {batch}: ONNX Runtime differs by {err:.2e}"
        worst = max(worst, err)
    return worst


def test_mlp_round_trip(tmp_path):
    need_tools()
    data = og.load_data("iris:test=0.3,standardize=true,seed=1")
    model = og.load(os.path.join(MODELS, "iris.og"), seed=1)
    model.fit(data.x, data.y, optimizer="sgd:lr=0.5", epochs=100)
    rng = np.random.default_rng(0)
    err = check_round_trip(model, tmp_path / "iris.onnx",
                           lambda n: {"x": rng.standard_normal((n, 4)).astype(np.float32)}, "logits",
                           lambda n: {"y": np.zeros(n, np.float32)})
    print(f"iris MLP: largest relative difference {err:.1e}")


def test_lenet_round_trip(tmp_path):
    need_tools()
    need_data()
    data = og.load_data("mnist:scale=1/255,limit=512")
    model = og.load(os.path.join(MODELS, "lenet.og"), seed=1)
    model.fit(data.x, data.y, optimizer="adam:lr=1e-3", epochs=1, batch=64)
    images = data.x_test.reshape(-1, 1, 28, 28)
    err = check_round_trip(model, tmp_path / "lenet.onnx", lambda n: {"x": images[:n].copy()}, "logits",
                           lambda n: {"y": np.zeros(n, np.float32)})
    print(f"LeNet: largest relative difference {err:.1e}")


def test_transformer_round_trip(tmp_path):
    need_tools()
    data = og.load_data("sort_digits:n=256,length=8,test=0.1,seed=1")
    model = og.load(os.path.join(MODELS, "transformer_sort.og"), seed=1)
    model.fit(data.x.astype(np.int64), data.y, optimizer="adam:lr=1e-3", epochs=1, batch=32)
    rng = np.random.default_rng(0)
    err = check_round_trip(model, tmp_path / "sort.onnx",
                           lambda n: {"digits": rng.integers(0, 10, (n, 8)).astype(np.int64)}, "logits",
                           lambda n: {"sorted": np.zeros((n, 8), np.int64)})
    print(f"transformer: largest relative difference {err:.1e}")


def test_an_op_without_a_lowering_is_named(tmp_path):
    og.register_op("onnx_test_py_op", forward=lambda x: x)
    g = og.Graph()
    x = g.input("x", ("N", 3))
    g.add_output(og.op("onnx_test_py_op", x, name="mine"))
    model = og.Model(g)
    with pytest.raises(og.GraphError, match=r"^node 'mine': onnx_test_py_op: cannot be exported: the op has no ONNX "
                                             r"lowering"):
        model.export_onnx(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
