"""Benchmark: the ``compare`` command on two large predictions tables against pyarrow's bare read.

Tables come from ``benchmarks/make_large_tables.py`` (10 classes, float32 logits as a
list column, string ids, integer labels; written once, then reused). Every measurement
runs in a fresh child process; its peak memory is the child's maximum resident set size
(``VmHWM``, read by the child itself at its end), its CPU seconds the child's user +
system time (all threads; steadier than wall time when other jobs share the cores).

Measured, for each variant asked for:

1. ``read``: pyarrow's ``read_table`` of both tables (the columns compare needs), timed
   after the imports — the reference of the goal (compare within 3x of it);
2. ``iter``: pyarrow reading both tables batch by batch and dropping them (the floor of
   any streamed pass), timed after the imports;
3. ``cli``: the real command, end to end: ``compare OLD NEW --json report.json`` in a
   fresh interpreter (``graceful_core.cli.commands.main``, what ``python -m graceful_core`` runs) (start-up, imports, the content key of both
   tables, every check, the joint counts, the flip-confidence split, the JSON report and
   every flip id in ``report.flips.parquet``); tables above a million rows are streamed;
4. ``stream`` (with ``--api``): the engine alone (``compare_tables_streamed``), after the imports;
5. ``memory`` (with ``--in-memory``): the in-memory path (``load_predictions_table`` x2 +
   ``compare_predictions`` + ``to_report``), for comparison.

With ``--check`` the command's report is compared with the NumPy reference the generator
wrote (transition matrix, per-class support and flips, both accuracies, the
flip-confidence split), and its peak memory with ``--budget-gib``.

Usage:
  python benchmarks/bench_compare.py                                   # 10M rows, same order, 2 runs each
  python benchmarks/bench_compare.py --rows 20000000 --variants same,shuffled,shards --check --runs 1
  python benchmarks/bench_compare.py --rows 100000000 --variants same --check --budget-gib 4 --runs 1 --no-read
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

COLUMNS = ["id", "label", "logits"]


def _inputs(p: dict[str, str], variant: str) -> tuple[str, str]:
    if variant == "same":
        return p["old"], p["new"]
    if variant == "shuffled":
        return p["old"], p["new_shuffled"]
    if variant == "shards":
        return p["old_shards"], os.path.join(p["new_shards"], "part-*.parquet")
    raise ValueError(variant)


# --------------------------------------------------------------------------- children
def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return r.ru_utime + r.ru_stime


def _peak_mib() -> float:
    """This process's peak resident set (``VmHWM``), in MiB.

    Measured inside the child: the ``ru_maxrss`` that ``wait4`` reports for a child also
    counts the parent's memory it was forked from (the kernel carries the old address
    space's high-water mark over ``exec``), which the generator's arrays would inflate.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(kind: str, old: str, new: str, out_dir: str) -> dict:
    """One measurement: wall and CPU seconds of the work itself (after the imports), and the peak."""
    res = _work(kind, old, new, out_dir, time.perf_counter(), _cpu())
    res["peak_mib"] = _peak_mib()
    return res


def _cli_child(out_dir: str, argv: list[str]) -> int:
    """``python -m graceful_core ARGV`` (the same ``main``), then this process's peak to ``out_dir/peak``."""
    from graceful_core.cli.commands import main

    code = main(argv)
    with open(os.path.join(out_dir, "peak"), "w") as f:
        f.write(str(_peak_mib()))
    return code


def _work(kind: str, old: str, new: str, out_dir: str, t0: float, c0: float) -> dict:
    import pyarrow.parquet as pq

    if kind == "stream":  # imports outside the timed part, as for pyarrow in the others
        import graceful_core.streaming.kernels as kernels
        from graceful_core.streaming import compare_tables_streamed

        kernels._compiled()
        t0, c0 = time.perf_counter(), _cpu()
    if kind == "read":
        a = pq.read_table(old, columns=COLUMNS)
        b = pq.read_table(new.replace("part-*.parquet", ""), columns=COLUMNS)
        return {"seconds": time.perf_counter() - t0, "cpu": _cpu() - c0, "rows": a.num_rows + b.num_rows}
    if kind == "iter":
        from graceful_core.io.tables import table_files

        rows = 0
        for src in (old, new):
            for f in table_files(src)[1]:
                for b in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=1 << 18, columns=COLUMNS):
                    rows += b.num_rows
        return {"seconds": time.perf_counter() - t0, "cpu": _cpu() - c0, "rows": rows}
    if kind == "stream":
        r = compare_tables_streamed(old, new, flip_ids_path=os.path.join(out_dir, "flips.parquet"), spill_dir=out_dir)
        dt, cpu = time.perf_counter() - t0, _cpu() - c0
        c = r.counts
        return {
            "seconds": dt,
            "cpu": cpu,
            "n": c.n_samples,
            "nfr": c.negative_flips / c.n_samples,
            "transition": c.transition.tolist(),
            "per_class": c.per_class.tolist(),
            "near": c.negative_flips_near_boundary,
            "confident": c.negative_flips_confident,
            "aligned": r.aligned_rows,
            "joined": r.joined_rows,
            "flip_file_mib": os.path.getsize(r.flip_ids_path) / 2**20,
        }
    if kind == "memory":
        from graceful_core.comparing.predictions import compare_predictions
        from graceful_core.io.tables import load_predictions_table

        o = load_predictions_table(old)
        n = load_predictions_table(new, classes=o.classes)
        c = compare_predictions(o, n)
        rep = c.to_report()
        return {
            "seconds": time.perf_counter() - t0,
            "cpu": _cpu() - c0,
            "n": rep["n_samples"],
            "nfr": rep["negative_flip_rate"],
        }
    raise ValueError(kind)


