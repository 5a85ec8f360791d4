#!/usr/bin/env python3
"""Models made elsewhere, for the ONNX import tests: small PyTorch networks with fixed
seeds, exported by torch.onnx.export (opset 17, a dynamic batch but for one), with a batch
of inputs and PyTorch's outputs for them (.npy beside each .onnx).

  python3 make_torch_models.py OUT_DIR"""
import math
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


class ViewCNN(nn.Module):
    """The CNN idiom of most tutorials: x.view(x.size(0), -1), which the exporter writes as
    Shape, Gather, Unsqueeze and Concat before a Reshape (or, with a fixed batch, as a
    Reshape to [37, -1]); images without a channel axis get one by unsqueeze(1)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x.unsqueeze(1))), 2)
        return self.fc(x.view(x.size(0), -1))


class ShapeMath(nn.Module):
    """x.reshape(-1, x.size(1) * x.size(2)): a Mul of two gathered sizes; then an Unsqueeze
    and a Squeeze of the data."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        h = self.fc(x.reshape(-1, x.size(1) * x.size(2))).unsqueeze(1)
        return h.squeeze(1)


class Gated(nn.Module):
    """Slices of the data, h[:, :8] and h[:, 8:] (the second ends at INT64_MAX in the file),
    a gated linear unit."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 16)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(torch.relu(h[:, :8]) * torch.sigmoid(h[:, 8:]))


def ceil_pools():
    """Pools with ceil_mode=True where the stride leaves part of the plane (12x12, then 7x7
    and 4x4): a last, partial window at the bottom and right, the average's divisors (with
    and without the padding counted) stopping at the padded input. Then an average pool
    padded by 1 counting the padding, which PyTorch exports as a Pad of zeros before an
    AveragePool. (Not with ceil_mode: PyTorch's exporter writes that as a pool over the
    padded plane, whose last window ONNX keeps where PyTorch itself drops it.)"""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.ReLU(),
        nn.AvgPool2d(2, ceil_mode=True), nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(2, stride=2, padding=1),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 6)), (2, 12, 12)


class Excite(nn.Module):
    """A squeeze-and-excitation gate: the channels' means through two 1x1 convolutions and a
    hard sigmoid, multiplying the maps."""

    def __init__(self, c):
        super().__init__()
        self.pool, self.down, self.up = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x):
        return x * nn.functional.hardsigmoid(self.up(torch.relu(self.down(self.pool(x)))))


def mobile():
    """MobileNet's pieces: ReLU6 (a Clip), a depthwise convolution, Hardswish, a
    squeeze-and-excitation gate (HardSigmoid), PReLU with a slope per channel; SELU,
    Softsign and Hardtanh on the scores."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Hardswish(), Excite(8), nn.PReLU(8), nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 5), nn.SELU(), nn.Softsign(), nn.Hardtanh(-0.5, 0.5)), (3, 16, 16)


class Upsampler(nn.Module):
    """A decoder's upsampling: nn.Upsample by 2, F.interpolate by (3, 2) and to a size, nearest."""

    def __init__(self):
        super().__init__()
        self.conv1, self.up, self.conv2 = nn.Conv2d(2, 4, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(4, 3, 3)
        self.fc = nn.Linear(3 * 24 * 12, 4)

    def forward(self, x):
        h = self.conv2(self.up(torch.relu(self.conv1(x))))  # 5x4 -> 10x8 -> 8x6
        h = nn.functional.interpolate(h, scale_factor=(3, 2), mode="nearest")  # 24x12
        h = nn.functional.interpolate(h, size=(48, 24), mode="nearest")  # sizes from Shape: 48x24, pooled to 24x12
        return self.fc(nn.functional.max_pool2d(h, 2).flatten(1))


def upsampler():
    return Upsampler(), (2, 5, 4)


class Bilinear(nn.Module):
    """A segmentation head's upsampling: bilinear by 2 (half-pixel) and by (2, 3) with aligned corners."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.fc = nn.Linear(2 * 12 * 30, 3)

    def forward(self, x):  # [N, 3, 3, 5]
        h = self.conv2(self.up(torch.relu(self.conv1(x))))  # 6x10
        h = nn.functional.interpolate(h, scale_factor=(2, 3), mode="bilinear", align_corners=True)  # 12x30
        return self.fc(h.flatten(1))


def bilinear():
    return Bilinear(), (3, 3, 5)


def regressor():
    """One value per sample and no activation after it: a regression."""
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)), (3,)


def binary():
    """One Sigmoid output: a binary classifier's probability."""
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid()), (2,)


