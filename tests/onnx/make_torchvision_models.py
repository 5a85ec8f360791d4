#!/usr/bin/env python3
"""Architectures as torchvision builds them, for the ONNX import tests: random weights
(fixed seed; parameters torchvision starts at zero, such as ViT's head, drawn too, so
that outputs are not zero), exported by torch.onnx.export (opset 17, a dynamic batch),
with a batch of inputs and PyTorch's outputs (.npy beside each .onnx).

  python3 make_torchvision_models.py OUT_DIR"""
import os
import sys
import warnings

import numpy as np
import torch
import torchvision.models as tm
import torchvision.models.segmentation as seg

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


class Out(torch.nn.Module):
    """A segmentation model's "out" map, the tensor its dict holds."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


MODELS = {  # name: (builder, image side)
    "resnet18": (lambda: tm.resnet18(weights=None), 64),
    "mobilenet_v3_small": (lambda: tm.mobilenet_v3_small(weights=None), 64),
    "efficientnet_b0": (lambda: tm.efficientnet_b0(weights=None), 64),
    "shufflenet_v2_x0_5": (lambda: tm.shufflenet_v2_x0_5(weights=None), 64),
    "squeezenet1_1": (lambda: tm.squeezenet1_1(weights=None), 64),
    "regnet_y_400mf": (lambda: tm.regnet_y_400mf(weights=None), 64),
    "vit": (lambda: tm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                         mlp_dim=64, num_classes=10), 32),
    "lraspp": (lambda: Out(seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)), 64),
    # Shifted windows: masks and relative position indices computed in forward (Mod, Range,
    # ScatterND, folded at import), the windows folding the batch ([N·4, 16, 24]).
    "swin": (lambda: tm.SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4],
                                        window_size=[4, 4], num_classes=10), 32),
}

for name, (build, side) in MODELS.items():
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.05)
    model.eval()
    x = torch.randn(3, 3, side, side)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(out, f"{name}.onnx")
    torch.onnx.export(model, x, path, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    np.save(os.path.join(out, f"{name}_x.npy"), x.numpy())
    np.save(os.path.join(out, f"{name}_y.npy"), y.numpy())
    print(f"{path}: {sum(p.numel() for p in model.parameters())} parameters")
