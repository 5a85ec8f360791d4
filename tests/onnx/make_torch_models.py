#!/usr/bin/env python3
"""Models made elsewhere, for the ONNX import tests: three small PyTorch networks with
fixed seeds, exported by torch.onnx.export (opset 17, a dynamic batch), with a batch of
inputs and PyTorch's outputs for them (.npy beside each .onnx).

  python3 make_torch_models.py OUT_DIR"""
import os
import sys

import numpy as np
import torch
from torch import nn

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


def mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)), (4,)


def cnn():
    return nn.Sequential(
        # A batch norm after the ReLU: PyTorch folds one that follows a convolution into its
        # weights, so this one stays a BatchNormalization node in the file.
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(6), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, stride=1, padding=0), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 10)), (1, 12, 12)


def ln_gelu():
    return nn.Sequential(nn.Linear(6, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 5), nn.Softmax(dim=1)), (6,)


for name, make in (("mlp", mlp), ("cnn", cnn), ("ln_gelu", ln_gelu)):
    model, shape = make()
    if name == "cnn":  # running statistics that are not 0 and 1, so that eval mode matters
        model.train()
        with torch.no_grad():
            for _ in range(5):
                model(torch.randn(16, *shape))
    model.eval()
    x = torch.randn(37, *shape)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(out, f"{name}.onnx")
    # No constant folding: the batch norms stay BatchNormalization nodes (folded, they would
    # vanish into the convolutions' weights).
    torch.onnx.export(model, x, path, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False)
    np.save(os.path.join(out, f"{name}_x.npy"), x.numpy())
    np.save(os.path.join(out, f"{name}_y.npy"), y.numpy())
    print(f"{path}: {sum(p.numel() for p in model.parameters())} parameters")
