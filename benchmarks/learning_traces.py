"""Traces for the learned-memory benchmark (`packing.py --learning`): jobs whose true peak GPU
memory is a published measurement, run again and again, with no `-m` given.

Peak memory: Lucid's single-job profile (Hu et al., ASPLOS 2023; S-Lab-System-Group/Lucid,
`simulation/analyzer/single_data.csv` @9b9ba89): `gmem` in MiB of 66 (model, dataset, batch size,
AMP) jobs measured with nvidia-smi on an RTX 3090 (24 GiB), from 2,050 MiB (NeuMF) to 20,162 MiB
(BERT on SQuAD). The cards are 24,576 MiB to match.

Durations: no public trace pairs a job's memory with its duration, so each job's typical run
time is drawn from a log-normal (median 20 minutes, sigma 1.0: minutes to hours, the heavy tail
the Philly and Helios traces show) and each run of it varies by +-20%. An assumption, stated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CARD_MB = 24576

# `gmem` of every row of Lucid's single_data.csv, in its order.
LUCID_GMEM_MB = (
    20162, 16334, 2458, 2730, 2322, 2330, 3096, 2684, 2308, 2176, 2766, 2290, 2580, 2358,
    3884, 3750, 5616, 5320, 2508, 2320, 3010, 2528, 4078, 2992, 2694, 2382, 3266, 2706,
    4428, 3216, 2050, 2050, 2050, 2050, 2051, 2051, 2051, 3968, 3334, 6346, 4532, 10474,
    6976, 2360, 2330, 2660, 3642, 3072, 4036, 5518, 3838, 8570, 5376, 13326, 7992, 2059,
    2059, 2059, 11949, 11801, 3386, 2762, 3584, 3588, 3990, 2666,
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    task_id: int
    job: int  # which job it is a run of: runs of one job share a memory fingerprint
    peak_mb: int  # what it truly uses at its peak
    duration_s: float


def learning_trace(tasks: int, jobs: int, seed: int) -> list[Run]:
    """`tasks` runs of `jobs` jobs, in a random order: each job's first run teaches the rest."""
    rng = random.Random(seed)
    kinds = [(rng.choice(LUCID_GMEM_MB), 1200 * rng.lognormvariate(0, 1.0)) for _ in range(jobs)]
    runs = []
    for task_id in range(tasks):
        job = rng.randrange(jobs)
        peak_mb, typical_s = kinds[job]
        runs.append(Run(task_id, job, peak_mb, typical_s * rng.uniform(0.8, 1.2)))
    return runs
