"""The shared page pieces of issue 25: the figure style, the figure helper, the table helper and
the kernel-free widget's labels."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from collapse_lib import plotting
from collapse_lib.tables import pm, table
from collapse_lib.widgets import kernel_free as kf


def test_new_axes_never_wider_than_the_column():
    for ncols, width in [(1, None), (2, 4.6), (3, 4.0), (3, None), (1, 12.0)]:
        fig, _ = plotting.new_axes(ncols, width=width)
        assert fig.get_size_inches()[0] <= plotting.FIG_WIDTH + 1e-9
    fig, _ = plotting.new_axes(2, width=3.0, height=3.0)  # narrower than the column: kept as asked
    np.testing.assert_allclose(fig.get_size_inches(), [6.0, 3.0])
    fig, _ = plotting.new_axes(2, width=8.0, height=4.0)  # scaled down, aspect kept
    np.testing.assert_allclose(fig.get_size_inches(), [8.0, 2.0])


@pytest.mark.parametrize("kwargs, word", [(dict(ncols=4), "ncols=4"), (dict(ncols=0), "ncols"),
                                          (dict(width=-1), "width"), (dict(height="big"), "height")])
def test_new_axes_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        plotting.new_axes(**kwargs)


def test_course_style_text_is_page_sized():
    plotting.use_course_style(svg=False)
    assert matplotlib.rcParams["font.size"] * 96 / 72 >= 13.9  # at least 14 px at natural size
    assert matplotlib.rcParams["figure.figsize"][0] == plotting.FIG_WIDTH


def test_table_html_has_caption_formats_and_stable_ids():
    t = table({"n": [10, 1000], "mean": [1.23456, 2.0], "value": [pm(1.0, 0.25, 2), "x"]},
              caption="Means per n.", formats={"mean": "{:.2f}"})
    html = t.to_html()
    assert "<caption>Means per n.</caption>" in html and "1.23" in html and "1,000" in html
    assert "1.00 ± 0.25" in html and "1.23456" not in html and "course-table" in html
    assert html == table({"n": [10, 1000], "mean": [1.23456, 2.0], "value": [pm(1.0, 0.25, 2), "x"]},
                         caption="Means per n.", formats={"mean": "{:.2f}"}).to_html()
    rows = table([(1, 0.5), (2, 0.25)], columns=["m", "p"], caption="Rows.").to_html()
    assert "0.500" in rows


@pytest.mark.parametrize("kwargs, word", [
    (dict(data={"a": [1]}, caption=""), "caption"),
    (dict(data={"a": [1], "b": [1, 2]}, caption="c"), "length"),
    (dict(data=[(1, 2)], caption="c"), "columns"),
    (dict(data=[(1, 2)], columns=["a"], caption="c"), "entries"),
    (dict(data={"a": [1]}, caption="c", formats={"z": "{:.1f}"}), "formats"),
    (dict(data={f"c{i}": [1] for i in range(12)}, caption="c"), "split"),
    (dict(data=3, caption="c"), "data"),
])
def test_table_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        table(**kwargs)


def _frame(lam=0.1, n=5):
    fig, ax = plotting.new_axes()
    ax.plot([0, 1], [0, lam])
    return fig, {"peak": lam * n}


def test_kernel_free_labels_and_caption_reach_the_page():
    spec = kf.check_spec({"function": _frame, "grid": {"lam": [0.1, 0.2], "n": [5]},
                          "labels": {"lam": "penalty λ"}, "caption": "peak {peak:.2f}"})
    png, caption, error = kf.render_frame(spec, {"lam": 0.2, "n": 5})
    assert caption == "peak 1.00" and not error and png[:4] == b"\x89PNG"
    width = int.from_bytes(png[16:20], "big")
    assert width == round(plotting.FIG_WIDTH * kf.FRAME_DPI)  # as wide as the static figures
    frames = [{"src": "data:,", "caption": f"peak {v:.2f}", "error": ""} for v in (0.5, 1.0)]
    html = kf.widget_html(spec, frames, "u1")
    assert ">penalty λ</label>" in html and ">n</label>" in html and 'alt="peak 0.50"' in html
    with pytest.raises(kf.WidgetSpecError, match="labels"):
        kf.check_spec({"function": _frame, "grid": {"lam": [0.1]}, "labels": {"mu": "x"}})


def test_kernel_free_controls_follow_the_function_signature():
    spec = kf.check_spec({"function": _frame, "grid": {"n": [5, 6], "lam": [0.1]}})  # JSON sorts keys
    assert list(spec["grid"]) == ["lam", "n"]
