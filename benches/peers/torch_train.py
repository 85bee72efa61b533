#!/usr/bin/python3
"""One training step of geofuse's learned-kernel network in PyTorch, timed on the CPU.

The same network as `geofuse bench-net --train --encoder ENCODER` (src/learned/model.rs,
src/learned/unet.rs, src/learned/train.rs): optical and SAR encoders (small: 3x3, 3x3, 3x3
dilated by 2; unet: four levels, 2x2 average pooling, nearest upsampling, skip connections,
channels 16/32/32/32), the 3x3 convolution predicting the 18 kernel logits, the kernel fusion,
three heteroscedastic heads with dropout 0.5 on their hidden layer, precision weighting; the
loss of the fused prediction plus each expert's (sampled softmax over 2 antithetic pairs of
logit noise), modality dropout 0.2, a random flip/rotation per patch, AdamW (lr 3e-3, weight
decay 1e-4). A step = input assembly + forward + backward + update. Random data, every pixel
labelled; torch.set_num_threads(os.cpu_count()). Prints `ms <median of STEPS steps>` after two
warm-up steps.

    torch_train.py ENCODER BATCH PATCH STEPS
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


def small(cin):
    return nn.Sequential(
        nn.Conv2d(cin, W, 3, padding=1), nn.ReLU(),
        nn.Conv2d(W, W, 3, padding=1), nn.ReLU(),
        nn.Conv2d(W, W, 3, padding=2, dilation=2), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, cin):
        super().__init__()
        ch = [W, 2 * W, 2 * W, 2 * W]
        self.down = nn.ModuleList(nn.Sequential(
            nn.Conv2d(cin if l == 0 else ch[l - 1], ch[l], 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch[l], ch[l], 3, padding=1), nn.ReLU()) for l in range(4))
        self.up = nn.ModuleList(nn.Conv2d(ch[l + 1] + ch[l], ch[l], 3, padding=1)
                                for l in (2, 1, 0))

    def forward(self, x):
        h, w = x.shape[2:]
        x = F.pad(x, (0, -w % 8, 0, -h % 8))
        skips = []
        for l, blk in enumerate(self.down):
            if l > 0:
                x = F.avg_pool2d(x, 2)
            x = blk(x)
            skips.append(x)
        skips.pop()
        for conv in self.up:
            x = F.relu(conv(torch.cat([F.interpolate(x, scale_factor=2), skips.pop()], 1)))
        return x[:, :, :h, :w]


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Conv2d(W, W, 1), nn.Conv2d(W, K + 1, 1)

    def forward(self, z):
        o = self.out(F.dropout(F.relu(self.hidden(z)), 0.5, True))
        return o[:, :K], o[:, K:].clamp(-8, 8)


class Net(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        enc = UNet if encoder == "unet" else small
        self.opt, self.sar = enc(11), enc(3)
        self.mix = nn.Conv2d(2 * W + 2, 2 * (2 * R + 1) ** 2, 3, padding=1)
        self.heads = nn.ModuleList([Head(), Head(), Head()])

    def forward(self, xo, xs, po, ps):
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
        return (mu, -torch.log(tot)), outs, pres


def nll(mu, lv, y, eps):
    sigma = torch.exp(0.5 * lv)
    lps = torch.stack([F.log_softmax(mu + sigma * e, 1).gather(1, y) for e in eps])
    return -(torch.logsumexp(lps, 0) - torch.log(torch.tensor(float(len(eps)))))


def step(net, optim, raw, labels, mean, std):
    b = raw.shape[0]
    code = torch.randint(0, 8, (b,))
    raw = torch.stack([torch.rot90(r, int(c) % 4, (1, 2)) for r, c in zip(raw, code)])
    valid = ~torch.isnan(raw)
    po = valid[:, :10].all(1, keepdim=True).float()
    ps = valid[:, 10:12].all(1, keepdim=True).float()
    drop = torch.rand(b, 1, 1, 1)
    po, ps = po * (drop >= 0.1), ps * ((drop < 0.1) | (drop >= 0.2))
    z = torch.nan_to_num((raw - mean) / std)
    xo, xs = torch.cat([z[:, :10] * po, po], 1), torch.cat([z[:, 10:12] * ps, ps], 1)
    (mu, lv), outs, pres = net(xo, xs, po, ps)
    y = labels.unsqueeze(1)
    eps = []
    for _ in range(2):
        e = torch.randn_like(mu)
        eps += [-e, e]
    wt = (po + ps).clamp_max(1.0)
    loss = (nll(mu, lv, y, eps) * wt).sum() / wt.sum().clamp_min(1e-6)
    for (m, l), p in zip(outs, pres):
        w = wt * p
        loss = loss + (nll(m, l, y, eps) * w).sum() / w.sum().clamp_min(1e-6)
    optim.zero_grad()
    loss.backward()
    optim.step()
    return float(loss.detach())


encoder = sys.argv[1] if len(sys.argv) > 1 else "small"
batch, patch, steps = (int(a) for a in (sys.argv[2:5] if len(sys.argv) > 4 else (16, 32, 10)))
net = Net(encoder).train()
optim = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4, eps=1e-5)
raw = torch.rand(batch, 12, patch, patch)
labels = torch.randint(0, K, (batch, patch, patch))
mean, std = torch.full((1, 12, 1, 1), 0.5), torch.full((1, 12, 1, 1), 0.3)
times = []
for i in range(steps + 2):
    t = time.perf_counter()
    step(net, optim, raw, labels, mean, std)
    if i >= 2:
        times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {encoder} encoder, "
      f"batch {batch} x {patch}^2 px")
print(f"ms {times[len(times) // 2]:.2f}")
