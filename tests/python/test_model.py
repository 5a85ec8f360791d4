"""Model-level training through Python: fit, evaluate, predict, histories, several inputs,
label-free losses, checkpoints, and bitwise agreement with the C++ fit and `opgraph train`."""
import json
import os
import subprocess

import numpy as np
import pytest

import opgraph as og
from conftest import BINARY, EXAMPLES, PLUGINS, SOURCE, run_json, same_bits

MODELS = os.path.join(SOURCE, "examples", "models")


def blobs_model(seed=3, dtype=None):
    g = og.Graph()
    x = g.input("x", ("N", 2))
    y = g.input("y", ("N",))
    h = og.nn.tanh(og.nn.dense(x, 8, "hidden"))
    g.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(h, 3, "out").named("logits"), y).named("loss"))
    return og.Model(g, seed=seed, dtype=dtype)


def test_fit_evaluate_predict_and_history():
    data = og.load_data("blobs:n=600,centers=3,test=0.3,seed=1")
    model = blobs_model()
    seen = []
    history = model.fit(data.x, data.y, optimizer="adam:lr=0.02", epochs=15, batch=32,
                        validation=(data.x_test, data.y_test), callback=lambda e: seen.append(e["epoch"]))
    assert seen == list(range(1, 16)) and len(history) == 15 and model.epochs_done == 15
    assert history.train_loss[-1] < history.train_loss[0] / 2
    assert len(history.val_accuracy) == 15 and history.val_accuracy[-1] >= 0.95
    d = history.to_dict()
    assert set(d) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "samples"}
    assert d["samples"] == [420] * 15
    test = model.evaluate(data.x_test, data.y_test)
    assert test.samples == 180 and test.accuracy == history.val_accuracy[-1] and test.loss == history.val_loss[-1]
    assert test.confusion.shape == (3, 3) and test.confusion.sum() == 180
    assert np.trace(test.confusion) == round(test.accuracy * 180)
    probs = model.predict(data.x_test)
    assert probs.shape == (180, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    classes = model.predict_classes(data.x_test)
    assert classes.dtype == np.int64
    np.testing.assert_array_equal(classes, probs.argmax(axis=1))
    assert np.mean(classes == data.y_test) == pytest.approx(test.accuracy)


def test_one_hot_labels_train_as_class_indices_and_class_names_are_refused_with_how_to_number_them():
    # Keras users hold labels one-hot (to_categorical), scikit-learn users as names. One-hot
    # rows for a model that takes class indices are read as the index of their 1: the same
    # bits as the indices. Names are refused with how to number them; soft labels too.
    data = og.load_data("blobs:n=300,centers=3,seed=1")
    one_hot = np.eye(3, dtype=np.float32)[data.y.astype(int)]
    a, b = blobs_model(), blobs_model()
    ha = a.fit(data.x, data.y, optimizer="adam:lr=0.02", epochs=15, batch=32)
    hb = b.fit(data.x, one_hot, optimizer="adam:lr=0.02", epochs=15, batch=32)
    assert ha.train_loss == hb.train_loss and ha.train_accuracy[-1] > 0.9
    assert all(same_bits(a.params[k], b.params[k]) for k in a.params)
    assert b.evaluate(data.x, one_hot).accuracy == a.evaluate(data.x, data.y).accuracy
    names = np.array(["ant", "bee", "cat"])[data.y.astype(int)]
    with pytest.raises(TypeError, match=r"^fit: y: class names \(text\), not class indices: number them, as names, y = "
                                        r"np.unique\(y, return_inverse=True\) does \(class i is names\[i\]\)$"):
        a.fit(data.x, names)
    soft = np.full((300, 3), 1 / 3, np.float32)
    with pytest.raises(og.ShapeError, match=r"^fit: y has shape \[300,3\]: row 0 is not one-hot \(a single 1, the rest "
                                            r"0\), and the model's labels input 'y' takes a class index per sample "
                                            r"\[N\]: give y.argmax\(1\) for the likeliest class$"):
        a.fit(data.x, soft)


def test_an_output_without_a_row_per_sample_is_refused_by_predict_and_a_model_without_a_loss_by_evaluate():
    # An output that averages over the batch (or a transpose that moves it) holds no row per
    # sample: predict had read past its end ("index 12 out of range for shape [3,4]"), and
    # evaluate of a model with nothing to compare reported a loss of 0. A plan still reads it.
    g = og.Graph()
    x = g.input("x", ("N", 4))
    h = og.nn.dense(x, 3, "fc")
    s = og.nn.mean(h, axis=[0]).named("s")
    g.add_output(s)
    model = og.Model(g, seed=1)
    xs = np.arange(28, dtype=np.float32).reshape(7, 4) / 10
    with pytest.raises(og.ShapeError, match=r"^test_model\.py:\d+: predict: the prediction 's' has shape \[3\], "
                                            r"whose first axis is not the batch N: it holds no row per sample to "
                                            r"predict; read it from a plan instead \(C\+\+: Plan::value\(\"s\"\); Python: "
                                            r"model.compile\(batch=...\).value\(\"s\"\)\)$"):
        model.predict(xs)
    with pytest.raises(og.ShapeError, match=r"^test_model\.py:\d+: predict: the prediction 's' has shape \[3\]"):
        model.predict_classes(xs)
    with pytest.raises(og.GraphError, match=r"^evaluate: the model has neither labels nor a loss: nothing to evaluate$"):
        model.evaluate(xs)
    plan = model.compile(batch=7, keep=["s"], backward=False)
    plan.forward({"x": xs})
    w, b = model.params["fc.W"], model.params["fc.b"]
    np.testing.assert_allclose(plan.value("s"), (xs @ w + b).mean(axis=0), rtol=1e-6)


def test_a_checkpoint_is_not_saved_under_an_onnx_name(tmp_path):
    # It would be read back as an ONNX file ("the protobuf does not parse") by og.load,
    # opgraph and ONNX Runtime alike; export_onnx writes ONNX.
    model = blobs_model()
    with pytest.raises(og.DataError, match=r"tuned.ONNX: a checkpoint \(opgraph's own format\) would be written under "
                                           r"an .onnx name, which every tool would then read as an ONNX file: name it "
                                           r"\.ckpt; to write ONNX, export the trained model"):
        model.save(tmp_path / "tuned.ONNX")
    assert list(tmp_path.iterdir()) == []
    model.save(tmp_path / "tuned.ckpt")
    assert og.load(tmp_path / "tuned.ckpt").epochs_done == 0


def test_nan_in_the_data_is_refused_before_training_and_a_1d_sample_is_explained():
    # A NaN feature (NumPy data with a missing value) would turn the weights to NaN; it is
    # named before anything trains, as is a NaN in the validation data. With a relu after
    # it the loss had even stayed finite while the predictions went flat.
    data = og.load_data("blobs:n=60,centers=3,seed=1")
    g = og.Graph()
    x = g.input("x", ("N", 2))
    y = g.input("y", ("N",))
    g.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(og.nn.relu(og.nn.dense(x, 8, "h")), 3, "out"), y))
    model = og.Model(g, seed=1)
    before = {k: v.copy() for k, v in model.params.items()}
    bad = np.array(data.x, dtype=np.float64)
    bad[7, 1] = np.nan
    with pytest.raises(og.NumericError, match=r"^fit: x: sample 7 holds nan in feature 1: training on it would turn the "
                                              r"weights to NaN: drop or fill such samples$"):
        model.fit(bad, data.y, epochs=1, batch=16)
    with pytest.raises(og.NumericError, match=r"^fit \(validation\): x: sample 7 holds nan in feature 1"):
        model.fit(data.x, data.y, epochs=1, batch=16, validation=(bad, data.y))
    # Nor evaluated or predicted on: the output would be NaN, and the argmax of NaN scores
    # a made-up class 0 that accuracy and the confusion matrix had counted.
    with pytest.raises(og.NumericError, match=r"^evaluate: x: sample 7 holds nan in feature 1: its loss would be NaN "
                                              r"and its predicted class made up: drop or fill such samples$"):
        model.evaluate(bad, data.y)
    with pytest.raises(og.NumericError, match=r"^predict_classes: the output for sample 7 is NaN \(its input or the "
                                              r"parameters hold NaN\): it has no class$"):
        model.predict_classes(bad)
    # No samples: empty predictions of the head's shape, not an error about training.
    assert model.predict(data.x[:0]).shape == (0, 3)
    assert model.predict_classes(data.x[:0]).shape == (0,)
    # A label as large as 2^40 is refused by its sample; it had asked for a class table of
    # 8 TiB (MemoryError).
    huge = np.array(data.y, dtype=np.int64)
    huge[4] = 2**40
    with pytest.raises(og.DataError, match=r"^fit: x: label 1099511627776 of sample 4 would make 1099511627777 "
                                           r"classes, more than the 16777216 a dataset may hold"):
        model.fit(data.x, huge, epochs=1, batch=16)
    # A negative label (-1 for "unknown", as some data sets write it) is named by its sample,
    # not by its row in a shuffled batch; with ignore_index=-1 it is padding, and trains.
    labels = np.array(data.y, dtype=np.int64)
    labels[9] = -1
    with pytest.raises(og.DataError, match=r"^fit: x: label -1 of sample 9 is not a class index: classes count from 0 "
                                           r"\(the loss 'softmax_cross_entropy' ignores no label: give it "
                                           r"ignore_index=-1 for padding\)$"):
        model.fit(data.x, labels, epochs=1, batch=16)
    assert all(np.array_equal(model.params[k], v) for k, v in before.items())
    g2 = og.Graph()
    x2, y2 = g2.input("x", ("N", 2)), g2.input("y", ("N",))
    g2.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(x2, 3, "out"), y2, ignore_index=-1))
    padded = og.Model(g2, seed=1)
    padded.fit(data.x, labels, epochs=1, batch=16)
    labels[9] = -2
    with pytest.raises(og.DataError, match=r"^fit: x: label -2 of sample 9 is not a class index: classes count from 0, "
                                           r"and the loss 'softmax_cross_entropy' ignores only label -1$"):
        padded.fit(data.x, labels, epochs=1, batch=16)
    # predict still passes NaN through, where it is: nothing trains on it.
    assert np.isnan(model.predict(bad[6:8])[1]).all() and np.isfinite(model.predict(bad[6:8])[0]).all()
    # One sample as NumPy's 1-D x[0]: said as such, not "each sample has 1 values".
    with pytest.raises(og.ShapeError, match=r"^predict: x: has shape \(2,\): a 1-D array is one value per sample, and "
                                            r"the model's input 'x' takes 2 per sample \[2\]: give one sample as "
                                            r"x.reshape\(1, -1\)"):
        model.predict(data.x[0])
    assert model.predict(data.x[0].reshape(1, -1)).shape == (1, 3)


