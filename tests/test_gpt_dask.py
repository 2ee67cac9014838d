"""The GPT stage graph on Dask distributed (issue 22 item 4): a LocalCluster of two worker
processes gives the local pool's numbers exactly, and a run interrupted mid-graph resumes there."""

from __future__ import annotations

from dataclasses import replace

import pytest

from collapse_lib.gpt.model import GPTConfig
from collapse_lib.gpt.runner import Chain, Runner, quick_config
from collapse_lib.gpt.train import TrainConfig

distributed = pytest.importorskip("distributed")

QUIET = dict(progress=False, log=lambda s: None)


def _cfg(**kw):
    base = quick_config(
        model=GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16),
        train=TrainConfig(max_iters=10, batch_size=8, warmup_iters=2, learning_rate=3e-3, min_lr=3e-4,
                          eval_interval=5, eval_windows=16),
        chains=(Chain("fully", "fully", 800, seeds=(0, 1)), Chain("partially", "partially", 400, seeds=(0,))),
        generations=2, floor_seeds=2, n_real=800, n_contexts=20, sample_metric_chars=400, corpus_chars=20_000,
        workers=1)
    return replace(base, **kw)


def _numbers(res: dict) -> dict:
    drop = {"wall_s", "cpu_s", "train_s", "sample_s", "tokens_per_s"}
    return {s: {k: v for k, v in m.items() if k not in drop} for s, m in res["stages"].items()}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c:
        yield c


def test_dask_cluster_reproduces_the_local_pool_and_resumes(tmp_path, cluster):
    local = Runner(_cfg(), tmp_path / "local", **QUIET).run()  # workers=1 == workers=2: tests/test_gpt.py
    on_dask = Runner(_cfg(), tmp_path / "dask", scheduler=cluster.scheduler_address, **QUIET).run()
    assert _numbers(on_dask) == _numbers(local)
    assert on_dask["floor"] == local["floor"]
    assert on_dask["environment"]["executor"].startswith("dask distributed")
    # interrupted after 4 of the stages, then resumed on the cluster: the same numbers
    part = Runner(_cfg(), tmp_path / "cut", scheduler=cluster.scheduler_address, **QUIET).run(max_stages=4)
    assert 4 <= len(part["stages"]) < len(local["stages"])
    resumed = Runner(_cfg(), tmp_path / "cut", scheduler=cluster.scheduler_address, **QUIET).run()
    assert _numbers(resumed) == _numbers(local)


def test_cli_scheduler_error_is_clear(tmp_path, capsys):
    from collapse_lib.gpt.cli import main

    rc = main(["run", "--quick", "--out", str(tmp_path / "x"), "--scheduler", "tcp://127.0.0.1:1",
               "--no-progress"])
    assert rc == 2 and "error" in capsys.readouterr().err
