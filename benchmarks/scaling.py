"""How the benchmark's costs scale: estimator fits with units, generation with units, runs with datasets.

    python benchmarks/scaling.py fits --sizes 250,1000 --datasets 3
    python benchmarks/scaling.py generation            # from the dataset cache's manifests
    python benchmarks/scaling.py harness --counts 10,100

``fits`` times every available adapter on row subsamples of released GPT-2 datasets (all
covariates, one thread, as each xdist worker runs). ``generation`` summarises every cached
generated dataset (family, units, dtype): seconds, units/s, tokens per unit and tokens/s, as
recorded in each dataset's metadata when it was made. ``harness`` times whole pytest runs over K
released datasets (loading, fitting, scoring, writing), with ``--recompute`` into a scratch
leaderboard, so the published one is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fits(sizes: list[int], n_datasets: int, estimators: list[str] | None) -> list[list[object]]:
    from threadpoolctl import threadpool_limits

    from sdscm_bench.estimators.registry import available, get_adapter
    from sdscm_bench.paper_data import default_paper_data_dir, load_paper_dataset

    root = default_paper_data_dir()
    if root is None:
        sys.exit("released paper data not found; set SDSCM_PAPER_DATA")
    datasets = [load_paper_dataset(root, "gpt2", i) for i in range(n_datasets)]
    rows = []
    with threadpool_limits(1):
        for name in estimators or list(available()):
            adapter = get_adapter(name)
            medians = []
            for n in sizes:
                seconds = []
                for ds in datasets:
                    X = ds.covariates("all covariates", encoding=adapter.covariate_encoding)[:n]
                    start = time.perf_counter()
                    adapter.run(X, ds.t[:n], ds.y[:n], 0)
                    seconds.append(time.perf_counter() - start)
                medians.append(statistics.median(seconds))
            growth = medians[-1] / medians[0] if medians[0] > 0 else float("nan")
            rows.append([name, *(f"{m:.3f}" for m in medians), f"{growth:.1f}x"])
            print(rows[-1], flush=True)
    return rows


def generation(cache: Path) -> list[list[object]]:
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for manifest in sorted(cache.glob("datasets/*/*/manifest.json")):
        meta = json.loads(manifest.read_text())["meta"]
        if not meta.get("generation_seconds"):
            continue
        family = f"{meta['family']}@{str(meta['spec_fingerprint'])[:8]} [{meta['lm']}]"
        key = (family, int(meta["n_units"]), str(meta["dtype"]))
        groups.setdefault(key, []).append(meta)
    rows = []
    for (family, units, dtype), metas in sorted(groups.items()):
        seconds = sum(m["generation_seconds"] for m in metas)
        tokens = sum(m["tokens_computed"] for m in metas)
        n = len(metas) * units
        rows.append(
            [family, dtype, units, len(metas), f"{seconds / len(metas):.1f}", f"{n / seconds:.2f}",
             f"{tokens / n:.0f}", f"{tokens / seconds:.0f}"]
        )  # fmt: skip
    return rows


def harness(counts: list[int], estimators: str, workers: int) -> list[list[object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in counts:
            cmd = [
                sys.executable, "-m", "pytest", f"--estimator={estimators}",
                "--lm=paper-gpt2,paper-llama-3-8b", f"--n-datasets={k}", "--recompute",
                f"--leaderboard={tmp}/k{k}/leaderboard.md", "-q", "-p", "no:cacheprovider",
            ]  # fmt: skip
            if workers > 1:
                cmd += ["-n", str(workers)]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(proc.stdout[-3000:])
            fits_done = k * 2 * 2 * len(estimators.split(","))
            rows.append([k, fits_done, f"{seconds:.1f}", f"{1000 * seconds / fits_done:.1f}"])
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    from tabulate import tabulate

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("fits")
    p.add_argument("--sizes", default="250,1000")
    p.add_argument("--datasets", type=int, default=3)
    p.add_argument("--estimator", action="append")
    sub.add_parser("generation").add_argument("--cache-dir", default=None)
    p = sub.add_parser("harness")
    p.add_argument("--counts", default="10,100")
    p.add_argument("--estimators", default="diff_in_means,ols_slearner")
    p.add_argument("-n", "--workers", type=int, default=1)
    args = parser.parse_args()

    if args.what == "fits":
        sizes = [int(s) for s in args.sizes.split(",")]
        rows = fits(sizes, args.datasets, args.estimator)
        headers = ["estimator", *(f"median fit s, n={n}" for n in sizes), f"growth {sizes[0]}->{sizes[-1]}"]
    elif args.what == "generation":
        from sdscm_bench.paths import cache_root

        rows = generation(cache_root(args.cache_dir))
        headers = [
            "family [LM]",
            "dtype",
            "units",
            "datasets",
            "s/dataset",
            "units/s",
            "tokens/unit",
            "tokens/s",
        ]
    else:
        rows = harness([int(c) for c in args.counts.split(",")], args.estimators, args.workers)
        headers = ["datasets per LM", "fits", "wall s", "ms per fit (incl. loading)"]
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