def test_callback_returning_false_stops_and_target_loss():
    data = og.load_data("blobs:n=200,centers=3,seed=1")
    model = blobs_model()
    history = model.fit(data.x, data.y, epochs=50, batch=16, callback=lambda e: e["epoch"] < 4)
    assert len(history) == 4 and history.stopped and not history.reached_target
    model = blobs_model()
    history = model.fit(data.x, data.y, optimizer="adam:lr=0.05", epochs=500, batch=16, target_loss=0.2)
    assert history.reached_target and history.train_loss[-1] <= 0.2 and len(history) < 500


def test_a_persistent_optimizer_continues_where_it_stopped():
    # Two fits of 3 epochs with one og.Optimizer equal one fit of 6 epochs... in the
    # optimizer's state (Adam's moments and step count carry over).
    data = og.load_data("blobs:n=200,centers=3,seed=1")
    a, b = blobs_model(), blobs_model()
    opt = og.Optimizer("adam:lr=0.01")
    a.fit(data.x, data.y, optimizer=opt, epochs=3, batch=50, shuffle=False)
    a.fit(data.x, data.y, optimizer=opt, epochs=3, batch=50, shuffle=False)
    assert opt.steps == 24
    b.fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=6, batch=50, shuffle=False)
    for name in a.params:
        assert same_bits(a.params[name], b.params[name]), name


