#!/usr/bin/python3
"""PyTorch's training step of examples/models/lenet.og or resnet_mnist.og, for
build/bench/conv_bench: the same layers, batch, float32 and plain SGD; prints the median
ms of one step (forward, cross-entropy, backward, SGD update).
   cnn_torch.py lenet|resnet BATCH THREADS REPS"""
import os
import sys
import time

model, batch, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(threads)
torch.manual_seed(0)


def conv_bn(cin, cout, k, stride, pad):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = conv_bn(c, c, 3, 1, 1), conv_bn(c, c, 3, 1, 1)

    def forward(self, x):
        return F.relu(x + self.b(F.relu(self.a(x))))


class Downsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a, self.b, self.proj = conv_bn(cin, cout, 3, 2, 1), conv_bn(cout, cout, 3, 1, 1), conv_bn(cin, cout, 1, 2, 0)

    def forward(self, x):
        return F.relu(self.proj(x) + self.b(F.relu(self.a(x))))


if model == "lenet":
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
else:
    net = nn.Sequential(conv_bn(1, 8, 3, 1, 1), nn.ReLU(), Residual(8), Downsample(8, 16), Downsample(16, 32),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
net.train()
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))


def step():
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()


step()
t = []
for _ in range(reps):
    t0 = time.perf_counter()
    step()
    t.append(time.perf_counter() - t0)
t.sort()
print(t[len(t) // 2] * 1e3)
