"""What the Mitigate page's default training does on the Fashion sample, and which method a fair choice picks.

    python scripts/check_warm_start.py        # writes results/warm-start-fashion.json (about 10 minutes of CPU)

The page's default on Fashion-MNIST: a warm start from ``new.pt``, 2 epochs at learning rate 2e-4, seed 0, on the
2,000 photos of ``sample_data/fashion/train``, evaluated on the 10,000 test photos. Each candidate method is trained
with exactly that (``graceful_core.training.update.train_update``, the page's own path), and the default method is
chosen by 2-fold cross-fitting on the test photos (fold = ``pandas.util.hash_array`` of the id mod 2): on each half,
the fewest negative flips among the candidates within 1 point of new.pt's error there, counted on the other half.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import fashion_sample as fs  # noqa: E402

from graceful_core.metrics.confidence import argmax_lowest  # noqa: E402
from graceful_core.training.update import train_update  # noqa: E402
from graceful_ui.training import TrainParams  # noqa: E402

S = ROOT / "sample_data" / "fashion"
d = fs.load_fashion(fs.FASHION_SRC)
mean, std = fs.normalisation(d.train_images)
X = fs.to_tensor(d.test_images, mean, std)
y = d.test_labels


def pred(path):
    m = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        out = [m(X[i : i + 1000]) for i in range(0, len(X), 1000)]
    out = [o[0] if isinstance(o, tuple) else o for o in out]
    return argmax_lowest(torch.cat(out).numpy())


old, new = pred(S / "models/old.pt"), pred(S / "models/new.pt")
ids = (
    pd.read_csv(S / "test.csv")["id"].astype(str).to_numpy()
    if "id" in pd.read_csv(S / "test.csv", nrows=1).columns
    else np.arange(len(y)).astype(str)
)
fold = (pd.util.hash_array(ids) % 2).astype(int)
cands = {
    "plain": dict(method="plain"),
    "focal T1 λ1 (current default)": dict(method="focal-distillation", lam=1.0, alpha=1.0, beta=5.0, temperature=1.0),
    "focal T100 λ0.01": dict(method="focal-distillation", lam=0.01, alpha=1.0, beta=5.0, temperature=100.0),
    "focal T100 λ0.1": dict(method="focal-distillation", lam=0.1, alpha=1.0, beta=5.0, temperature=100.0),
    "focal T100 λ1": dict(method="focal-distillation", lam=1.0, alpha=1.0, beta=5.0, temperature=100.0),
    "ldi λ0.1": dict(method="ldi", lam=0.1),
    "ldi λ1": dict(method="ldi", lam=1.0),
    "ldi λ3": dict(method="ldi", lam=3.0),
}
res = {}
for name, kw in cands.items():
    t = time.perf_counter()
    p = TrainParams(arch="large-cnn-28", epochs=2, seed=0, lr=2e-4, **kw)
    out = Path(tempfile.mkdtemp()) / "update.pt"
    train_update(S / "models/old.pt", S / "train", out, p, init_from=S / "models/new.pt")
    pr = pred(out)
    r = {}
    for f in (0, 1):
        m = fold == f
        r[f] = {
            "err": float(np.mean(pr[m] != y[m])),
            "nf": int(np.sum((old[m] == y[m]) & (pr[m] != y[m]))),
            "n": int(m.sum()),
        }
    res[name] = r
    print(name, r, f"{time.perf_counter() - t:.0f}s", flush=True)
base = {
    f: {
        "err": float(np.mean(new[fold == f] != y[fold == f])),
        "nf": int(np.sum((old[fold == f] == y[fold == f]) & (new[fold == f] != y[fold == f]))),
    }
    for f in (0, 1)
}
print("new.pt", base)
for f in (0, 1):
    ok = [n for n in res if res[n][f]["err"] <= base[f]["err"] + 0.01]
    ch = min(ok, key=lambda n: res[n][f]["nf"])
    print(
        f"fold {f} chooses {ch}; on fold {1 - f}: nf {res[ch][1 - f]['nf']} vs new {base[1 - f]['nf']}, err {res[ch][1 - f]['err']:.4f} vs {base[1 - f]['err']:.4f}"
    )
(ROOT / "results" / "warm-start-fashion.json").write_text(json.dumps({"per_fold": res, "new": base}, indent=1) + "\n")
