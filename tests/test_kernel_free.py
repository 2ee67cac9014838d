"""Kernel-free widgets (collapse_lib/widgets/kernel_free.py): specification, frames, HTML.

The browser side (sliders swap the figure) is tested by the site test on a built book.
"""

from __future__ import annotations

import base64
import json
import re

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from collapse_lib.widgets import kernel_free as kf  # noqa: E402

SLOPES = {"flat": 0.0, "steep": 2.0}


def line(kind: str = "flat", width: float = 1.0, n: int = 3):
    """A widget function in the course's style: checks its input, draws, returns (fig, numbers)."""
    if n < width:
        raise ValueError(f"n = {n} must be >= width = {width}")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, SLOPES[kind]], lw=width)
    return fig, {"slope": SLOPES[kind]}


def spec(**changes):
    base = {"function": line, "grid": {"kind": ["flat", "steep"], "width": [1.0, 4.0]}, "fixed": {"n": 4}}
    return {**base, **changes}


def test_spec_defaults_and_errors_name_the_key() -> None:
    checked = kf.check_spec(spec())
    assert checked["initial"] == {"kind": "flat", "width": 1.0}  # the function's defaults
    assert kf.check_spec(spec(initial={"width": 4.0}))["initial"] == {"kind": "flat", "width": 4.0}
    assert kf.check_spec({"function": "collapse_lib.widgets.simplex:simplex_figure",
                          "grid": {"n": [5, 10]}})["callable"].__name__ == "simplex_figure"
    bad = [
        (spec(grid={"kind": []}), r"grid\['kind'\] must be a non-empty list"),
        (spec(grid={"colour": ["red"]}), "no parameter 'colour'"),
        (spec(grid={"kind": ["flat", "flat"]}), "repeats a value"),
        (spec(fixed={"kind": "flat"}), r"\['kind'\] both in grid and fixed"),
        (spec(initial={"width": 2.0}), r"initial\['width'\] = 2.0 is not in the grid"),
        (spec(grid={"width": list(range(1, 66))}), "65 points; at most 64"),
        (spec(caption=3), "caption must be a string"),
        (spec(sliders=1), "unknown keys"),
        (spec(function="collapse_lib.widgets.nope:f"), "cannot be imported"),
        (spec(function="no_colon"), "must look like 'package.module:function'"),
    ]
    for value, message in bad:
        with pytest.raises(kf.WidgetSpecError, match=message):
            kf.check_spec(value)
    assert issubclass(kf.WidgetSpecError, ValueError)


def test_frames_differ_show_errors_and_fill_the_caption() -> None:
    checked = kf.check_spec(spec(caption="slope {slope:g} at width {width:g}"))
    points = kf.grid_points(checked)
    assert points == [{"kind": k, "width": w} for k in ("flat", "steep") for w in (1.0, 4.0)]
    frames = [kf.render_frame(checked, p) for p in points]
    pngs = [f[0] for f in frames]
    assert all(png.startswith(b"\x89PNG") for png in pngs) and len(set(pngs)) == 4
    assert frames[3][1] == "slope 2 at width 4"
    too_wide = kf.check_spec(spec(fixed={"n": 2}))
    png, caption, error = kf.render_frame(too_wide, {"kind": "flat", "width": 4.0})
    assert png is None and "n = 2 must be >= width = 4.0" in error
    assert matplotlib.get_backend().lower() == "agg" and not plt.get_fignums()


def test_a_function_that_returns_nothing_useful_is_refused() -> None:
    checked = kf.check_spec({"function": lambda k=1: 42, "grid": {"k": [1, 2]}})
    with pytest.raises(kf.WidgetSpecError, match="returned int"):
        kf.render_frame(checked, {"k": 1})


def test_widget_html_has_one_control_per_parameter_and_every_frame() -> None:
    checked = kf.check_spec(spec(initial={"kind": "steep", "width": 4.0}))
    frames = [{"src": f"f{i}.png", "caption": f"c{i}", "error": ""} for i in range(4)]
    html = kf.widget_html(checked, frames, "w1")
    assert '<select id="w1-0" data-kfw-param="0">' in html and 'value="1" selected' in html
    assert '<input type="range" id="w1-1" data-kfw-param="1" min="0" max="1" step="1" value="1">' in html
    assert 'src="f3.png"' in html and ">c3<" in html  # the initial frame is (steep, 4.0)
    data = json.loads(re.search(r'class="kfw-data">(.*?)</script>', html).group(1))
    assert data["frames"]["0,1"]["src"] == "f1.png" and data["labels"] == [["flat", "steep"], ["1", "4"]]
    with pytest.raises(kf.WidgetSpecError, match="3 frames for 4 grid points"):
        kf.widget_html(checked, frames[:3], "w1")


def test_kernel_free_in_a_notebook_only_draws_during_a_book_build(monkeypatch) -> None:
    monkeypatch.delenv(kf.ENV_FLAG, raising=False)
    calls = []

    def counted(kind="flat", width=1.0):
        calls.append((kind, width))
        return line(kind, width)

    assert kf.kernel_free(counted, grid={"kind": ["flat", "steep"]}) is None and calls == []
    with pytest.raises(kf.WidgetSpecError, match="no parameter 'colour'"):
        kf.kernel_free(counted, grid={"colour": ["red"]})  # checked even outside a build
    monkeypatch.setenv(kf.ENV_FLAG, "1")
    out = kf.kernel_free(counted, grid={"kind": ["flat", "steep"]}, fixed={"width": 2.0})
    assert calls == [("flat", 2.0), ("steep", 2.0)]
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", out.data)
    assert len(set(images)) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