def test_fit_is_bitwise_the_cli_fit(tmp_path):
    ckpt = tmp_path / "blobs.ckpt"
    spec = "blobs:n=400,centers=3,seed=2"
    subprocess.run([BINARY, "train", os.path.join(MODELS, "blobs.og"), "--data", spec, "--seed", "3", "--epochs", "3",
                    "--batch", "16", "--optim", "adam:lr=0.01", "--save", str(ckpt), "--quiet"], check=True,
                   capture_output=True)
    model = og.load(os.path.join(MODELS, "blobs.og"), seed=3)
    data = og.load_data(spec)
    model.fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=3, batch=16)
    saved = og.load(ckpt)
    assert saved.epochs_done == 3 and saved.meta["data"] == spec and saved.seed == 3
    assert set(saved.params) == set(model.params)
    for name, value in model.params.items():
        assert same_bits(value, saved.params[name]), name


def test_sharded_fit_is_bitwise_the_cli_sharded_run_and_one_shard_is_plain_fit(tmp_path):
    # The data-parallel path in one process (docs/distributed.md): shards=4 gives the bytes
    # of `opgraph train --shards 4` (and so of mpirun -np 1..4); shards=1 those of plain fit.
    spec = "blobs:n=400,centers=3,seed=2"
    ckpt = tmp_path / "sharded.ckpt"
    subprocess.run([BINARY, "train", os.path.join(MODELS, "blobs.og"), "--data", spec, "--seed", "3", "--epochs", "3",
                    "--batch", "16", "--optim", "adam:lr=0.01", "--shards", "4", "--save", str(ckpt), "--quiet"],
                   check=True, capture_output=True)
    data = og.load_data(spec)
    sharded = og.load(os.path.join(MODELS, "blobs.og"), seed=3)
    sharded.fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=3, batch=16, shards=4)
    saved = og.load(ckpt)
    assert saved.meta["shards"] == "4"
    for name, value in sharded.params.items():
        assert same_bits(value, saved.params[name]), name
    plain = og.load(os.path.join(MODELS, "blobs.og"), seed=3)
    plain.fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=3, batch=16)
    one = og.load(os.path.join(MODELS, "blobs.og"), seed=3)
    one.fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=3, batch=16, shards=1)
    for name, value in plain.params.items():
        assert same_bits(value, one.params[name]), name
        assert np.allclose(value, sharded.params[name], rtol=1e-4, atol=1e-6), name
    assert og.distributed() == {"rank": 0, "size": 1, "name": "one process"}