def gated():
    return Gated(), (5,)


def view_cnn():
    return ViewCNN(), (12, 12)


def shape_math():
    return ShapeMath(), (3, 4)


class Sequence1d(nn.Module):
    """A sequence model of 1-D layers: Conv1d (padded; strided, dilated and grouped; without
    bias), BatchNorm1d, MaxPool1d and AvgPool1d (count_include_pad=False), and a global
    average over the length squeezed away."""

    def __init__(self):
        super().__init__()
        self.c0, self.bn = nn.Conv1d(3, 8, 5, padding=2), nn.BatchNorm1d(8)
        self.c1 = nn.Conv1d(8, 8, 3, stride=2, dilation=2, groups=2)
        self.c2, self.out = nn.Conv1d(8, 4, 3, padding=1, bias=False), nn.Linear(4, 3)

    def forward(self, x):
        h = nn.functional.max_pool1d(torch.relu(self.bn(self.c0(x))), 2)
        h = nn.functional.avg_pool1d(torch.relu(self.c1(h)), 3, stride=2, padding=1, count_include_pad=False)
        h = torch.relu(self.c2(h))
        return self.out(nn.functional.adaptive_avg_pool1d(h, 1).squeeze(-1))


def sequence1d():
    return Sequence1d(), (3, 32)


class Norms(nn.Module):
    """F.normalize (ReduceL2, a Clip and an Expand of the norms to x's computed shape, then a
    Div), the L1 norm (ReduceL1), the sum of squares (Mul, ReduceSum) and the minimum
    (ReduceMin) over the features."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 6), nn.Linear(9, 2)

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.cat([nn.functional.normalize(h, dim=1), h.norm(p=1, dim=1, keepdim=True),
                                 (h * h).sum(1, keepdim=True), h.min(dim=1, keepdim=True).values], 1))


def norms():
    return Norms(), (5,)


class Fresh(nn.Module):
    """What PyTorch writes for three common idioms: a fresh BatchNorm1d (its running variance
    and mean equal to its weight and bias, ones and zeros, so the exporter keeps one
    initializer of each and writes the others as Identity nodes), x.std(1) (the count of
    values from Shape, ReduceProd and a Cast, less one), and torch.where(h > 0, h,
    torch.zeros_like(h)) (a ConstantOfShape sized by the batch)."""

    def __init__(self):
        super().__init__()
        self.a, self.bn, self.b = nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.bn(self.a(x))
        h = torch.where(h > 0, h, torch.zeros_like(h)) / h.std(1, keepdim=True)
        return self.b(h)


def fresh():
    return Fresh(), (5,)


class Positions(nn.Module):
    """A sequence's last and first positions, x[:, -1] and x[:, 0] (Gather of one constant
    index along axis 1), positions [2, 0] (of two), after a CELU."""

    def __init__(self):
        super().__init__()
        self.celu, self.fc = nn.CELU(0.7), nn.Linear(3 * 4, 3)

    def forward(self, x):
        h = self.celu(x)
        return self.fc(torch.cat([h[:, -1], h[:, 0], h[:, [2, 0]].flatten(1)], 1))


def positions():
    return Positions(), (4, 3)


def transposed():
    """A decoder's upsampling by nn.ConvTranspose2d: kernel 3, stride 2, padding 1 and
    output_padding 1; kernel 4, stride 2, padding 1 without bias (DCGAN's); a rectangular
    one of strides (2, 3); kernel 3 padded by 3 (a crop)."""
    return nn.Sequential(nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1, bias=False),
                         nn.ConvTranspose2d(2, 2, (3, 2), stride=(2, 3), padding=(2, 0), output_padding=(1, 2)),
                         nn.ConvTranspose2d(2, 1, 3, padding=3), nn.Flatten(), nn.Linear(18 * 45, 4)), (2, 3, 4)


def group_norms():
    """nn.GroupNorm (exported as a Reshape to [N, G, -1] around an InstanceNormalization
    whose scale and bias are ones and zeros, then the affine per channel) and
    nn.InstanceNorm2d with its affine weights, trained away from ones and zeros."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Conv2d(4, 4, 3),
                          nn.InstanceNorm2d(4, affine=True), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        for m in (model[1], model[4]):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return model, (2, 8, 8)


class Encoder(nn.Module):
    """nn.TransformerEncoder, two pre-norm layers with GELU, and a head per position: each
    layer's nn.MultiheadAttention reshapes [T, N, 16] to [T, N·2, 8], the batch and the
    heads folded into one axis, multiplies per (sample, head), and folds [T, N·2, 8] back
    to [T·N, 16] for its output projection."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.enc(x))


def encoder():
    return Encoder(), (6, 16)


class Causal(nn.Module):
    """A post-norm encoder layer under a causal mask (a buffer, generate_square_subsequent_mask):
    the exporter adds it, [1, T, T], to the scores [N·2, T, T] that fold the batch."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(6))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.enc(x, mask=self.mask))


def causal():
    return Causal(), (6, 16)


class Decoder(nn.Module):
    """nn.TransformerDecoderLayer: self-attention, then attention to a memory (here the
    first 3 positions of the input), both folding the batch with the heads."""

    def __init__(self):
        super().__init__()
        self.dec = nn.TransformerDecoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.dec(x, x[:, :3]))