ROOT = str(Path(__file__).resolve().parents[1])


def _cli_result(out_dir: str) -> dict:
    """The command's report, reduced to what the check and the printout need."""
    rep = json.loads(Path(out_dir, "report.json").read_text())
    n = rep["n_samples"]
    flips = os.path.join(out_dir, rep["flip_ids_file"]) if rep.get("flip_ids_file") else None
    return {
        "n": n,
        "nfr": rep["negative_flip_rate"],
        "transition": rep["transition_matrix"],
        "support": [r["support"] for r in rep["per_class"]],
        "neg": [r["negative_flips"] for r in rep["per_class"]],
        "pos": [r["positive_flips"] for r in rep["per_class"]],
        "old_correct": round(rep["old"]["accuracy"] * n),
        "new_correct": round(rep["new"]["accuracy"] * n),
        "near": rep["negative_flips_near_boundary"],
        "confident": rep["negative_flips_confident"],
        "flip_file_mib": os.path.getsize(flips) / 2**20 if flips else 0.0,
        "capped": "flip_ids_cap" in rep,
    }


def _run_child(kind: str, old: str, new: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="graceful-bench-") as out_dir:
        if kind == "cli":  # the command itself, end to end, in a fresh interpreter
            cmd = [
                sys.executable,
                __file__,
                "--cli-child",
                out_dir,
                "compare",
                old,
                new,
                "--json",
                os.path.join(out_dir, "report.json"),
                "--no-cache",
            ]
            env = dict(os.environ, PYTHONPATH=ROOT, GRACEFUL_CACHE_DIR=os.path.join(out_dir, "cache"), TMPDIR=out_dir)
        else:
            cmd = [sys.executable, __file__, "--child", kind, old, new, out_dir]
            env = None
        logs = [os.path.join(out_dir, f) for f in ("stdout", "stderr")]
        with open(logs[0], "w") as fo, open(logs[1], "w") as fe:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=ROOT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)  # its own rusage: CPU of all its threads, peak RSS
            wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out, err = (Path(f).read_text() for f in logs)
        if proc.returncode:
            raise SystemExit(f"{kind} child failed:\n{err}")
        res = _cli_result(out_dir) if kind == "cli" else json.loads(out.strip().splitlines()[-1])
        if kind == "cli":
            res["seconds"], res["cpu"] = wall, usage.ru_utime + usage.ru_stime
            res["peak_mib"] = float(Path(out_dir, "peak").read_text())
    return res