def test_fit_is_bitwise_the_cpp_example_and_any_thread_count():
    # examples/iris.cpp's first run: all 150 flowers standardised, 4-8-3, lr 0.5, 500 epochs.
    cpp, _ = run_json([os.path.join(EXAMPLES, "iris")])
    iris = og.load_data("iris:standardize=true")
    results = []
    for threads in (1, 2):
        og.set_threads(threads)
        g = og.Graph()
        x = g.input("x", ("N", 4))
        y = g.input("y", ("N",))
        h = og.nn.logistic(og.nn.dense(x, 8, "hidden"))
        g.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(h, 3, "out").named("logits"), y).named("loss"))
        model = og.Model(g, seed=1)
        model.fit(iris.x, iris.y, optimizer="sgd:lr=0.5", epochs=500)
        results.append(model)
    og.set_threads(0)
    accuracy = results[0].evaluate(iris.x, iris.y).accuracy
    assert accuracy == pytest.approx(cpp["train_accuracy_all"], abs=5e-7)  # the example prints 6 digits
    for name in results[0].params:
        assert same_bits(results[0].params[name], results[1].params[name]), name


def test_several_inputs_as_a_dict_equal_one_input():
    # concat(a, b) @ W is the same computation as x @ W with x = [a | b], so the two models
    # train to the same bits.
    data = og.load_data("wine:standardize=true")
    models = []
    for split in (False, True):
        g = og.Graph()
        y = g.input("y", ("N",))
        if split:
            h = og.op("concat", g.input("chem", ("N", 9)), g.input("colour", ("N", 4)), axis=1)
        else:
            h = g.input("x", ("N", 13))
        g.set_loss(og.nn.softmax_cross_entropy(og.nn.dense(og.nn.relu(og.nn.dense(h, 16, "a")), 3, "b"), y))
        models.append(og.Model(g, seed=4))
    models[0].fit(data.x, data.y, optimizer="adam:lr=0.01", epochs=5, batch=16)
    h = models[1].fit({"chem": data.x[:, :9], "colour": data.x[:, 9:]}, data.y, optimizer="adam:lr=0.01", epochs=5,
                      batch=16)
    assert h.train_accuracy[-1] > 0.9
    for name in models[0].params:
        assert same_bits(models[0].params[name], models[1].params[name]), name
    e = models[1].evaluate({"chem": data.x[:, :9], "colour": data.x[:, 9:]}, data.y)
    assert e.accuracy == models[0].evaluate(data.x, data.y).accuracy
    with pytest.raises(og.ShapeError, match=r"^fit: input 'colour' has 10 rows, the inputs before it 178$"):
        models[1].fit({"chem": data.x[:, :9], "colour": data.x[:10, 9:]}, data.y)


