"""Tests of collapse_lib.widgets.schemes (Chapters 6 and 7: mixing schemes, biased decoding).

Monte Carlo checks compare a sample mean with its target within K_SE standard errors computed
from the same sample; seeds are fixed.
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from collapse_lib import simulate as S  # noqa: E402
from collapse_lib import theory  # noqa: E402
from collapse_lib.decoding import Decoding  # noqa: E402
from collapse_lib.widgets import schemes as W  # noqa: E402

K_SE = 5


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _mean_se(x):
    x = np.asarray(x, dtype=float)
    return x.mean(), x.std(ddof=1) / math.sqrt(x.size)


# ----------------------------------------------------------------------------- scenarios
def test_make_scenario_types():
    assert isinstance(W.make_scenario("fully synthetic", 10), S.FullySynthetic)
    sc = W.make_scenario("most recent K", 10, K=5)
    assert isinstance(sc, S.RecentModels) and sc.K == 5 and sc.early == "fill"
    assert isinstance(W.make_scenario("random pool", 10), S.RandomPool)
    assert isinstance(W.make_scenario("accumulate", 10), S.Accumulate)
    assert isinstance(W.make_scenario("accumulate-subsample", 10), S.AccumulateSubsample)
    dec = Decoding(0.7)
    assert W.make_scenario("accumulate", 4, decoding=dec).decoding == dec


@pytest.mark.parametrize(
    "args",
    [
        ("nope", 10, 5),
        ("fully synthetic", 0, 5),
        ("fully synthetic", 2.5, 5),
        ("most recent K", 4, 5),  # K > n
        ("most recent K", 10, 0),
        ("accumulate", -3, 1),
    ],
)
def test_make_scenario_rejects_bad_input(args):
    with pytest.raises(ValueError):
        W.make_scenario(*args)


def test_make_scenario_rejects_bad_decoding():
    with pytest.raises(ValueError):
        W.make_scenario("fully synthetic", 10, decoding=0.7)


# ----------------------------------------------------------------------------- closed forms
def test_accumulate_subsample_S_small_cases():
    S0 = 0.3
    # m = 0 is S0; m = 1 is one multinomial draw of n real samples: 1/n + (1 - 1/n) S0
    assert W.accumulate_subsample_S(0, 7, S0) == pytest.approx(S0)
    assert W.accumulate_subsample_S(1, 7, S0) == pytest.approx(1 / 7 + (1 - 1 / 7) * S0)
    # n = 1: every model is a single point, sigma = 1
    assert np.allclose(W.accumulate_subsample_S(np.arange(1, 6), 1, S0), 1.0)
    # m = 2 by hand: pool of 2n points, half real, half from p^(1); subsample n of them
    n = 4
    h = n / (2 * n - 1)
    c1 = 1.0  # h_1 = 0
    expected = 1 - (1 - S0) * (1 - 1 / n) * (1 - h / n) * (1 - c1 / (n * 4))
    assert W.accumulate_subsample_S(2, n, S0) == pytest.approx(expected)
    vals = W.accumulate_subsample_S(np.arange(200), 10, S0)
    assert np.all(np.diff(vals) >= 0) and vals[-1] < 1  # increasing, bounded away from 1
    # between accumulate (no subsampling noise) and 1
    assert np.all(vals[1:] >= theory.accumulate_S(np.arange(1, 200), 10, S0) - 1e-12)


@pytest.mark.parametrize("bad", [dict(m=-1, n=5, S0=0.2), dict(m=1.5, n=5, S0=0.2), dict(m=3, n=0, S0=0.2),
                                 dict(m=3, n=5, S0=0.0), dict(m=3, n=5, S0=1.5), dict(m=[], n=5, S0=0.2)])
def test_accumulate_subsample_S_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        W.accumulate_subsample_S(**bad)


@pytest.mark.parametrize("n", [3, 10])
def test_accumulate_subsample_S_matches_simulation(n):
    p0 = np.array([0.5, 0.3, 0.2])
    S0 = float(p0 @ p0)
    res = S.simulate(p0, S.AccumulateSubsample(n), 20, runs=6000, seed=[1, n])
    for m in (2, 5, 20):
        mu, se = _mean_se(res.sigma[:, m])
        assert abs(mu - W.accumulate_subsample_S(m, n, S0)) <= K_SE * se


def test_random_pool_shares_accumulate_S():
    p0 = np.array([0.6, 0.3, 0.1])
    S0 = float(p0 @ p0)
    res = S.simulate(p0, S.RandomPool(5), 30, runs=6000, seed=2)
    for m in (1, 3, 30):
        mu, se = _mean_se(res.sigma[:, m])
        assert abs(mu - theory.accumulate_S(m, 5, S0)) <= K_SE * se


def test_theory_S_dispatch():
    m = np.arange(5)
    assert np.allclose(W.theory_S("fully synthetic", m, 10, 0.1), theory.fully_synthetic_S(m, 10, 0.1))
    assert np.allclose(W.theory_S("random pool", m, 10, 0.1), theory.accumulate_S(m, 10, 0.1))
    assert W.theory_S("most recent K", m, 10, 0.1) is None
    assert W.theory_S("accumulate", m, 10, 0.1, Decoding(0.8)) is None
    assert W.theory_S("accumulate", m, 10, 0.1, Decoding()) is not None


# ----------------------------------------------------------------------------- run_scheme, collapse times
def test_run_scheme_collapse_times():
    fs = W.run_scheme("fully synthetic", 5, 1, generations=10, runs=50, seed=0, until_collapse=True)
    assert np.all(fs.times > 0) and fs.collapsed_fraction == 1.0
    assert np.array_equal(fs.times, fs.result.absorption_time)
    t, se = fs.mean_time()
    assert t >= 1 and se > 0
    acc = W.run_scheme("accumulate", 5, 1, generations=10, runs=50, seed=0, until_collapse=True)
    # until_collapse is ignored for schemes that cannot be absorbed; their times are first-Dirac times
    assert acc.result.generations_run == 10
    assert np.array_equal(acc.times, acc.result.collapse_time)


def test_window_absorbs_and_lands_like_p():
    p0 = np.array([0.5, 0.3, 0.2])
    run = W.run_scheme("most recent K", 6, 3, generations=1, runs=2000, seed=3, p0=p0, until_collapse=True)
    assert np.all(run.result.absorption_time > 0)
    for i in range(3):
        f = np.mean(run.result.winner == i)
        assert abs(f - p0[i]) <= K_SE * math.sqrt(p0[i] * (1 - p0[i]) / 2000)


# ----------------------------------------------------------------------------- figures
def test_scheme_figure_default_and_summary():
    fig, run = W.scheme_figure(generations=40, runs=10)
    assert len(fig.axes) == 3
    assert run.scheme == "most recent K" and run.result.sigma.shape == (10, 41)
    for ax in fig.axes:
        assert ax.get_xlabel()
    # panel 0 holds the runs, the mean, and the fully synthetic baseline; no closed form for a window
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "mean over runs" in labels and "fully synthetic, T=1" in labels
    assert "closed form $S_m$" not in labels


@pytest.mark.parametrize("scheme", W.SCHEMES)
def test_scheme_figure_every_scheme(scheme):
    fig, run = W.scheme_figure(scheme=scheme, n=5, K=2, temperature=0.9, top_p=0.95, generations=15,
                               runs=5, baseline=False)
    assert run.scheme == scheme
    assert run.result.scenario.decoding == Decoding(0.9, None, 0.95)
    assert np.all((run.result.sigma >= 0) & (run.result.sigma <= 1 + 1e-12))


def test_scheme_figure_draws_closed_form_when_unbiased():
    fig, _ = W.scheme_figure(scheme="accumulate", n=5, generations=10, runs=5, baseline=False)
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "closed form $S_m$"]
    assert len(line) == 1
    assert np.allclose(line[0].get_ydata(), theory.accumulate_S(np.arange(11), 5, 0.1), atol=1e-6)
    fig, _ = W.scheme_figure(scheme="accumulate", n=5, temperature=0.8, generations=10, runs=5, baseline=False)
    assert not [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "closed form $S_m$"]


def test_scheme_figure_temperature_speeds_collapse():
    _, cold = W.scheme_figure(scheme="fully synthetic", n=20, temperature=0.6, generations=200, runs=60, seed=1,
                              baseline=False)
    _, unb = W.scheme_figure(scheme="fully synthetic", n=20, temperature=1.0, generations=200, runs=60, seed=1,
                             baseline=False)
    assert cold.collapsed_fraction == 1.0
    (tc, sc), (tu, su) = cold.mean_time(), unb.mean_time()
    assert tu - tc > K_SE * math.hypot(sc, su)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scheme="bogus"),
        dict(n=0),
        dict(K=0),
        dict(scheme="most recent K", n=4, K=5),
        dict(temperature=0.0),
        dict(temperature=-1.0),
        dict(temperature=float("nan")),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(generations=0),
        dict(runs=1),
    ],
)
def test_scheme_figure_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        W.scheme_figure(**{**dict(generations=5, runs=3), **kwargs})


def test_compare_schemes_and_figure4_small():
    fig, runs = W.compare_schemes(n=5, K=2, generations=20, runs=5, schemes=("fully synthetic", "accumulate"))
    assert set(runs) == {"fully synthetic", "accumulate"} and len(fig.axes) == 3
    with pytest.raises(ValueError):
        W.compare_schemes(schemes=())
    with pytest.raises(ValueError):
        W.compare_schemes(schemes=("fully synthetic", "unknown"))
    cols = W.figure4_runs(columns=(("fully synthetic", 1), ("random pool", 1)), n=5, generations=20, runs=5)
    assert len(cols) == 2 and np.all(cols[0].times > 0)  # fully synthetic is run until absorption
    for row in W.FIGURE4_ROWS:
        fig = W.figure4_row(cols, row)
        assert fig.get_size_inches()[0] <= 8.0 + 1e-9
        assert sum(ax.get_visible() for ax in fig.axes) == 2
    with pytest.raises(ValueError, match="columns"):
        W.figure4_runs(columns=())
    with pytest.raises(ValueError, match="row"):
        W.figure4_row(cols, "histogram")
    with pytest.raises(ValueError, match="runs4"):
        W.figure4_row([], "sigma")


def test_figure4_rows_are_readable_and_light():
    """Four schemes on a 2 x 2 grid (never more than 2 panels side by side); the per-run lines are
    rasterised so that the SVG stays small; histograms keep their own time axes."""
    import io

    cols = W.figure4_runs(n=10, generations=60, runs=20)
    for row in W.FIGURE4_ROWS:
        fig = W.figure4_row(cols, row)
        pos = {(round(ax.get_position().x0, 2)) for ax in fig.axes if ax.get_visible()}
        assert len(pos) == 2 and len(fig.axes) == 4
        buf = io.BytesIO()
        fig.savefig(buf, format="svg")
        assert buf.tell() < 400_000, (row, buf.tell())
    fig = W.figure4_row(cols, "times")
    assert fig.axes[0].get_xlim() != fig.axes[2].get_xlim()


def test_scheme_widget_caption_numbers():
    fig, info = W.scheme_widget(scheme="fully synthetic", n=5, generations=60, runs=20)
    assert set(info) == {"label", "collapsed", "mean_T", "sigma_end", "base_end"}
    assert info["collapsed"].endswith("%") and "±" in info["mean_T"] and "±" in info["sigma_end"]
    assert info["collapsed"] == "100%" and info["base_end"] == "1.000"  # n = 5: every run collapses by 60
    _, info = W.scheme_widget(scheme="accumulate", n=50, generations=5, runs=5)
    assert info["mean_T"] == "none" and info["collapsed"] == "0%"
