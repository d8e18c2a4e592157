#!/usr/bin/python3
"""Writes reference.json: fixed inputs and what NumPy and SciPy compute from them.

Run once offline (Debian: python3-numpy, python3-scipy); the Go tests read the JSON and
need no Python. The PSI is the usual definition, sum (a - e) ln(a / e) with empty bins
counted as 1e-4; the KS statistic is scipy.stats.ks_2samp's; the bins are NumPy's
linearly interpolated deciles without repeats, with the share of values up to each edge.
"""
import json
import os

import numpy as np
from scipy import stats

rng = np.random.default_rng(20261130)


def psi(e, a):
    e = np.maximum(np.asarray(e, float), 1e-4)
    a = np.maximum(np.asarray(a, float), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def bins(values):
    v = np.sort(np.asarray(values, float))
    edges = []
    for k in range(1, 10):
        q = float(np.quantile(v, k / 10, method="linear"))
        if not edges or q > edges[-1]:
            edges.append(q)
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
    return edges, (counts / len(v)).tolist()


out = {"psi": [], "ks": [], "bins": []}
for n in (4, 10, 11):
    e = rng.dirichlet(np.ones(n))
    a = rng.dirichlet(np.ones(n))
    a[0] = 0  # an empty bin
    a = a / a.sum()
    out["psi"].append({"expected": e.tolist(), "actual": a.tolist(), "psi": psi(e, a)})
for na, nb, shift, scale in ((200, 512, 0.0, 1.0), (1000, 512, 0.3, 1.0), (50, 80, 0.0, 2.0), (1000, 300, 3.0, 1.0)):
    a = np.sort(rng.normal(shift, scale, na))
    b = np.sort(rng.normal(0, 1, nb))
    out["ks"].append({"a": a.tolist(), "b": b.tolist(), "ks": float(stats.ks_2samp(a, b).statistic)})
out["ks"].append({"a": [1, 2, 2, 3, 3, 3], "b": [2, 3, 3, 4], "ks": float(stats.ks_2samp([1, 2, 2, 3, 3, 3], [2, 3, 3, 4]).statistic)})
for values in (rng.normal(5, 2, 997), rng.integers(0, 4, 500).astype(float), rng.exponential(1, 333), np.zeros(20)):
    edges, expected = bins(values)
    out["bins"].append({"values": values.tolist(), "edges": edges, "expected": expected})

# A window of live rows against a training sample: two features moved by three
# standard deviations, one unchanged.
# (float32 values, as kadet reads them)
train = rng.normal(0, 1, (2000, 3)).astype(np.float32).astype(float)
live = rng.normal(0, 1, (1000, 3))
live[:, 1] += 3
live[:, 2] += 3
live = live.astype(np.float32).astype(float)
window = {"train": train.tolist(), "live": live.tolist(), "psi": []}
for j in range(3):
    edges, expected = bins(train[:, j])
    counts = np.bincount(np.searchsorted(edges, live[:, j], side="left"), minlength=len(edges) + 1)
    window["psi"].append(psi(expected, counts / len(live)))
out["window"] = window

with open(os.path.join(os.path.dirname(__file__), "reference.json"), "w") as f:
    json.dump(out, f)