def test_a_label_free_loss_trains_without_y():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((256, 3)) @ rng.standard_normal((3, 8))).astype(np.float32)  # rank 3 data
    g = og.Graph()
    x = g.input("x", ("N", 8))
    code = og.nn.dense(x, 3, "enc")
    g.set_loss(og.nn.mse(og.nn.dense(code, 8, "dec").named("recon"), x))
    model = og.Model(g, seed=0)
    assert model.labels == ""
    history = model.fit(X, optimizer="adam:lr=0.01", epochs=200, batch=64)
    assert history.train_loss[-1] < history.train_loss[0] / 50
    assert model.evaluate(X).loss == pytest.approx(history.train_loss[-1], rel=0.2)
    assert np.isnan(model.evaluate(X).accuracy)


def test_checkpoints_round_trip_and_the_cli_reads_them(tmp_path):
    data = og.load_data("iris:test=0.3,seed=1")
    model = og.load(os.path.join(MODELS, "iris.og"), seed=1)
    opt = og.Optimizer("sgd:lr=0.5")
    model.fit(data.x, data.y, optimizer=opt, epochs=20)
    path = tmp_path / "iris.ckpt"
    model.save(path, optimizer=opt)
    back = og.load(path)
    assert back.epochs_done == 20 and back.seed == 1
    for name in model.params:
        assert same_bits(model.params[name], back.params[name])
    np.testing.assert_array_equal(back.predict(data.x_test), model.predict(data.x_test))
    out = subprocess.run([BINARY, "eval", os.path.join(MODELS, "iris.og"), "--load", str(path), "--data",
                          "iris:test=0.3,seed=1", "--json"], capture_output=True, text=True, check=True)
    cli = json.loads(out.stdout.strip().splitlines()[-1])
    assert cli["accuracy"] == pytest.approx(model.evaluate(data.x_test, data.y_test).accuracy, abs=1e-6)
    # --resume continues the Python run (the optimizer's state was saved with it).
    subprocess.run([BINARY, "train", os.path.join(MODELS, "iris.og"), "--data", "iris:test=0.3,seed=1", "--resume",
                    str(path), "--epochs", "25", "--optim", "sgd:lr=0.5", "--batch", "0", "--seed", "1", "--quiet"],
                   check=True, capture_output=True)
    with pytest.raises(og.DataError, match="no such file|cannot open|not found"):
        og.load(tmp_path / "missing.ckpt")