def decoder():
    return Decoder(), (6, 16)


class Attend(nn.Module):
    """nn.MultiheadAttention alone, with its weights averaged over the heads (need_weights,
    PyTorch's default: [N·3, T, T] viewed as [N, 3, T, T]) used beside its output."""

    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(12, 3, batch_first=True)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        a, w = self.att(x, x, x)
        return self.fc(a.mean(1)) + w.mean((1, 2)).unsqueeze(1)


def attend():
    return Attend(), (9, 12)


class TinyViT(nn.Module):
    """torchvision's ViT in small: patches, a class token expanded to the batch
    (class_token.expand(n, -1, -1): Reshape, Equal and Where of the shape, then Expand),
    position embeddings, an encoder layer, the class token's row read by the head."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.class_token = nn.Parameter(torch.randn(1, 1, 16))
        self.pos = nn.Parameter(torch.randn(1, 5, 16) * 0.1)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.norm, self.head = nn.LayerNorm(16), nn.Linear(16, 3)

    def forward(self, x):  # [N, 3, 8, 8]
        n = x.shape[0]
        h = self.patch(x).reshape(n, 16, 4).permute(0, 2, 1)
        h = torch.cat([self.class_token.expand(n, -1, -1), h], dim=1) + self.pos
        return self.head(self.norm(self.enc(h))[:, 0])


def tiny_vit():
    return TinyViT(), (3, 8, 8)


class Shuffler(nn.Module):
    """nn.PixelShuffle (DepthToSpace), nn.PixelUnshuffle and x.repeat (Tile)."""

    def __init__(self):
        super().__init__()
        self.up = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.PixelShuffle(2), nn.ReLU())
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.down = nn.PixelUnshuffle(2)
        self.fc = nn.Linear(32 * 6 * 12, 5)

    def forward(self, x):  # [N, 4, 6, 6]
        h = self.down(self.conv(self.up(x)))  # [N, 4, 12, 12], then [N, 16, 6, 6]
        return self.fc(h.repeat(1, 2, 1, 2).flatten(1))  # [N, 32, 6, 12]


def shuffler():
    return Shuffler(), (4, 6, 6)


class LearnedPositions(nn.Module):
    """A GPT's inputs: tokens through a linear layer plus an embedding of the positions
    torch.arange(T) computed in forward (Range from the input's shape, then Gather from the
    table: rows picked by indices known at import)."""

    def __init__(self):
        super().__init__()
        self.tok, self.pos, self.head = nn.Linear(8, 16), nn.Embedding(32, 16), nn.Linear(16, 4)

    def forward(self, x):  # [N, 10, 8]
        p = torch.arange(0, x.shape[1], dtype=torch.long)
        return self.head(torch.relu(self.tok(x) + self.pos(p)))


def learned_positions():
    return LearnedPositions(), (10, 8)


class Sinusoidal(nn.Module):
    """The transformer's sinusoidal position encoding computed in forward: Range, Exp, Sin and
    Cos of positions, written into zeros at the even and odd columns (ScatterND)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 4)

    def forward(self, x):  # [N, 10, 16]
        t, d = x.shape[1], x.shape[2]
        pos = torch.arange(t, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe = torch.zeros(t, d)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return self.head(x + pe)


def sinusoidal():
    return Sinusoidal(), (10, 16)


class WindowMask(nn.Module):
    """Attention over a 4x4 grid of tokens restricted to the regions of a shifted window, the
    mask built in forward as Swin builds it: region numbers written into zeros by slices
    (ScatterND), their differences compared with 0 and filled with -100 (Where); a relative
    position bias read from a table by indices computed from torch.arange and meshgrid
    (Gather of a weight by a [16, 16] index); an upper-triangular mask (Trilu) and a
    cumulative sum (CumSum) of constants."""

    def __init__(self):
        super().__init__()
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 3)
        self.table = nn.Parameter(torch.randn(49, 1) * 0.5)

    def forward(self, x):  # [N, 16, 8]
        side, w, s = 4, 2, 1
        ids = x.new_zeros((side, side))
        count = 0
        for h in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            for v in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                ids[h, v] = count
                count += 1
        ids = ids.reshape(-1)
        mask = ids.unsqueeze(1) - ids.unsqueeze(0)
        mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        coords = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (side - 1)
        index = rel[:, :, 0] * (2 * side - 1) + rel[:, :, 1]  # [16, 16] in [0, 49)
        bias = self.table[index.reshape(-1)].reshape(16, 16)
        later = torch.triu(torch.ones(16, 16), diagonal=12) * torch.cumsum(torch.ones(16), 0) * -0.01
        q, k, v = self.qkv(x).split(8, dim=-1)
        scores = q @ k.transpose(1, 2) / math.sqrt(8.0) + mask + bias + later
        return self.out(torch.softmax(scores, dim=-1) @ v)