def _best(kind: str, old: str, new: str, runs: int) -> dict:
    return min((_run_child(kind, old, new) for _ in range(runs)), key=lambda r: r["seconds"])


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/graceful-bench")
    ap.add_argument("--variants", default="same", help="comma-separated: same, shuffled, shards")
    ap.add_argument("--runs", type=int, default=2, help="runs per measurement; the fastest counts")
    ap.add_argument("--check", action="store_true", help="compare counts with the generator's NumPy reference")
    ap.add_argument("--budget-gib", type=float, default=2.5, help="peak memory goal of the compare command")
    ap.add_argument("--in-memory", action="store_true", help="also measure the in-memory path")
    ap.add_argument("--api", action="store_true", help="also measure the streaming engine alone (no CLI)")
    ap.add_argument(
        "--no-read", action="store_true", help="skip pyarrow's read_table (needs the whole tables in memory)"
    )
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    if len(sys.argv) > 2 and sys.argv[1] == "--cli-child":
        sys.exit(_cli_child(sys.argv[2], sys.argv[3:]))
    args = ap.parse_args()
    if args.child:
        kind, old, new, out_dir = args.child
        print(json.dumps(_child(kind, old, new, out_dir)))
        return
    import make_large_tables as gen

    variants = [v for v in args.variants.split(",") if v]
    t0 = time.perf_counter()
    p = gen.make(args.rows, args.dir, variants, log=lambda m: print(m, flush=True))
    print(f"tables: {args.rows:,} rows x {gen.K} classes, ready in {time.perf_counter() - t0:.0f} s")
    ref = json.loads(Path(p["reference"]).read_text()) if args.check else None
    ok = True
    for v in variants:
        old, new = _inputs(p, v)
        print(
            f"\n== {v}: {Path(old).name} vs {Path(new).name if v != 'shards' else 'new_shards/part-*.parquet'}",
            flush=True,
        )
        base = None
        if not args.no_read:
            base = _best("read", old, new, args.runs)
            print(
                f"  pyarrow read_table of both     : {base['seconds']:7.2f} s (cpu {base['cpu']:6.2f} s)   peak {base['peak_mib']:7,.0f} MiB",
                flush=True,
            )
        it = _best("iter", old, new, args.runs)
        print(
            f"  pyarrow iter_batches of both   : {it['seconds']:7.2f} s (cpu {it['cpu']:6.2f} s)   peak {it['peak_mib']:7,.0f} MiB",
            flush=True,
        )
        runs = []
        for _ in range(args.runs):  # each run printed: the machine is shared, wall times vary
            r = _run_child("cli", old, new)
            runs.append(r)
            line = f"  graceful compare (CLI, JSON)  : {r['seconds']:7.2f} s (cpu {r['cpu']:6.2f} s)   peak {r['peak_mib']:7,.0f} MiB"
            if base:
                line += f"   {r['seconds'] / base['seconds']:.2f}x read_table (cpu {r['cpu'] / base['cpu']:.2f}x)"
            print(line, flush=True)
        s = min(runs, key=lambda r: r["seconds"])
        if base:
            print(
                f"    best: {s['seconds'] / base['seconds']:.2f}x read_table's time (goal <= 3x), "
                f"cpu {s['cpu'] / base['cpu']:.2f}x; {s['seconds'] / it['seconds']:.2f}x iter_batches"
            )
        print(
            f"    samples {s['n']:,}, NFR {s['nfr']:.5f}, streamed: {s['capped']}, "
            f"flip-id file {s['flip_file_mib']:.0f} MiB"
        )
        peak = max(r["peak_mib"] for r in runs)
        within = peak <= args.budget_gib * 1024
        print(f"    peak memory {peak / 1024:.2f} GiB: {'within' if within else 'ABOVE'} {args.budget_gib} GiB")
        ok &= within
        if ref is not None:
            import numpy as np

            joint = np.asarray(ref["joint"], dtype=np.int64)  # C[y, o, n], counted by plain NumPy
            k = np.arange(joint.shape[0])
            support, old_ok = joint.sum(axis=(1, 2)), joint[k, k, :].sum(axis=1)
            new_ok, both = joint[k, :, k].sum(axis=1), joint[k, k, k]
            same = (
                s["transition"] == joint.sum(axis=0).tolist()
                and s["support"] == support.tolist()
                and s["neg"] == (old_ok - both).tolist()
                and s["pos"] == (new_ok - both).tolist()
                and (s["old_correct"], s["new_correct"]) == (int(old_ok.sum()), int(new_ok.sum()))
            )
            split = (s["near"], s["confident"]) == (
                ref["negative_flips_near_boundary"],
                ref["negative_flips_confident"],
            )
            print(
                f"    counts equal to the NumPy reference: {same}; flip-confidence split "
                f"{(s['near'], s['confident'])} vs reference {(ref['negative_flips_near_boundary'], ref['negative_flips_confident'])}: "
                f"{'equal' if split else 'DIFFERENT'}"
            )
            ok &= same
        if args.api:
            e = _best("stream", old, new, args.runs)
            print(
                f"  engine alone (after imports) : {e['seconds']:7.2f} s (cpu {e['cpu']:6.2f} s)   peak "
                f"{e['peak_mib']:7,.0f} MiB (aligned {e['aligned']:,}, joined {e['joined']:,})"
            )
        if args.in_memory:
            m = _best("memory", old, new, args.runs)
            line = f"  in-memory compare (old path)   : {m['seconds']:7.2f} s (cpu {m['cpu']:6.2f} s)   peak {m['peak_mib']:7,.0f} MiB"
            if base:
                line += f"   {m['seconds'] / base['seconds']:.2f}x read_table (cpu {m['cpu'] / base['cpu']:.2f}x)"
            print(line)
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")


if __name__ == "__main__":
    main()
