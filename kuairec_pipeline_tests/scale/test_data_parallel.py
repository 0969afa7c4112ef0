"""Lightning ddp_spawn on the CPU: two processes, gloo, a tiny two-tower fit; ranks partition the rows and end
with the same weights, which come back to the calling process."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from kuairec_pipeline.models.data_parallel import RankShardedBatches, fit_data_parallel
from kuairec_pipeline_tests.builders import SMALL_TWO_TOWER as SMALL
from kuairec_pipeline_tests.models.contract import make_planted_training_data
from kuairec_pipeline_tests.scale.rank_footprint import RankFootprint, weights_digest


def test_rank_shards_partition_each_epoch():
    rows = make_planted_training_data().train
    n_rows = len(rows)
    assert n_rows % 3 != 0  # so that the remainder is exercised
    for epoch_seed in (3, 4):
        seen, steps = [], []
        for rank in range(3):
            shard = RankShardedBatches(rows, batch_size=50, shuffle=True, seed=epoch_seed)
            shard.users = torch.arange(n_rows)  # row positions instead of user ids: what each rank took
            shard._rank_and_world = lambda rank=rank: (rank, 3)  # as inside a 3-process group
            batches = [users for users, _, _ in shard]
            steps.append(len(batches))
            assert len(batches) == len(shard)
            seen.append(torch.cat(batches).numpy())
        assert len(set(steps)) == 1  # the same number of steps on every rank
        together = np.concatenate(seen)
        assert np.unique(together).size == together.size == n_rows - n_rows % 3  # disjoint, all but the remainder


@pytest.mark.slow
@pytest.mark.scale
def test_ddp_spawn_two_cpu_processes_gloo(tmp_path):
    data = make_planted_training_data()
    config = dataclasses.replace(SMALL, max_epochs=3, batch_size=128)
    torch.manual_seed(config.seed)
    network = fit_data_parallel(
        config, data, devices=2, accelerator="cpu", process_group_backend="gloo", callbacks=[RankFootprint(tmp_path)]
    )
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in records] == [0, 1] and {r["world"] for r in records} == {2}
    assert {r["backend"] for r in records} == {"gloo"}
    per_epoch = (len(data.train) - len(data.train) % 2) // 2
    assert [r["rows"] for r in records] == [per_epoch * config.max_epochs] * 2  # each rank: half of every epoch
    assert records[0]["steps"] == records[1]["steps"]
    assert records[0]["digest"] == records[1]["digest"]  # gradients averaged: the ranks agree
    assert weights_digest(network) == records[0]["digest"]  # and the caller got the trained weights back
    assert records[0]["initial"] == records[1]["initial"] != records[0]["digest"]  # same start, and it trained
