"""Device-correct randomness, the training rules, the presets and the in-context instruments of
collapse_lib.gpt (issues 21, 22, 24). Every test that builds a model runs on the CPU and, when
torch sees a GPU, on CUDA too (``device`` fixture)."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import collapse_lib.gpt as gpt_pkg
from collapse_lib.gpt import data as D
from collapse_lib.gpt.measure import ICL_SEED, context_gain, copy_losses, in_context_metrics
from collapse_lib.gpt.model import GPT, GPTConfig
from collapse_lib.gpt.runner import (Chain, RunConfig, Runner, controls_config, paper_config, quick_config,
                                     resolve_device, stage_graph)
from collapse_lib.gpt.sample import draw_categorical, sample, sample_streams
from collapse_lib.gpt.train import TrainConfig, passes_over, train

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TINY = GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
QUIET = dict(progress=False, log=lambda s: None)


from test_gpt import _one_thread  # noqa: E402,F401 - the module-wide one-torch-thread fixture (autouse)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


# ----------------------------------------------------------------------------- randomness on devices
RANDOM_FUNCTIONS = ("multinomial", "randint", "rand", "randn", "randperm", "bernoulli", "normal", "poisson")


def _random_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RANDOM_FUNCTIONS:
            yield node


def test_every_random_draw_in_the_package_is_placed_on_its_generators_device():
    """Static guard (catches the CUDA crash of issue 22 on a CPU-only machine): in
    collapse_lib/gpt every torch random function takes an explicit generator and is placed on that
    generator's device: ``torch.multinomial(x.to(g.device), ..., generator=g)`` or
    ``torch.randint(..., generator=g, device=g.device)``."""
    root = Path(gpt_pkg.__file__).parent
    seen = 0
    for path in sorted(root.glob("*.py")):
        for call in _random_calls(ast.parse(path.read_text())):
            where = f"{path.name}:{call.lineno}"
            kw = {k.arg: k.value for k in call.keywords}
            assert "generator" in kw, f"{where}: random draw without an explicit generator"
            gen = ast.unparse(kw["generator"])
            if call.func.attr == "multinomial":
                first = ast.unparse(call.args[0])
                assert first.endswith(f".to({gen}.device)") or first.endswith(".to(gdev)"), \
                    f"{where}: multinomial input {first} is not moved to the generator's device"
            else:
                assert "device" in kw and ast.unparse(kw["device"]) == f"{gen}.device", \
                    f"{where}: {call.func.attr} is not placed on {gen}.device"
            seen += 1
    assert seen >= 4  # sampler, the two batch draws, the context lengths, the probes


@pytest.fixture
def checked_draws(monkeypatch):
    """Wrap torch's random functions: fail when a draw has no generator or when the generator's
    device differs from the device of the tensor drawn from or into; count the draws."""
    count = {"n": 0}

    def wrap(name):
        orig = getattr(torch, name)

        def checked(*args, **kw):
            g = kw.get("generator")
            assert g is not None, f"torch.{name} called without a generator"
            out = orig(*args, **kw)
            devs = {a.device.type for a in args if isinstance(a, torch.Tensor)} | {out.device.type}
            assert devs == {g.device.type}, f"torch.{name}: generator on {g.device}, tensors on {devs}"
            count["n"] += 1
            return out

        monkeypatch.setattr(torch, name, checked)

    for name in ("multinomial", "randint"):
        wrap(name)
    return count


def test_draws_use_generators_on_their_own_device_along_the_whole_pipeline(tmp_path, device, checked_draws):
    """The whole experiment (sampling, batches, evaluation contexts, probes) on ``device``."""
    cfg = _tiny(device=device)
    res = Runner(cfg, tmp_path, **QUIET).run()
    assert checked_draws["n"] > 100
    assert {m["device"] for m in res["stages"].values()} == {device}


def test_draw_categorical_returns_on_the_probabilities_device(device):
    probs = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(0)), -1).to(device)
    a = draw_categorical(probs, torch.Generator().manual_seed(1))
    b = torch.multinomial(probs.cpu(), 1, generator=torch.Generator().manual_seed(1))
    assert a.device.type == device and torch.equal(a.cpu(), b)  # the CPU stream, bit for bit


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_same_seed_same_streams_on_cpu_and_gpu():
    torch.manual_seed(0)
    m = GPT(TINY).eval()
    a = sample_streams(m, 64, 0, torch.Generator().manual_seed(3))
    b = sample_streams(m.to("cuda"), 64, 0, torch.Generator().manual_seed(3))
    assert (a == b).float().mean() > 0.99  # equal up to draws at a floating-point tie


def test_device_option_and_its_errors(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be one of"):
        RunConfig(device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="device='cuda' was asked for"):
        resolve_device("cuda")
    from collapse_lib.gpt.cli import main

    assert main(["run", "--out", "/nonexistent/x", "--quick", "--device", "cuda"]) == 2


# ----------------------------------------------------------------------------- training rules
def _tiny(generations: int = 2, **kw) -> RunConfig:
    base = quick_config(
        model=TINY,
        train=TrainConfig(max_iters=12, batch_size=8, warmup_iters=3, learning_rate=3e-3, min_lr=3e-4,
                          eval_interval=4, eval_windows=16),
        chains=(Chain("fully", "fully", 800, seeds=(0,)),
                Chain("half", "partially", 400, n_real=400, gen1_n=800, seeds=(0,)),
                Chain("big", "fully", 1600, seeds=(0,)),
                Chain("best", "fully", 400, seeds=(0,), train={"stop": "best", "eval_interval": 2, "patience": 2})),
        generations=generations, floor_seeds=2, n_real=800, n_real_extra=800, n_contexts=20,
        sample_metric_chars=400, corpus_chars=20_000, workers=1)
    return replace(base, **kw)


def test_best_rule_keeps_the_best_weights_and_stops():
    data = D.CharTokenizer().encode(D.build_corpus_text(target_chars=20_000))
    held = data[-2000:]
    cfg = TrainConfig(max_iters=400, batch_size=4, warmup_iters=2, learning_rate=3e-2, min_lr=3e-3,
                      eval_interval=5, eval_windows=8, stop="best", patience=2)
    torch.manual_seed(0)
    m = GPT(TINY)
    tiny_train = data[:300]  # a few hundred characters: memorised quickly, held-out loss turns up
    hist = train(m, tiny_train, cfg, torch.Generator().manual_seed(0), val_data={"heldout": held}, progress=False)
    losses = hist["val"]["heldout"]
    assert hist["iters_trained"] < 400 and hist["best_iter"] == hist["iter"][losses.index(min(losses))]
    assert hist["iters_trained"] == hist["best_iter"] + 2 * 5  # patience 2 evaluations
    from collapse_lib.gpt.train import evaluate_loss

    assert evaluate_loss(m, held, 8) == pytest.approx(min(losses), rel=1e-6)  # the best weights are returned
    assert hist["passes"] if "passes" in hist else True
    with pytest.raises(ValueError, match="val_data"):
        train(GPT(TINY), tiny_train, cfg, torch.Generator(), progress=False)
    with pytest.raises(ValueError, match="stop must be"):
        TrainConfig(stop="early")


def test_passes_definition():
    streams = torch.zeros(10, 17, dtype=torch.uint8)
    assert passes_over(streams, 20, 5, 16) == pytest.approx(20 * 5 * 16 / 160)
    assert passes_over(torch.zeros(1000), 10, 4, 16) == pytest.approx(0.64)


def test_controls_features_run_and_record_passes(tmp_path, device):
    cfg = _tiny(device=device)
    g = stage_graph(cfg)
    assert g["half/s0/gen1"] == g["fully/s0/gen1"] == ("gen1/n800/s0",)  # N = n = 400: gen 1 on 800
    assert "gen1/n1600/s1" in g and g["best/s0/gen1"] == ("gen1/n400/s0/eval_interval=2,patience=2,stop=best",)
    res = Runner(cfg, tmp_path, **QUIET).run()
    st = res["stages"]
    T = TINY.block_size
    assert st["half/s0/gen2"]["passes"] == pytest.approx(12 * 8 * T / ((25 + 25) * T))  # 400 real + 400 synthetic
    assert st["big/s0/gen2"]["passes"] == pytest.approx(12 * 8 / 100)
    assert st["fully/s0/gen2"]["iters_trained"] == 12 and st["fully/s0/gen2"]["best_iter"] is None
    b = st["best/s0/gen2"]
    assert b["best_iter"] in b["curve"]["iter"] and b["iters_trained"] <= 12
    assert set(res["floor"]) == {"800", "400/eval_interval=2,patience=2,stop=best", "1600"}
    conf = json.loads((tmp_path / "config.json").read_text())
    assert conf["planned_passes"]["big"]["later"] == pytest.approx(0.96) and conf["n_real_extra"] == 800
    for key in ("icl_copy1", "icl_copy2", "icl_copy_gain", "icl_context_gain", "icl_context_gain_se"):
        assert math.isfinite(st["fully/s0/gen2"][key])
    again = Runner(cfg, tmp_path, **QUIET).run()  # resumes: nothing to do, same numbers
    assert again["stages"]["best/s0/gen2"]["l1_to_p1"] == b["l1_to_p1"]
    from collapse_lib.gpt.provenance import write_controls

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "README.md").write_text("# main results\n")
    for _ in range(2):  # the section is replaced, not repeated
        write_controls(tmp_path, dest)
    text = (dest / "README.md").read_text()
    assert text.startswith("# main results") and text.count("## Controls run") == 1
    assert "Status: **complete**" in text and "| best | 1 |" in text
    assert f"{b['entropy']:.3f}" in (dest / "controls" / "README.md").read_text()


def test_extra_real_set_leaves_the_first_draws_unchanged(tmp_path):
    """The real-set extension is drawn after everything else of p^(0): with it, p^(0), the real
    set, the contexts and generation 1 at n <= n_real are bit for bit those of a run without it."""
    chains = (Chain("fully", "fully", 800, seeds=(0,)),)
    a = Runner(_tiny(1, chains=chains, n_real_extra=0), tmp_path / "a", **QUIET).run()
    b = Runner(_tiny(1, chains=chains + (Chain("big", "fully", 1600, seeds=(0,)),)), tmp_path / "b", **QUIET).run()
    for st in ("p0", "gen1/n800/s0", "gen1/n800/s1"):
        for k in ("loss_real", "entropy", "l1_to_p0", "sample_text", "distinct4"):
            assert a["stages"][st].get(k) == b["stages"][st].get(k), (st, k)


def test_config_without_new_fields_keeps_its_fingerprint():
    committed = json.loads((Path(__file__).parents[1] / "results" / "gpt" / "config.json").read_text())
    cfg = RunConfig(**committed)
    assert cfg.to_dict() == committed  # old run directories still resume
    with pytest.raises(ValueError, match="unknown training settings"):
        Chain("x", "fully", 100, train={"stopp": "best"})
    with pytest.raises(ValueError, match="exceeds"):
        RunConfig(chains=(Chain("x", "fully", 200_000),))


def test_controls_preset_shares_the_committed_stages():
    c = controls_config()
    committed = RunConfig(**json.loads((Path(__file__).parents[1] / "results" / "gpt" / "config.json").read_text()))
    for k in ("model", "train", "seed", "n_real", "n_contexts", "corpus_chars", "threads"):
        assert getattr(c, k) == getattr(committed, k), k
    g = stage_graph(c)
    assert "gen1/n100000/s2" in g and "gen1/n200000/s2" in g and c.generations == 4
    assert c.to_dict()["preset"] == "controls"


def test_paper_preset_builds_and_trains_a_few_iterations():
    """The paper's configuration (nanoGPT's char-level Shakespeare) from the command line, two
    iterations of batch 2 on the CPU."""
    from collapse_lib.gpt.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["run", "--out", "x", "--preset", "paper", "--iters", "2",
                                                      "--batch-size", "2"]))
    m, tr = cfg.model, cfg.train
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout, m.bias) == (6, 6, 384, 256, 0.2, False)
    assert (tr.learning_rate, tr.min_lr, tr.warmup_iters, tr.beta2) == (1e-3, 1e-4, 2, 0.99)
    assert paper_config().train.max_iters == 2000 and paper_config().train.batch_size == 64
    assert cfg.preset == "paper" and cfg.to_dict()["preset"] == "paper"
    torch.manual_seed(0)
    model = GPT(m)
    assert 10.5e6 < model.num_params() < 11e6  # nanoGPT reports 10.65M parameters
    data = D.CharTokenizer().encode(D.build_corpus_text(target_chars=5_000))
    hist = train(model, data, tr, torch.Generator().manual_seed(0), progress=False)
    assert hist["iters_trained"] == 2 and math.isfinite(hist["train_loss"][-1])


# ----------------------------------------------------------------------------- in-context instruments
def _copier(device: str) -> GPT:
    """A 1-layer model trained briefly on repeated random strings: it learns to copy."""
    cfg = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    m = GPT(cfg).to(device)
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(300):
        s = torch.randint(65, (32, 8), generator=g)
        x = torch.cat([s, s], 1).to(device)
        _, loss = m(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def test_copy_probe_separates_a_copier_from_an_untrained_model(device):
    torch.manual_seed(0)
    fresh = GPT(GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=32)).to(device)
    f = copy_losses(fresh)
    assert f["copy1"] == pytest.approx(math.log(65), abs=0.1) and abs(f["copy_gain"]) < 5 * f["copy_gain_se"] + 0.02
    c = copy_losses(_copier(device))
    assert c["copy_gain"] > 1.0 and c["copy_gain"] > 10 * c["copy_gain_se"]
    assert c["copy1"] == pytest.approx(math.log(65), abs=0.3)  # the first copy stays unpredictable
    assert copy_losses(fresh) == f  # fixed strings: the same numbers every call
    assert copy_losses(fresh, seed=ICL_SEED + 1) != f
    with pytest.raises(ValueError, match="length"):
        copy_losses(fresh, length=9)


def test_context_gain_is_paired_and_zero_for_a_context_free_model(device):
    T = TINY.block_size
    torch.manual_seed(0)
    m = GPT(TINY).to(device)
    with torch.no_grad():  # no attention output, no positions: p(. | context) depends on the last token only
        for b in m.blocks:
            b.attn.c_proj.weight.zero_()
            b.attn.c_proj.bias.zero_()
        m.wpe.weight.zero_()
    streams = torch.randint(65, (20, T + 1), generator=torch.Generator().manual_seed(2))
    r = context_gain(m, streams, short=2)
    assert abs(r["context_gain"]) < 1e-5 and r["loss_full"] == pytest.approx(r["loss_short"], abs=1e-5)
    full = in_context_metrics(GPT(TINY).to(device), streams)
    assert {"icl_copy_gain", "icl_context_gain", "icl_loss_full"} <= set(full)
    with pytest.raises(ValueError, match="short"):
        context_gain(m, streams, short=T)
    with pytest.raises(ValueError, match="streams"):
        context_gain(m, streams[:, :-1])


# ----------------------------------------------------------------------------- attention kernel
def test_scaled_dot_product_attention_matches_explicit_attention(device):
    """The model's full-sequence attention (PyTorch's scaled_dot_product_attention, flash kernels
    on a GPU) equals the explicit softmax(q k^T / sqrt(d) + causal mask) v within float32 round-off."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=32, n_layer=1, n_head=4, n_embd=32)).to(device).eval()
    attn = m.blocks[0].attn
    x = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        y = attn(x)
        q, k, v = attn.c_attn(x).split(32, dim=2)
        q, k, v = (t.view(3, 32, 4, 8).transpose(1, 2) for t in (q, k, v))
        mask = torch.full((32, 32), float("-inf"), device=device).triu(1)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8) + mask, dim=-1)
        ref = attn.c_proj((att @ v).transpose(1, 2).reshape(3, 32, 32))
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5 if device == "cpu" else 1e-3)
