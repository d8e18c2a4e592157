#!/usr/bin/env python3
"""PyTorch reference for the conv and LSTM lines of hack/bench/speed: kadet's
ConvAutoencoder on MNIST (conv 3x3 blocks of 16 and 32 channels with ReLU and 2x2 max
pooling, a dense latent layer of 32 between ReLU dense layers, nearest 2x upsampling
and 3x3 convolutions back, the last one linear) and its LSTMAutoencoder on SKAB-shaped
windows (32 rows of 8 features; an LSTM of 32 units, its last hidden state through a
ReLU dense latent layer of 16, a linear dense decoder of the whole window). Adam
1e-3, MSE, the same batches and step counts as the kadet side. Prints one JSON line
with training samples/s of each."""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
from torch import nn


def idx_images(path, n):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (8, 12))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16)[: n * rows * cols]
    return x.reshape(n, 1, rows, cols).astype(np.float32) / 255.0


class ConvAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.latent = nn.Sequential(nn.Linear(32 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 32 * 7 * 7), nn.ReLU())
        self.dec = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 3, padding=1),
        )

    def forward(self, x):
        h = self.enc(x)
        h = self.latent(h.flatten(1)).view(-1, 32, 7, 7)
        return self.dec(h)


class LSTMAE(nn.Module):
    def __init__(self, window, features):
        super().__init__()
        self.lstm = nn.LSTM(features, 32, batch_first=True)
        self.latent = nn.Linear(32, 16)
        self.dec = nn.Linear(16, window * features)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.dec(torch.relu(self.latent(h[-1]))).view(x.shape)


def windows(n, window, features):
    """Sine waves of different periods with noise, as kadet's side makes them."""
    t = np.arange(n + window, dtype=np.float64)
    cols = [np.sin(2 * math.pi * t / (20 + 7 * j)) + 0.1 * np.cos(t * (j + 1)) for j in range(features)]
    series = np.stack(cols, axis=1).astype(np.float32)
    return np.stack([series[i:i + window] for i in range(n)])


def train(model, x, batch, steps):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    n = x.shape[0]
    perm = torch.randperm(n)
    start = time.perf_counter()
    for s in range(steps):
        i = (s * batch) % (n - batch + 1)
        xb = x[perm[i:i + batch]]
        opt.zero_grad()
        loss = loss_fn(model(xb), xb)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True, help="MNIST training images (idx, gzip)")
    p.add_argument("--conv-steps", type=int, default=100)
    p.add_argument("--lstm-steps", type=int, default=100)
    args = p.parse_args()
    torch.manual_seed(1)
    images = torch.from_numpy(idx_images(args.train, 12800))
    wins = torch.from_numpy(windows(6400, 32, 8))
    train(ConvAE(), images, 128, 3)  # untimed: first products start the threads
    conv = train(ConvAE(), images, 128, args.conv_steps)
    train(LSTMAE(32, 8), wins, 64, 3)
    lstm = train(LSTMAE(32, 8), wins, 64, args.lstm_steps)
    print(json.dumps({"conv_train_samples_per_s": conv, "lstm_train_samples_per_s": lstm,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