def test_dump_and_svg():
    model = blobs_model()
    dot = model.dump()
    assert dot.startswith("digraph opgraph {")
    assert '"hidden.W" [shape=ellipse' in dot and '"y" [shape=parallelogram' in dot and "labels" in dot
    assert "cluster_backward" not in dot and "cluster_backward" in model.dump(backward=True)
    assert '"vjp:loss"' in model.dump(backward=True)
    svg = model._repr_svg_()
    assert svg.startswith("<?xml") and "<svg" in svg and "hidden.W" in svg
    assert "loss = softmax_cross_entropy(logits, y)" in model.dump("og")
    nodes = json.loads(model.dump("json"))["nodes"]
    assert [n["name"] for n in nodes][:2] == ["x", "y"] and nodes[1]["kind"] == "labels"
    assert nodes[0]["origin"].startswith("test_model.py:")
    with pytest.raises(ValueError, match=r"^dump: format is 'dot', 'svg', 'json' or 'og', got 'png'$"):
        model.dump("png")


def test_gradcheck_of_a_model():
    model = blobs_model(dtype="float64")
    data = og.load_data("blobs:n=20,centers=3,seed=1")
    r = model.gradcheck({"x": data.x.astype(np.float64), "y": data.y.astype(np.float64)})
    assert r.passed and 0 < r.max_error < 1e-6


def test_plugins_load_and_check():
    path = os.path.join(PLUGINS, "activations.so")
    names = og.load_plugin(path)
    assert "mish" in names and "snake" in names
    assert "mish" in og.ops(source=path) or "mish" in og.ops()
    report = og.check(plugin=path)
    assert report.passed and {r["op"] for r in report.ops} == set(names)
    assert str(report).splitlines()[-1] == f"{len(names)} ops: {len(names)} passed, 0 failed"
    g = og.Graph()
    x = g.input("x", ("N", 3))
    assert og.nn.mish(x).op == "mish"


def test_predict_keeps_the_heads_shape():
    # A class per position: probabilities [n, T, C] and classes [n, T] (the classes had come
    # flat, [n * T]); values of more than two axes keep them (feature maps had come as
    # [n, H * W, C]). Both agree with the plan's own output.
    model = og.load(os.path.join(MODELS, "transformer_sort.og"), seed=1)
    digits = np.random.default_rng(0).integers(0, 10, (5, 8))
    probs = model.predict({"digits": digits})
    assert probs.shape == (5, 8, 10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)
    classes = model.predict_classes({"digits": digits})
    assert classes.shape == (5, 8) and (classes == probs.argmax(axis=-1)).all()

    g = og.Graph()
    x = g.input("x", ("N", 3, 6, 6))
    w = g.param("w", (4, 3, 3, 3), "he")
    g.add_output(og.nn.conv2d(x, w, padding=1).named("maps"))
    maps = og.Model(g, seed=2)
    images = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    out = maps.predict(images)
    assert out.shape == (2, 4, 6, 6)
    plan = maps.compile(batch=2, mode="eval", keep=["maps"], backward=False)
    plan.forward({"x": images})
    np.testing.assert_array_equal(out, plan.value("maps"))


def test_one_logit_predicts_probabilities_and_classes_at_one_half():
    # A logit head (binary_cross_entropy_with_logits) is read through logistic: predict
    # gives probabilities, and a class is 1 from a probability of 0.5 on (a logit of 0),
    # not from the logits' threshold of 0 applied to the probabilities (always class 1).
    g = og.Graph()
    x = g.input("x", ("N", 1))
    y = g.input("y", ("N", 1))
    g.set_loss(og.nn.binary_cross_entropy_with_logits(og.nn.dense(x, 1, "out"), y))
    model = og.Model(g, seed=0)
    model.set_params({"out.W": np.ones((1, 1), np.float32), "out.b": np.zeros(1, np.float32)})
    samples = np.array([[-2.0], [-0.1], [0.1], [2.0]], np.float32)
    assert np.allclose(model.predict(samples).ravel(), 1 / (1 + np.exp(-samples.ravel())), rtol=1e-6)
    assert model.predict_classes(samples).tolist() == [0, 0, 1, 1]

