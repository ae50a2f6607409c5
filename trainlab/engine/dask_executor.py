"""The Dask distributed executor (``TRAINLAB_EXECUTOR=dask``).

Dask's own conventions pick the cluster: the scheduler at ``DASK_SCHEDULER_ADDRESS`` (started by
``dask scheduler``, with ``dask worker ADDRESS --nthreads 1`` per machine, or by dask-jobqueue on
Slurm), else a ``LocalCluster`` of ``TRAINLAB_WORKERS`` worker processes bound to 127.0.0.1.

- Each task is one shard (``trainlab.engine.shards.shard``): configurations x a block of seeds.
  It pickles small: a prepared data set travels as its path and content hash (``Split.source``),
  and the models as references to the family's builder functions.
- One TensorFlow process per worker, its threads pinned (``trainlab.engine.runtime.apply_once``): a worker
  runs one task at a time, so TensorFlow's threads are all the threads it has.
- A worker that dies mid-shard loses nothing: the scheduler gives its shard to another worker
  (up to ``distributed.scheduler.allowed-failures`` times), and the results are the same
  wherever a shard runs.
- Workers only train. The stage process gathers the results and alone logs them to MLflow.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from trainlab.engine import placement as pl
from trainlab.engine.shards import Shard, shard, train_shard
from trainlab.engine.trial import Trial, TrialResult


@contextmanager
def dask_client(placement: pl.Placement) -> Iterator:
    """A client of the cluster at DASK_SCHEDULER_ADDRESS, or of a LocalCluster on loopback made for this call."""
    from distributed import Client, LocalCluster

    if placement.scheduler:
        try:
            client = Client(placement.scheduler, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise pl.PlacementError(
                f"DASK_SCHEDULER_ADDRESS: no Dask scheduler answers at {placement.scheduler} ({err}); start one "
                "(`dask scheduler`), or unset it for a local cluster") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=placement.worker_count(), threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


def workers_of(client) -> int:
    """The cluster's worker processes now (at least one: the scheduler waits for workers to come)."""
    return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))


def run_shards(client, shards: Sequence[Sequence[Trial]], runtime: Mapping, threads: int,
               label: str = "train") -> list[TrialResult]:
    """Train the shards on ``client``'s cluster and return all their results (in completion order)."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]  # fresh keys: a rerun of the stage never reuses a previous run's results
    futures = {client.submit(train_shard, Shard(list(s), dict(runtime), threads), key=f"{label}-{run}-shard-{i}",
                             pure=False): s for i, s in enumerate(shards)}
    results = []
    for done, future in enumerate(as_completed(futures), 1):
        results += future.result()
        print(f"[{label}] shard {done}/{len(shards)} ({len(futures[future])} trials) done on Dask",
              file=sys.stderr, flush=True)
    return results


def run_on_dask(populations: Sequence[Sequence[Trial]], runtime: Mapping, placement: pl.Placement,
                label: str = "train") -> list[TrialResult]:

    with dask_client(placement) as client:
        shards = shard(populations, workers_of(client), runtime.get("seed_block", 0))
        print(f"[{label}] {len(shards)} shards on {workers_of(client)} Dask workers "
              f"({placement.scheduler or 'LocalCluster on 127.0.0.1'})", file=sys.stderr, flush=True)
        return run_shards(client, shards, runtime, placement.worker_threads(), label)
