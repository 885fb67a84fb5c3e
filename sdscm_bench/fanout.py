"""Fan a family's generation out over processes, GPUs or machines with Dask; the cache is the meeting point.

One task per dataset slot: a worker generates that slot into the shared dataset cache (file locks make
two workers on one dataset wait for each other instead of generating it twice) and returns only the
cache key. The caller then reads the whole family through :func:`sdscm_bench.families.load_or_generate`,
which finds every dataset in the cache, so fanned-out and sequential generation give the same datasets,
quality redraws included. Nothing here schedules: Dask does.

- **One machine:** ``workers=N`` starts a ``LocalCluster`` of N single-threaded processes. With GPUs,
  run one worker per GPU and pin it with ``CUDA_VISIBLE_DEVICES`` (e.g. ``dask worker`` per device);
  for a small model, two or three per GPU (one process leaves the GPU idle while its Python works).
- **A cluster:** start ``dask scheduler`` and one ``dask worker ADDRESS --nworkers 1 --nthreads 1`` per
  GPU with the same ``SDSCM_BENCH_CACHE`` on a shared file system, then pass ``scheduler=ADDRESS``
  (``sdscm-bench generate ... --scheduler tcp://host:8786``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sdscm_bench.errors import SdscmError
from sdscm_bench.families import FamilyRequest, load_or_generate


class FanoutError(SdscmError):
    """Dask is missing, or the cluster could not be reached."""


def _generate_slot(request: FamilyRequest, slot: int) -> int:
    """Worker side: generate slot ``slot`` (with its quality redraws) into the cache; returns the slot."""
    import os
    import warnings

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # one process per core or GPU: more threads per process only contend
    from sdscm_bench.families import DataQualityWarning, _Run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # the caller warns once, when it reads
        run = _Run(request, request.family(), progress=False)
        run.with_quality(slot, request.dataset_seeds()[slot])
    return slot


def _client(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise FanoutError("fanning out needs Dask: pip install 'sdscm-bench[fanout]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except OSError as exc:
            raise FanoutError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    cluster = LocalCluster(
        n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


def generate_fanned_out(
    request: FamilyRequest,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> list[Any]:
    """The family's datasets, their generation spread over Dask workers (see the module docstring)."""
    if request.cache_dir is None:
        from sdscm_bench.paths import cache_root

        # Workers must meet in the same cache as the caller, whatever their environment says.
        request = dataclasses.replace(request, cache_dir=str(cache_root()))
    client, cluster = _client(workers, scheduler)
    try:
        futures = client.map(_generate_slot, [request] * request.n_datasets, range(request.n_datasets),
                             pure=False)  # fmt: skip
        if progress:
            from distributed import as_completed
            from tqdm import tqdm

            for _ in tqdm(as_completed(futures), total=len(futures), unit="dataset", desc="fan-out"):
                pass
        client.gather(futures)  # re-raises a worker's error here
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return load_or_generate(request, progress=False)
