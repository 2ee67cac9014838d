"""The counting n-gram model of chapter 9 (``collapse_lib.gpt.ngram``) against the theory.

With context length k = 0 every position is the same context, the per-generation sample is
multinomial, and the chain is exactly the paper's fully/partially synthetic model: Theorem 1 and
Theorem 2 (corrected) must hold within Monte Carlo standard errors. The per-context predictions
(B1), (B2) with varying counts must reduce to the theorems for constant counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from collapse_lib import theory
from collapse_lib.gpt.ngram import (CountModel, bridge_fully, context_codes, predicted_S_fully,
                                    predicted_S_partially, run_chain)

P0 = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
S0 = float((P0**2).sum())


def _iid_streams(rng, n_streams, T, p=P0, start=0):
    s = rng.choice(len(p), size=(n_streams, T + 1), p=p)
    s[:, 0] = start
    return s


def test_context_codes_distinguish_lengths_and_positions():
    s = np.array([[0, 1, 2, 1, 2]])
    c = context_codes(s, 2, 3)
    # contexts before targets 1..4: (pad,0) (0,1) (1,2) (2,1); (1,2) recurs at target 5? no: 4 targets
    assert c.shape == (1, 4)
    assert len(set(c[0].tolist())) == 4
    c1 = context_codes(np.array([[0, 1, 1, 1]]), 1, 3)
    assert c1[0, 1] == c1[0, 2] != c1[0, 0]
    with pytest.raises(ValueError, match="k must be"):
        context_codes(s, -1, 3)
    with pytest.raises(ValueError, match="streams must be"):
        context_codes(np.zeros(5), 1, 3)


def test_count_model_is_the_frequency_table():
    s = np.array([[0, 1, 1, 2], [0, 1, 2, 2]])
    m = CountModel.fit(s, 1, 3)
    P = m.probs()
    row = m.lookup(context_codes(np.array([[1, 0]]), 1, 3)[0])[0]  # context "1"
    assert P[row].tolist() == pytest.approx([0, 1 / 3, 2 / 3])
    assert np.allclose(P.sum(axis=1), 1)


def test_sampling_follows_the_table_and_never_meets_an_unseen_context():
    rng = np.random.default_rng(0)
    real = _iid_streams(rng, 200, 12, p=np.array([0.6, 0.3, 0.1]))
    m = CountModel.fit(real, 3, 3)
    out, backoffs = m.sample(400, 12, 0, rng, data=real)
    assert out.shape == (400, 13) and (out[:, 0] == 0).all()
    # every (context, next) pair drawn from a seen context has a positive count in the table;
    # only contexts seen solely at the end of a training stream needed a back-off
    codes = context_codes(out, 3, 3).ravel()
    rows = m.lookup(codes)
    seen = rows >= 0
    assert (m.counts[rows[seen], out[:, 1:].ravel()[seen]] > 0).all()
    assert backoffs == (~seen).sum() < 0.02 * seen.size
    # the frequencies of the first draw after the start token follow the table's first row
    first = m.lookup(context_codes(out[:1], 3, 3)[:, :1].ravel())[0]
    f = np.bincount(out[:, 1], minlength=3) / 400
    p = m.probs()[first]
    assert np.all(np.abs(f - p) < 4 * np.sqrt(p * (1 - p) / 400) + 1e-12)


@pytest.mark.parametrize("scheme", ["fully", "partially"])
def test_order_zero_chain_reproduces_theorems_1_and_2(scheme):
    """k = 0: one context with n = streams * T draws per generation -> eq. (6) / corrected (9)."""
    rng = np.random.default_rng(1)
    n_streams, T, G, R = 2, 3, 5, 1500  # n = N = 6 characters per generation
    n = n_streams * T
    S = np.array([run_chain(_iid_streams(rng, n_streams, T), 0, len(P0), G, scheme, n_streams, rng)["S"][0]
                  for _ in range(R)])
    m = np.arange(1, G + 1)
    expected = (theory.fully_synthetic_S(m, n, S0) if scheme == "fully"
                else theory.partially_synthetic_S(m, n, n, S0))
    se = S.std(axis=0, ddof=1) / np.sqrt(R)
    z = (S.mean(axis=0) - expected) / se
    assert np.abs(z).max() < 4, z
    # the check binds: it rejects plausible wrong answers by many standard errors
    if scheme == "fully":
        wrongs = {"off by one generation": (theory.fully_synthetic_S(m - 1, n, S0), 8)}
    else:
        wrongs = {"the printed sign of eq. (9)": (theory.partially_synthetic_S_printed(m, n, n, S0), 4),
                  "real data ignored": (theory.fully_synthetic_S(m, n, S0), 8)}
    for name, (wrong, z_min) in wrongs.items():
        assert np.abs((S.mean(axis=0) - wrong) / se).max() > z_min, name


def test_varying_count_predictions_reduce_to_the_theorems():
    S1, n, N = np.array([0.3, 0.5]), 10, 10
    pf = predicted_S_fully(S1, np.full((2, 4), n))
    assert np.allclose(pf[:, 3], 1 - (1 - S1) * (1 - 1 / n) ** 3)
    # (B2) averaged over the real sample r ~ Mult(N, p0)/N gives Theorem 2 (corrected) for constant n
    rng = np.random.default_rng(2)
    r = rng.multinomial(N, P0, size=200_000) / N
    pp = predicted_S_partially((r**2).sum(axis=1), np.full(len(r), N), np.full((len(r), 5), n)).mean(axis=0)
    exact = theory.partially_synthetic_S(np.arange(1, 7), N, n, S0)
    assert np.allclose(pp, exact, atol=1.5e-3), (pp, exact)
    # and differs from the printed (wrong-sign) form where that form is wrong
    printed = theory.partially_synthetic_S_printed(np.arange(1, 7), N, n, S0)
    assert np.abs(pp - printed).max() > 1e-2
    with pytest.raises(ValueError):
        predicted_S_fully(S1, np.zeros((2, 3)))


def test_bridge_on_an_order_one_markov_text_holds_within_standard_errors():
    """k = 1 on i.i.d. text: (B1) per context with the measured counts, pooled over chains."""
    rng = np.random.default_rng(3)
    chains = [run_chain(_iid_streams(rng, 30, 20), 1, len(P0), 5, "fully", 30, rng) for _ in range(60)]
    b = bridge_fully(chains)
    d = np.array(b["measured"]) - np.array(b["predicted"])
    assert np.all(np.abs(d[1:]) < 4 * np.array(b["se"][1:]) + 1e-12), (d, b["se"])
    assert abs(b["residual"]) < 4 * b["residual_se"]


def test_probs_at_uses_the_order_k_context_and_backs_off_when_unseen():
    s = np.array([[0, 1, 2, 1, 2, 1], [0, 2, 2, 2, 2, 2]])
    m = CountModel.fit(s, 2, 3)
    ctx = np.array([[0, 1, 2, 1], [0, 1, 1, 0]])
    P, backed = m.probs_at(ctx, np.array([4, 4]), s)
    assert not backed[0] and P[0].tolist() == pytest.approx([0, 0, 1])  # context (2, 1) -> always 2
    assert backed[1]  # context (1, 0) never seen; order-1 context (0) never followed at t>1 either
    assert P[1].sum() == pytest.approx(1)


def test_predicted_support_is_the_wright_fisher_loss_law():
    from collapse_lib.gpt.ngram import predicted_support_fully

    # one context, counts (3, 1) of 4, then 4 draws per generation: exact two-allele chain
    pr = predicted_support_fully(np.array([[3, 1, 0]]), np.array([[4, 4]]))
    # P(minor allele survives one step) = 1 - (3/4)^4; both survive unless one is lost
    p_lost_minor = (3 / 4) ** 4
    p_lost_major = (1 / 4) ** 4
    assert pr[0, 0] == 2 and pr[0, 1] == pytest.approx(2 - p_lost_minor - p_lost_major)
    # Monte Carlo of the same chain
    rng = np.random.default_rng(4)
    major = np.full(200_000, 3)
    for _ in range(2):  # two generations of 4 draws: the major character's count is binomial
        major = rng.binomial(4, major / 4)
    mc = (major > 0).astype(int) + (major < 4)
    assert abs(mc.mean() - pr[0, 2]) < 4 * mc.std() / np.sqrt(len(mc))


def test_support_bridge_on_order_one_iid_text():
    rng = np.random.default_rng(5)
    chains = [run_chain(_iid_streams(rng, 20, 10), 1, len(P0), 4, "fully", 20, rng) for _ in range(40)]
    b = bridge_fully(chains)
    d = np.array(b["support_measured"]) - np.array(b["support_predicted"])
    assert np.all(np.abs(d) <= 4 * np.array(b["support_se"]) + 1e-12), (d, b["support_se"])
    assert b["support_measured"][-1] < b["support_measured"][0] - 0.3  # support is lost: the check binds


def test_tempered_law_is_chapter_7s_temperature_transform():
    from collapse_lib.gpt.ngram import tempered

    P = np.array([[0.5, 0.3, 0.2, 0.0], [1.0, 0.0, 0.0, 0.0]])
    w = P[0, :3] ** 2
    assert np.allclose(tempered(P, 0.5)[0], np.r_[w / w.sum(), 0.0])  # p^(1/T), zeros stay zero
    assert tempered(P, 0.5)[1].tolist() == [1.0, 0.0, 0.0, 0.0]  # a Dirac mass is a fixed point
    assert tempered(P, 1.0) is P
    for bad in (0.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            tempered(P, bad)


def test_predicted_S_tempered_checks_its_arguments():
    from collapse_lib.gpt.ngram import predicted_S_tempered

    assert predicted_S_tempered(np.array([0.5]), np.array([4.0]))[0] == pytest.approx(1 - 0.75 * 0.5)
    with pytest.raises(ValueError, match="n_j"):
        predicted_S_tempered(np.array([0.5]), np.array([0.0]))
    with pytest.raises(ValueError, match="same shape"):
        predicted_S_tempered(np.array([0.5, 0.2]), np.array([3.0]))
    with pytest.raises(ValueError, match="collision"):
        predicted_S_tempered(np.array([1.5]), np.array([3.0]))


def test_tempered_bridge_predicts_a_cold_chain_where_the_unbiased_formula_fails():
    """k = 1 on i.i.d. text sampled at T = 0.8: (B1T), one step from each context's measured law,
    matches the measured mean S within standard errors; (B1) misses it by many."""
    rng = np.random.default_rng(6)
    chains = [run_chain(_iid_streams(rng, 50, 20), 1, len(P0), 5, "fully", 50, rng, temperature=0.8)
              for _ in range(60)]
    b = bridge_fully(chains)
    assert b["formula"] == "B1T"
    meas = np.array(b["measured"])
    zT = (meas - np.array(b["predicted_tempered"]))[1:] / np.array(b["se_tempered"])[1:]
    zB1 = (meas - np.array(b["predicted"]))[1:] / np.array(b["se"])[1:]
    assert np.abs(zT).max() < 4, zT
    assert zB1.max() > 8, zB1  # the unbiased formula is wrong here: the check binds
    # at T = 1 both formulas apply and (B1T) is the one-step form of (B1)
    rng = np.random.default_rng(7)
    warm = [run_chain(_iid_streams(rng, 30, 20), 1, len(P0), 4, "fully", 30, rng) for _ in range(40)]
    bw = bridge_fully(warm)
    assert bw["formula"] == "B1"
    for ch in warm:
        assert np.array_equal(ch["S_tempered"], ch["S"], equal_nan=True)
    d = np.array(bw["measured"]) - np.array(bw["predicted_tempered"])
    assert np.all(np.abs(d[1:]) < 4 * np.array(bw["se_tempered"][1:]) + 1e-12), d


def test_report_bridge_rows_label_the_formula_that_applies():
    """``report.bridge_rows`` judges a chain sampled at T != 1 by (B1T) and keeps (B1) beside it."""
    from collapse_lib.gpt import report

    rng = np.random.default_rng(8)
    cold = [run_chain(_iid_streams(rng, 50, 20), 1, len(P0), 4, "fully", 50, rng, temperature=0.8)
            for _ in range(20)]
    warm = [run_chain(_iid_streams(rng, 50, 20), 1, len(P0), 4, "fully", 50, rng) for _ in range(20)]
    run = {"ngram": {"chains": {
        "k1/cold": {"k": 1, "chain": "cold", "temperature": 0.8, "bridge": bridge_fully(cold)},
        "k1/warm": {"k": 1, "chain": "warm", "temperature": 1.0, "bridge": bridge_fully(warm)}}}}
    rows = {r["chain"]: r for r in report.bridge_rows(run)}
    assert rows["cold"]["formula"] == "B1T" and rows["warm"]["formula"] == "B1"
    cold_bridge = run["ngram"]["chains"]["k1/cold"]["bridge"]
    assert rows["cold"]["predicted"] == pytest.approx(cold_bridge["predicted_tempered"][-1])
    assert abs(rows["cold"]["z"]) < 4 < rows["cold"]["z_unbiased"]
    with pytest.raises(ValueError, match="ngram"):
        report.bridge_rows({})


def test_recipe_passes_and_merge_runs():
    from collapse_lib.gpt import report

    assert report.recipe_passes(2000, 64, 256, 100_000) == pytest.approx(327.68)
    with pytest.raises(ValueError, match="n must be"):
        report.recipe_passes(2000, 64, 256, 0)
    a = {"config": {"chains": [{"name": "x"}], "generations": 6}, "stages": {"p0": 1}, "floor": {"1": 1}}
    b = {"config": {"chains": [{"name": "y"}], "generations": 4}, "stages": {"p0": 2, "y/s0/gen1": 3},
         "floor": {"1": 9, "2": 2}}
    m = report.merge_runs(a, b)
    assert [c["name"] for c in m["config"]["chains"]] == ["x", "y"] and m["config"]["generations"] == 6
    assert m["stages"]["p0"] == 1 and m["floor"] == {"1": 1, "2": 2}
    with pytest.raises(ValueError, match="both runs"):
        report.merge_runs(a, a)


def test_add_tempered_predictions_on_a_p0_stage(tmp_path):
    """The tempered prediction is added to a stored ngram.json from a run's p^(0) stage: merged
    into the bridge when the re-run reproduces the stored S, stored beside it when it does not."""
    import json

    import torch

    from collapse_lib.gpt.ngram import add_tempered_predictions, zlib_crc
    from collapse_lib.gpt.runner import StageRunner, quick_config

    cfg = quick_config(generations=3)
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    st = StageRunner(cfg, tmp_path)
    T, V, seeds = cfg.model.block_size, cfg.model.vocab_size, 3
    real = _iid_streams(np.random.default_rng(9), 40, T, start=st.start)
    st.save("p0", {"real": torch.from_numpy(real)}, {})
    chains = [{"name": "cold", "scheme": "fully", "n": 30 * T, "temperature": 0.8},
              {"name": "warm", "scheme": "fully", "n": 30 * T, "temperature": 1.0}]
    stored = {"orders": [1], "seeds": seeds, "generations": 3, "chains": {}}
    for c in chains:
        runs = [run_chain(real, 1, V, 3, "fully", 30, np.random.default_rng([cfg.seed, 1, zlib_crc(c["name"]), s]),
                          c["temperature"], st.start) for s in range(seeds)]
        b = bridge_fully(runs, support=False)
        for key in ("predicted_tempered", "se_tempered", "formula"):
            b.pop(key)  # as written before the tempered prediction existed
        stored["chains"][f"k1/{c['name']}"] = {"k": 1, "chain": c["name"], "bridge": b}
    path = tmp_path / "ngram.json"
    path.write_text(json.dumps(stored))
    res = add_tempered_predictions(tmp_path, path, chains, dest=tmp_path / "same.json")
    cold, warm = res["chains"]["k1/cold"], res["chains"]["k1/warm"]
    assert cold["bridge"]["formula"] == "B1T" and "bridge_tempered" not in cold
    assert len(cold["bridge"]["predicted_tempered"]) == 3 and warm["bridge"]["formula"] == "B1"
    assert cold["temperature"] == 0.8 and res["formulas"]["B1T"].startswith("tempered")
    # a stored file from another real set: the re-run is kept beside the stored bridge
    stored["chains"]["k1/cold"]["bridge"]["measured"][-1] += 0.01
    path.write_text(json.dumps(stored))
    res = add_tempered_predictions(tmp_path, path, chains)
    cold = res["chains"]["k1/cold"]
    assert cold["bridge"]["formula"] == "B1" and cold["bridge_tempered"]["same_real_set"] is False
    assert cold["bridge_tempered"]["formula"] == "B1T"
    with pytest.raises(ValueError, match="not in `chains`"):
        add_tempered_predictions(tmp_path, path, chains[:1])
