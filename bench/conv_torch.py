#!/usr/bin/python3
"""PyTorch's conv2d on one shape, for build/bench/conv_bench: prints the median ms of the
forward pass, of the input gradient alone and of the kernel gradient alone.
   conv_torch.py BATCH CHANNELS PLANE KERNEL THREADS REPS"""
import os
import sys
import time

n, c, hw, k, threads, reps = (int(a) for a in sys.argv[1:7])
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(threads)
torch.manual_seed(0)
x = torch.rand(n, c, hw, hw) * 2 - 1
w = torch.rand(c, c, k, k) * 2 - 1
g = torch.rand(n, c, hw, hw) * 2 - 1


def median_ms(f):
    f()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    t.sort()
    return t[len(t) // 2] * 1e3


with torch.no_grad():
    print("forward", median_ms(lambda: F.conv2d(x, w, padding=k // 2)))
xg = x.clone().requires_grad_(True)
wg = w.clone().requires_grad_(True)
# Each gradient alone, as opgraph's passes are timed: the forward is outside the timing.
y = F.conv2d(xg, w, padding=k // 2)
print("dx", median_ms(lambda: torch.autograd.grad(y, xg, g, retain_graph=True)))
y = F.conv2d(x, wg, padding=k // 2)
print("dw", median_ms(lambda: torch.autograd.grad(y, wg, g, retain_graph=True)))
