"""Tests of collapse_lib.gpt: corpus, model + KV cache, sampler, trainer, runner (resume), CLI.

All models here are tiny so the module runs in well under a minute on a loaded 2-core CPU.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest
import torch

from collapse_lib.gpt import data as D
from collapse_lib.gpt.cli import main as cli_main
from collapse_lib.gpt.model import GPT, GPTConfig, KVCache
from collapse_lib.gpt.runner import RunConfig, Runner, l1_drift, mean_entropy, quick_config, stage_seed
from collapse_lib.gpt.sample import generate_corpus, logits_to_probs, sample, sample_naive, top_k_filter
from collapse_lib.gpt.train import TrainConfig, evaluate_loss, lr_at, train

TINY = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16)
#: float32 round-off allowance for probabilities computed by two different kernel paths (cached
#: vs full attention). Logits here reach tens (weights scaled up 8x), float32 eps is 1.2e-7, so
#: differences of a few 1e-6 are round-off; a real cache bug changes probabilities by > 1e-3
#: (test_kv_cache_detects_wrong_positions).
ATOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine several threads spin and slow down badly."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def corpus_text() -> str:
    return D.build_corpus_text()


# ----------------------------------------------------------------------------- corpus
def test_corpus_is_deterministic_with_pinned_checksum(corpus_text):
    assert D.sha256(corpus_text) == D.CORPUS_SHA256
    assert len(corpus_text) == 1_115_157
    assert abs(len(corpus_text) - D.TARGET_CHARS) < 1000


def test_corpus_alphabet_and_format(corpus_text):
    assert len(D.ALPHABET) == 65 == D.CharTokenizer().vocab_size
    used = set(corpus_text)
    assert used <= set(D.ALPHABET)
    assert len(used) == 64 and "3" not in used  # documented in the module docstring
    assert corpus_text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.\n\n")
    # every speech is "SPEAKER:\n" followed by one or more non-empty lines, separated by blank lines
    speeches = corpus_text[:-2].split("\n\n")
    assert len(speeches) > 5_000
    pattern = re.compile(r"[^\n:]+:\n[^\n]+(\n[^\n]+)*")
    bad = [s for s in speeches if not pattern.fullmatch(s)]
    assert not bad, bad[:3]


def test_play_to_text_rules():
    md = (
        "# Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter HAMLET and\nHORATIO_\n\n"
        "**HAMLET**  \nWhat\u2014ho! \"Friends\"  \nand (all) \\[Aside]_ well.\n\n"
        "_Exit_\n\n**HORATIO**  \n_[Aside]_ My lord#2.\n"
    )
    assert D.play_to_text(md) == "HAMLET:\nWhat--ho! 'Friends'\nand all well.\n\nHORATIO:\nMy lord.\n\n"


def test_tokenizer_roundtrip_and_errors():
    tok = D.CharTokenizer()
    s = "First Citizen:\nSpeak, speak!\n"
    assert tok.decode(tok.encode(s).tolist()) == s
    with pytest.raises(ValueError, match="not in the alphabet"):
        tok.encode("caf\u00e9")
    with pytest.raises(ValueError):
        D.train_val_split(torch.arange(10), 1.0)
    tr, va = D.train_val_split(torch.arange(100), 0.1)
    assert len(tr) == 90 and len(va) == 10 and va[0] == 90


def test_load_text_file_checks_checksum(tmp_path):
    p = tmp_path / "input.txt"
    p.write_text("hello\n")
    assert D.load_text_file(p, D.sha256("hello\n")) == "hello\n"
    with pytest.raises(ValueError, match="checksum"):
        D.load_text_file(p, D.TINY_SHAKESPEARE_SHA256)


# ----------------------------------------------------------------------------- model + sampler
def _model(cfg: GPTConfig = TINY, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    m = GPT(cfg).eval()
    # larger-than-init weights so that the attention pattern is far from uniform
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8.0)
    return m


def test_config_validation():
    with pytest.raises(ValueError):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError):
        GPTConfig(block_size=0)
    with pytest.raises(ValueError, match="block_size"):
        _model()(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))


def test_kv_cache_probabilities_equal_full_forward_at_every_step():
    """Within block_size the cached sampler's next-token distribution at each step equals the
    softmax of a full forward pass over the prefix generated so far."""
    m = _model()
    prompt = torch.randint(65, (4, 3), generator=torch.Generator().manual_seed(1))
    n_new = TINY.block_size - 3
    out, probs = sample(m, prompt, n_new, generator=torch.Generator().manual_seed(2), return_probs=True)
    for t in range(n_new):
        full = m.next_token_probs(out[:, : 3 + t])
        torch.testing.assert_close(probs[:, t], full, rtol=0, atol=ATOL)
    assert probs.shape == (4, n_new, 65)


def test_kv_cache_detects_wrong_positions():
    """Guard that the comparison above is sensitive: shifting positions changes the probabilities."""
    m = _model()
    x = torch.randint(65, (2, 8), generator=torch.Generator().manual_seed(3))
    p_full = m.next_token_probs(x)
    p_shift = m.next_token_probs(x[:, 1:])
    assert (p_full - p_shift).abs().max() > 1e-3


@pytest.mark.parametrize("keep", [1, 5, TINY.block_size])
def test_cached_sampler_equals_naive_beyond_block_size(keep):
    m = _model()
    prompt = torch.randint(65, (3, 2), generator=torch.Generator().manual_seed(4))
    n_new = 3 * TINY.block_size
    out, probs = sample(m, prompt, n_new, generator=torch.Generator().manual_seed(5), keep=keep, return_probs=True)
    ref_out, ref_probs = sample_naive(m, prompt, n_new, keep=keep, forced=out[:, 2:], return_probs=True)
    assert torch.equal(out, ref_out)
    torch.testing.assert_close(probs, ref_probs, rtol=0, atol=ATOL)
    # with the same random generator the naive sampler draws the same tokens
    again = sample_naive(m, prompt, n_new, generator=torch.Generator().manual_seed(5), keep=keep)
    assert torch.equal(again, out)


def test_kv_cache_refuses_multi_token_extension():
    m = _model()
    cache = KVCache(TINY, 1, "cpu")
    m(torch.zeros(1, 4, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="one token"):
        m(torch.zeros(1, 2, dtype=torch.long), cache=cache)


def test_top_k_and_temperature():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    f = top_k_filter(logits, 2)
    assert torch.isinf(f[0, [0, 3]]).all() and torch.equal(f[0, [1, 2]], logits[0, [1, 2]])
    p = logits_to_probs(logits, temperature=1.0, top_k=2)
    e = math.exp(1.0)
    torch.testing.assert_close(p[0], torch.tensor([0.0, e / (1 + e), 1 / (1 + e), 0.0]))
    cold = logits_to_probs(logits, temperature=0.01)
    assert cold[0, 1] > 0.999
    with pytest.raises(ValueError):
        logits_to_probs(logits, temperature=0.0)
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)
    with pytest.raises(ValueError, match="keep"):
        sample(_model(), torch.zeros(1, 1, dtype=torch.long), 3, keep=TINY.block_size + 1)


def test_sampler_frequencies_match_model_probabilities():
    """Sampling is unbiased: first-token frequencies over many streams match p(.|prompt) within
    5 binomial standard errors."""
    m = _model(seed=7)
    n = 20_000
    prompt = torch.zeros(n, 1, dtype=torch.long)
    out = sample(m, prompt, 1, generator=torch.Generator().manual_seed(8))
    freq = torch.bincount(out[:, 1], minlength=65).double() / n
    p = m.next_token_probs(prompt[:1])[0].double()
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 5 * se + 1e-12).all()


def test_generate_corpus_length_and_start_token():
    m = _model()
    toks = generate_corpus(m, 1000, start_token=0, n_streams=7, generator=torch.Generator().manual_seed(0))
    assert toks.shape == (1000,)
    per = -(-1000 // 7)
    assert (toks[::per] == 0).all()


# ----------------------------------------------------------------------------- training
def test_lr_schedule():
    cfg = TrainConfig(max_iters=100, warmup_iters=10, learning_rate=1e-3, min_lr=1e-4)
    lrs = [lr_at(i, cfg) for i in range(101)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert lrs[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(1e-4)
    with pytest.raises(ValueError):
        TrainConfig(max_iters=10, warmup_iters=11)


def test_training_is_deterministic_and_learns():
    text = D.build_corpus_text(target_chars=20_000)
    data = D.CharTokenizer().encode(text)
    cfg = TrainConfig(max_iters=40, batch_size=8, warmup_iters=5, learning_rate=3e-3, min_lr=3e-4, eval_interval=10**9)
    params = []
    for _ in range(2):
        torch.manual_seed(0)
        m = GPT(TINY)
        before = evaluate_loss(m, data, 16)
        train(m, data, cfg, torch.Generator().manual_seed(1), progress=False)
        params.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.equal(params[0], params[1])
    after = evaluate_loss(m, data, 16)
    assert before == pytest.approx(math.log(65), abs=0.1)  # near-uniform at initialisation
    assert after < before - 0.5


# ----------------------------------------------------------------------------- runner
def test_l1_drift_and_entropy():
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]], dtype=torch.float64)
    mean, se = l1_drift(p, q)
    assert mean == pytest.approx(1.5)  # rows: 1.0 and 2.0
    assert se == pytest.approx(0.5)  # sample std of (1, 2) is 1/sqrt(2); divided by sqrt(2)
    assert mean_entropy(p) == pytest.approx(math.log(2) / 2)
    with pytest.raises(ValueError):
        l1_drift(p, q[:, :2])


def _tiny_run_config(generations: int) -> RunConfig:
    return quick_config(
        model=GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16),
        train=TrainConfig(max_iters=15, batch_size=8, warmup_iters=3, learning_rate=3e-3, min_lr=3e-4,
                          eval_interval=10**9, eval_windows=16),
        gen0_iters=25, generations=generations, n_real=1500, n_synth=1500, n_heldout=600, n_contexts=20,
        sample_streams=32, corpus_chars=20_000,
    )


def _numbers(res: dict) -> list:
    keys = ["l1_to_p1", "l1_to_p0", "val_loss_gen0", "val_loss_real", "entropy", "max_prob", "sample"]
    return [[r[k] for k in keys] for s in res["results"]["schemes"].values() for r in s]


def test_resume_gives_identical_numbers(tmp_path):
    quiet = dict(progress=False, log=lambda s: None)
    full = Runner(_tiny_run_config(3), tmp_path / "a", **quiet).run()
    # (1) run 1 generation, then extend the same directory to 3 generations
    Runner(_tiny_run_config(1), tmp_path / "b", **quiet).run()
    resumed = Runner(_tiny_run_config(3), tmp_path / "b", **quiet).run()
    # (2) simulate a kill during generation 3: drop its checkpoints and rerun
    (tmp_path / "a" / "checkpoints" / "fully" / "gen3.pt").unlink()
    (tmp_path / "a" / "checkpoints" / "partially" / "gen3.pt").unlink()
    again = Runner(_tiny_run_config(3), tmp_path / "a", **quiet).run()
    assert _numbers(full) == _numbers(resumed) == _numbers(again)
    rows = full["results"]["schemes"]["fully"]
    assert [r["generation"] for r in rows] == [1, 2, 3]
    assert rows[0]["l1_to_p1"] == 0.0 and rows[1]["l1_to_p1"] > 0
    # scheme selection does not change a scheme's numbers (per-stage seeds)
    only = Runner(replace(_tiny_run_config(3), schemes=("partially",)), tmp_path / "c", **quiet).run()
    assert _numbers(only) == [x for x, r in zip(_numbers(full), range(6)) if r >= 3]
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert on_disk["config"]["generations"] == 3 and "torch" in on_disk["environment"]


def test_runner_refuses_a_different_config_in_the_same_directory(tmp_path):
    Runner(_tiny_run_config(1), tmp_path, progress=False, log=lambda s: None).run()
    with pytest.raises(ValueError, match="different configuration"):
        Runner(replace(_tiny_run_config(1), seed=99), tmp_path, progress=False, log=lambda s: None).run()


def test_stage_seed_is_deterministic_and_distinct():
    assert stage_seed(1, "gen1") == stage_seed(1, "gen1")
    assert len({stage_seed(1, s) for s in ("gen0", "gen1", "fully/gen2", "partially/gen2")}) == 4


def test_run_config_validation():
    with pytest.raises(ValueError, match="schemes"):
        RunConfig(schemes=("mixed",))
    with pytest.raises(ValueError, match="generations"):
        RunConfig(generations=0)
    with pytest.raises(ValueError, match="n_real"):
        RunConfig(n_real=10)


# ----------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["run"],  # --out missing
        ["run", "--out", "x", "--generations", "0"],
        ["run", "--out", "x", "--generations", "two"],
        ["run", "--out", "x", "--scheme", "mixed"],
        ["run", "--out", "x", "--temperature", "-1"],
        ["bench", "--batch", "-3"],
        ["train"],
    ],
)
def test_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_builds_config_from_arguments():
    from collapse_lib.gpt.cli import build_parser, config_from_args

    args = build_parser().parse_args(["run", "--out", "x", "--quick", "--generations", "3", "--scheme", "fully",
                                      "--iters", "7", "--n-synth", "5000"])
    cfg = config_from_args(args)
    assert cfg.generations == 3 and cfg.schemes == ("fully",) and cfg.train.max_iters == 7 and cfg.n_synth == 5000


# ----------------------------------------------------------------------------- report
def test_report_reads_and_plots_a_run(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from collapse_lib.gpt import report

    Runner(_tiny_run_config(2), tmp_path, progress=False, log=lambda s: None).run()
    res = report.load_results(tmp_path / "metrics.json")
    m, v, se = report.series(res, "fully", "l1_to_p1")
    assert list(m) == [1, 2] and v[0] == 0 and se is not None
    fig = report.plot_figure3(res)
    assert len(fig.axes) == 4 and fig.axes[0].get_xlabel() == "generation $m$"
    texts = report.samples_side_by_side(res, (1, None))
    assert set(texts) == {"fully gen 1", "fully gen 2", "partially gen 1", "partially gen 2"}
    with pytest.raises(ValueError, match="unknown metric"):
        report.series(res, "fully", "nope")
    with pytest.raises(FileNotFoundError):
        report.load_results(tmp_path / "missing.json")


def test_noise_floor_retrains_generation_one(tmp_path):
    Runner(_tiny_run_config(1), tmp_path, progress=False, log=lambda s: None).run()
    assert cli_main(["floor", "--out", str(tmp_path), "--replicas", "1"]) == 0
    res = json.loads((tmp_path / "floor.json").read_text())
    (row,) = res["replicas"]
    assert row["l1_to_p1"] > 0  # another seed gives another model
    with pytest.raises(ValueError, match="no completed"):
        Runner(_tiny_run_config(1), tmp_path / "empty", progress=False, log=lambda s: None).noise_floor(1)


def test_provenance_readme_is_generated_from_the_run(tmp_path):
    from collapse_lib.gpt.provenance import write_readme

    Runner(_tiny_run_config(2), tmp_path / "run", progress=False, log=lambda s: None).run()
    readme = write_readme(tmp_path / "run", tmp_path / "dest").read_text()
    res = json.loads((tmp_path / "dest" / "metrics.json").read_text())
    last = res["results"]["schemes"]["fully"][-1]
    assert f"{last['l1_to_p1']:.4f}" in readme and "python -m collapse_lib.gpt run" in readme
    assert (tmp_path / "dest" / "config.json").exists()