def window_mask():
    return WindowMask(), (16, 8)


class Recurrent(nn.Module):
    """nn.LSTM, nn.GRU or nn.RNN over a sequence (batch first: a Transpose to [T, N, I]
    before, and back after), stacked and bidirectional as asked; the head reads the last
    position's outputs (Y), or with `final` the last layer's final state (Y_h)."""

    def __init__(self, cell, layers=1, bidirectional=False, final=False):
        super().__init__()
        self.rnn = cell(6, 8, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.final = final
        self.head = nn.Linear(8 * (2 if bidirectional and not final else 1), 3)

    def forward(self, x):  # [N, 7, 6]
        out, state = self.rnn(x)
        if self.final:
            h = state[0] if isinstance(state, tuple) else state
            return self.head(h[-1])
        return self.head(out[:, -1])


def lstm():
    return Recurrent(nn.LSTM), (7, 6)


def gru():
    return Recurrent(nn.GRU), (7, 6)


def rnn():
    return Recurrent(nn.RNN, layers=2, final=True), (7, 6)


def bilstm():
    return Recurrent(nn.LSTM, layers=2, bidirectional=True), (7, 6)


def bigru_final():
    return Recurrent(nn.GRU, bidirectional=True, final=True), (7, 6)


def lstm_final():
    return Recurrent(nn.LSTM, final=True), (7, 6)


class Einsums(nn.Module):
    """torch.einsum as attention and bilinear layers write it (MaxViT's and the Performer's
    "b h i d, b h j d -> b h i j"): batch labels, contractions, a free label on each side, a
    label summed in one operand alone, an implicit output, a transpose."""

    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)
        self.bilinear = nn.Parameter(torch.randn(8, 8, 3) * 0.3)
        self.mix = nn.Parameter(torch.randn(3, 3) * 0.5)
        self.head = nn.Linear(3 + 5 + 5, 4)

    def forward(self, x):  # [N, 5, 8]
        q = self.q(x).reshape(-1, 5, 2, 4).transpose(1, 2)  # [N, 2, 5, 4]
        k = self.k(x).reshape(-1, 5, 2, 4).transpose(1, 2)
        scores = torch.softmax(torch.einsum("b h i d, b h j d -> b h i j", q, k), dim=-1)
        mixed = torch.einsum("bhij,bhjd->bhid", scores, q)  # [N, 2, 5, 4]
        pooled = x.mean(1)  # [N, 8]
        bil = torch.einsum("bij,jk->bik", torch.einsum("bi,ijk->bjk", pooled, self.bilinear), self.mix)[:, 0]
        bil = bil + pooled @ torch.einsum("ik,kj", self.bilinear[:, :, 0], self.bilinear[:, 0, :])  # implicit: "ij"
        bil = bil + torch.einsum("kj,bj->bk", self.bilinear[:3, :, 1], pooled)  # the batch a free label of the second
        per_pos = torch.einsum("bhid->bi", mixed)  # [N, 5]: two labels summed
        gram = torch.einsum("bid,bjd->bji", x, x)[:, :, 0]  # [N, 5]
        return self.head(torch.cat([bil, per_pos, gram], dim=1))


