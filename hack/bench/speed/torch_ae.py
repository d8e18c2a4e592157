#!/usr/bin/env python3
"""PyTorch reference for hack/bench/speed: the same dense autoencoder, data and batch
sizes as the kadet run. Prints one JSON line with training and scoring samples/s."""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch


def idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32) / 255.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--score-batch", type=int, default=256)
    args = p.parse_args()
    torch.manual_seed(1)
    x = torch.from_numpy(idx_images(args.train))
    test = torch.from_numpy(idx_images(args.test))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 784),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    n = x.shape[0] // args.batch * args.batch  # full batches only, as kadet trains
    start = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(x.shape[0])
        for i in range(0, n, args.batch):
            xb = x[perm[i:i + args.batch]]
            opt.zero_grad()
            loss = loss_fn(model(xb), xb)
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - start

    model.eval()
    with torch.no_grad():  # one untimed batch first, as the kadet side does
        ((model(test[:args.score_batch]) - test[:args.score_batch]) ** 2).mean(dim=1)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, test.shape[0], args.score_batch):
            xb = test[i:i + args.score_batch]
            ((model(xb) - xb) ** 2).mean(dim=1)
    score_s = time.perf_counter() - start
    print(json.dumps({
        "train_samples_per_s": args.epochs * n / train_s,
        "score_samples_per_s": test.shape[0] / score_s,
        "threads": torch.get_num_threads(),
        "loss": float(loss),
    }))


if __name__ == "__main__":
    main()
