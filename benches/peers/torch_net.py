#!/usr/bin/python3
"""The learned-kernel network of geofuse (src/learned/model.rs) in PyTorch, timed on the CPU.

Same layers and sizes: optical encoder (11 -> 16 -> 16 -> 16 channels, 3x3, 3x3, 3x3 dilated
by 2, ReLU), SAR encoder (3 -> 16 ...), a 3x3 convolution predicting 2 x 3 x 3 kernel logits
from both latents and presence flags, the kernel fusion (softmax over the 18 taps, missing taps
masked), three heteroscedastic heads (1x1 16 -> 16, ReLU, 1x1 16 -> K + 1) and the precision
weighting; input normalisation included. Random weights (speed does not depend on them),
torch.set_num_threads(os.cpu_count()). Prints `ms <median of 7 runs>` for one tile of
SIZE x SIZE plus the 5-pixel halo.

    torch_net.py SIZE
"""
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(os.cpu_count())
torch.manual_seed(0)
W, K, R = 16, 7, 1  # width, classes, kernel radius


def encoder(cin):
    return nn.Sequential(
        nn.Conv2d(cin, W, 3, padding=1), nn.ReLU(),
        nn.Conv2d(W, W, 3, padding=1), nn.ReLU(),
        nn.Conv2d(W, W, 3, padding=2, dilation=2), nn.ReLU())


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Conv2d(W, W, 1), nn.Conv2d(W, K + 1, 1)

    def forward(self, z):
        o = self.out(F.relu(self.hidden(z)))
        return o[:, :K], o[:, K:].clamp(-8, 8)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.opt, self.sar = encoder(11), encoder(3)
        self.mix = nn.Conv2d(2 * W + 2, 2 * (2 * R + 1) ** 2, 3, padding=1)
        self.heads = nn.ModuleList([Head(), Head(), Head()])

    def forward(self, raw, mean, std):
        valid = ~torch.isnan(raw)
        po = valid[:, :10].all(1, keepdim=True).float()
        ps = valid[:, 10:12].all(1, keepdim=True).float()
        z = torch.nan_to_num((raw - mean) / std)
        xo = torch.cat([z[:, :10] * po, po], 1)
        xs = torch.cat([z[:, 10:12] * ps, ps], 1)
        fo, fs = self.opt(xo), self.sar(xs)
        logits = self.mix(torch.cat([fo, fs, po, ps], 1))
        k = 2 * R + 1
        h, w = fo.shape[2:]
        taps, masks = [], []
        for f, p in ((fo, po), (fs, ps)):
            fp, pp = F.pad(f, (R, R, R, R)), F.pad(p, (R, R, R, R))
            for dy in range(k):
                for dx in range(k):
                    taps.append(fp[:, :, dy:dy + h, dx:dx + w])
                    masks.append(pp[:, :, dy:dy + h, dx:dx + w])
        wts = torch.softmax(logits + (torch.cat(masks, 1) - 1.0) * 1e4, 1)
        joint = sum(t * wts[:, i:i + 1] for i, t in enumerate(taps))
        outs = [hd(m) for hd, m in zip(self.heads, (fo, fs, joint))]
        pres = (po, ps, po * ps)
        pis = [p * torch.exp(-lv) for (mu, lv), p in zip(outs, pres)]
        tot = sum(pis).clamp_min(1e-7)
        mu = sum(pi * mu for pi, (mu, _) in zip(pis, outs)) / tot
        return mu, -torch.log(tot)


size = int(sys.argv[1]) if len(sys.argv) > 1 else 256
side = size + 2 * 5
net = Net().eval()
raw = torch.rand(1, 12, side, side)
mean, std = torch.full((1, 12, 1, 1), 0.5), torch.full((1, 12, 1, 1), 0.3)
times = []
with torch.inference_mode():
    for i in range(9):
        t = time.perf_counter()
        mu, lv = net(raw, mean, std)
        mu.numpy(), lv.numpy()
        if i >= 2:
            times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, tile {size}^2 + halo")
print(f"ms {times[len(times) // 2]:.2f}")