def einsums():
    return Einsums(), (5, 8)


class Tokens(nn.Module):
    """A BERT-style encoder over token ids (an int64 input): its padding mask computed from the
    ids (ids != 0, then (1 - mask) * -10000 added to the scores), positions
    torch.arange(T).expand(n, T) read from their table, one attention layer with GELU, and
    the first token's vector classified."""

    def __init__(self, vocab=30, d=16, heads=2, length=9):
        super().__init__()
        self.tok, self.pos, self.ln = nn.Embedding(vocab, d), nn.Embedding(length, d), nn.LayerNorm(d)
        self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 32), nn.GELU(), nn.Linear(32, d))
        self.ln2, self.cls = nn.LayerNorm(d), nn.Linear(d, 2)
        self.heads, self.d = heads, d

    def forward(self, ids):  # [N, 9] int64, 0 the padding
        n, t = ids.shape
        mask = (ids != 0).float()
        ext = (1.0 - mask[:, None, None, :]) * -10000.0
        pos = torch.arange(t, dtype=torch.long).unsqueeze(0).expand(n, t)
        h = self.ln(self.tok(ids) + self.pos(pos))
        q, k, v = (z.view(n, t, self.heads, self.d // self.heads).transpose(1, 2) for z in self.qkv(h).split(self.d, -1))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d // self.heads) + ext, dim=-1)
        h = self.ln2(h + self.o((a @ v).transpose(1, 2).reshape(n, t, self.d)))
        return self.cls((h + self.ff(h))[:, 0])


def tokens():
    return Tokens(), None


class Running(nn.Module):
    """Running sums of the data (torch.cumsum: CumSum of a tensor of the graph) along the
    positions and the features, as a cumulative pooling, then a head per sample."""

    def __init__(self):
        super().__init__()
        self.lin, self.head = nn.Linear(4, 4), nn.Linear(6 * 4, 3)

    def forward(self, x):  # [N, 6, 4]
        h = torch.tanh(self.lin(x)).cumsum(1) / torch.arange(1, 7, dtype=torch.float32).unsqueeze(1)
        return self.head((h + h.cumsum(-1)).flatten(1))


def running():
    return Running(), (6, 4)


class Flip(nn.Module):
    """torch.flip of data along the positions, and along positions and features (Slice with a
    step of -1 from the end to before the start)."""

    def __init__(self):
        super().__init__()
        self.lin, self.head = nn.Linear(4, 4), nn.Linear(24, 3)

    def forward(self, x):  # [N, 6, 4]
        h = torch.tanh(self.lin(x))
        return self.head((h + torch.flip(h, [1]) * 0.5 + torch.flip(h, [1, 2]) * 0.25).flatten(1))


def flip():
    return Flip(), (6, 4)


class Padded(nn.Module):
    """Padding that reads the image (style transfer's and CycleGAN's convolutions): mirrored
    and repeated edges, a convolution's own padding_mode, a sequence mirrored, and a global
    max pool (nn.AdaptiveMaxPool2d(1))."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.ReflectionPad2d((1, 2, 3, 0)), nn.Conv2d(2, 4, 3), nn.ReLU())
        self.b = nn.Sequential(nn.ReplicationPad2d(2), nn.Conv2d(4, 4, 3, stride=2))
        self.c = nn.Conv2d(4, 3, 3, padding=1, padding_mode="reflect")
        self.d = nn.Conv2d(3, 3, 3, padding=2, padding_mode="replicate")
        self.seq = nn.Sequential(nn.ReflectionPad1d(2), nn.Conv1d(3, 2, 3))
        self.head = nn.Linear(3 + 2 * 9, 4)

    def forward(self, x):  # [N, 2, 7, 6]
        h = self.d(self.c(self.b(self.a(x))))
        g = nn.functional.adaptive_max_pool2d(h, 1).flatten(1)
        s = self.seq(h.mean(2))  # [N, 3, W] mirrored along W
        return self.head(torch.cat([g, s.flatten(1)[:, :18]], 1))


class EllipsisEinsums(nn.Module):
    """torch.einsum with an ellipsis for the leading axes ("...id,...jd->...ij"), one operand
    without it, and an ellipsis summed away ("b...d->bd")."""

    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)
        self.w = nn.Parameter(torch.randn(8, 3) * 0.3)
        self.gain = nn.Parameter(torch.randn(6, 8))  # its ellipsis one axis, x's two: aligned on the right
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # [N, 6, 8]
        x = torch.einsum("...d,...d->...d", x, self.gain)
        a = torch.einsum("...id,...jd->...ij", self.q(x), self.k(x)).softmax(-1)
        v = torch.einsum("...ij,...jd->...id", a, x)
        return self.head(torch.einsum("b...d->bd", v)) + torch.einsum("...d,de->...e", v, self.w).sum(1)


def ellipsis_einsums():
    return EllipsisEinsums(), (6, 8)


def padded():
    return Padded(), (2, 7, 6)


def transposed1d():
    """ConvTranspose1d (an audio decoder's upsampling): strided with output_padding and pads,
    then one without a bias."""
    return nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReLU(), nn.ConvTranspose1d(4, 3, 4, stride=3, padding=1, output_padding=2),
                         nn.Tanh(), nn.ConvTranspose1d(3, 2, 3, bias=False), nn.Flatten(), nn.Linear(2 * 27, 5)), (3, 10)


# The models whose input gradients PyTorch computes for the tests (autograd through the
# model it exported), at this batch: float inputs and class scores.
GRADIENTS = ("cnn", "encoder", "decoder", "tiny_vit", "window_mask", "sinusoidal", "learned_positions", "lstm", "gru",
             "rnn", "bilstm", "bigru_final", "einsums", "bilinear", "transposed", "group_norms", "norms", "mobile",
             "running", "flip", "padded", "transposed1d", "ellipsis_einsums")
GRADIENT_BATCH = 5

# The models also exported at opsets 11 and 12.
OLD_OPSETS = ("mlp", "cnn", "ln_gelu", "view_cnn", "shape_math", "gated", "sequence1d", "norms", "encoder", "tiny_vit",
              "bilinear", "lstm", "gru")

# name, model, whether the batch is dynamic (a fixed batch lets the exporter fold the shapes)
for name, make, dynamic in (("mlp", mlp, True), ("cnn", cnn, True), ("ln_gelu", ln_gelu, True),
                            ("view_cnn", view_cnn, True), ("view_cnn_static", view_cnn, False),
                            ("shape_math", shape_math, True), ("gated", gated, True),
                            ("ceil_pools", ceil_pools, True), ("mobile", mobile, True),
                            ("regressor", regressor, True), ("binary", binary, True),
                            ("upsampler", upsampler, True), ("sequence1d", sequence1d, True), ("norms", norms, True),
                            ("fresh", fresh, True), ("fresh_static", fresh, False), ("group_norms", group_norms, True),
                            ("positions", positions, True), ("transposed", transposed, True),
                            ("encoder", encoder, True), ("encoder_static", encoder, False), ("attend", attend, True),
                            ("causal", causal, True), ("decoder", decoder, True), ("shuffler", shuffler, True), ("bilinear", bilinear, True), ("tiny_vit", tiny_vit, True),
                            ("shuffler_static", shuffler, False), ("learned_positions", learned_positions, True),
                            ("sinusoidal", sinusoidal, True), ("window_mask", window_mask, True),
                            ("window_mask_static", window_mask, False), ("lstm", lstm, True), ("gru", gru, True),
                            ("rnn", rnn, True), ("bilstm", bilstm, True), ("bigru_final", bigru_final, True),
                            ("lstm_final", lstm_final, True), ("einsums", einsums, True), ("tokens", tokens, True),
                            ("running", running, True), ("flip", flip, True),
                            # Exported with a fixed batch, the zero initial states are constants
                            # of it expanded to [layers, N, H] (batch at axis 1).
                            ("bilstm_static", bilstm, False), ("rnn_static", rnn, False),
                            ("gru_static", gru, False), ("padded", padded, True),
                            ("transposed1d", transposed1d, True), ("ellipsis_einsums", ellipsis_einsums, True)):
    model, shape = make()
    if name in ("cnn", "sequence1d"):  # running statistics that are not 0 and 1, so that eval mode matters
        model.train()
        with torch.no_grad():
            for _ in range(5):
                model(torch.randn(16, *shape))
    model.eval()
    if shape is None:  # token ids, the last positions of some sequences padding (0)
        x = torch.randint(1, 30, (37, 9))
        for row in range(0, 37, 3):
            x[row, 9 - row % 5:] = 0
    else:
        x = torch.randn(37, *shape)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(out, f"{name}.onnx")
    # No constant folding: the batch norms stay BatchNormalization nodes (folded, they would
    # vanish into the convolutions' weights).
    if dynamic:
        torch.onnx.export(model, x, path, opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False)
    else:
        torch.onnx.export(model, x, path, opset_version=17, input_names=["x"], output_names=["y"])
    np.save(os.path.join(out, f"{name}_x.npy"), x.numpy())
    np.save(os.path.join(out, f"{name}_y.npy"), y.numpy())
    if name in GRADIENTS:  # PyTorch's gradient of the mean cross-entropy over the input, for labels drawn here
        xg = x[:GRADIENT_BATCH].clone().requires_grad_(True)
        scores = model(xg)
        labels = torch.randint(0, scores.shape[-1], scores.shape[:-1], generator=torch.Generator().manual_seed(7))
        nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), labels.reshape(-1)).backward()
        np.save(os.path.join(out, f"{name}_labels.npy"), labels.numpy())
        np.save(os.path.join(out, f"{name}_dx.npy"), xg.grad.numpy())
    # Opsets 11 and 12, as older exporters write them (axes and sizes as attributes, softmax
    # over a flattened matrix, layer norm and GELU decomposed).
    if name in OLD_OPSETS:
        for opset in (11, 12):
            old = f"{name}_opset{opset}"
            torch.onnx.export(model, x, os.path.join(out, f"{old}.onnx"), opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                              do_constant_folding=False)
            np.save(os.path.join(out, f"{old}_x.npy"), x.numpy())
            np.save(os.path.join(out, f"{old}_y.npy"), y.numpy())
    print(f"{path}: {sum(p.numel() for p in model.parameters())} parameters")
