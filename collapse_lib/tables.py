"""Tables for the page: computed results shown as HTML tables with a caption, never printed text.

A chapter builds its rows as plain Python values and calls :func:`table`; the result is a pandas
``Styler``, which Jupyter, Colab and the book all display as an HTML table (the book gives it the
theme's table style; long tables scroll inside their own box instead of widening the page). Numbers
are formatted per column, so the page shows what the prose quotes (the prose still glues its numbers)::

    table(
        {"n": ns, "E[T] simulated": means, "s.e.": ses, "bound (8)": bounds},
        caption="Theorem 2.1 (the paper's Theorem 1) against simulation, 2000 runs per row.",
        formats={"E[T] simulated": "{:.2f}", "s.e.": "{:.2f}"},
    )

Cells that hold a mean and its standard error read best as two columns, or as text made with
:func:`pm`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["table", "pm"]

MAX_COLUMNS = 9  # wider tables do not fit the 784-px column: split them


def pm(mean: float, se: float, digits: int = 3) -> str:
    """``"mean ± se"`` with ``digits`` decimals (a cell for a table or a glued value)."""
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def table(data: Any, *, caption: str, formats: Mapping[str, str] | str | None = None,
          columns: Sequence[str] | None = None, index: bool = False, digits: int = 3):
    """An HTML table (pandas ``Styler``) of ``data`` with a caption.

    Parameters
    ----------
    data : a ``pandas.DataFrame``, a mapping column -> values, or a sequence of rows (then
        ``columns`` names them).
    caption : what the table shows and with which parameters (shown above the table).
    formats : a format string for every number (``"{:.3f}"``), or per column; columns without one
        show floats with ``digits`` decimals and integers with thousands separators.
    index : show the DataFrame's index as the first column (default: hidden).
    """
    import pandas as pd

    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("caption must be a non-empty string: say what the table shows")
    if isinstance(data, pd.DataFrame):
        df = data.copy()
        if columns is not None:
            raise ValueError("columns is only for a sequence of rows; a DataFrame has its own")
    elif isinstance(data, Mapping):
        if columns is not None:
            raise ValueError("columns is only for a sequence of rows; a mapping names its columns")
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"data columns differ in length: {lengths}")
        df = pd.DataFrame(dict(data))
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if columns is None:
            raise ValueError("a sequence of rows needs columns=[...] to name them")
        rows = [list(r) for r in data]
        bad = [i for i, r in enumerate(rows) if len(r) != len(columns)]
        if bad:
            raise ValueError(f"rows {bad[:5]} do not have {len(columns)} entries (columns={list(columns)})")
        df = pd.DataFrame(rows, columns=list(columns))
    else:
        raise ValueError(f"data must be a DataFrame, a mapping or a sequence of rows, got {type(data).__name__}")
    if df.shape[1] > MAX_COLUMNS:
        raise ValueError(f"{df.shape[1]} columns do not fit the page (at most {MAX_COLUMNS}); split the table")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 12:
        raise ValueError(f"digits must be an integer in 0..12, got {digits!r}")

    def default(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return str(v)
        if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
            return f"{int(v):,}"
        if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
            return "–" if v != v else f"{float(v):.{digits}f}"
        return str(v)

    per_col: dict[str, Any] = {c: default for c in df.columns}
    if isinstance(formats, str):
        per_col.update({c: formats for c in df.columns if df[c].dtype.kind in "iuf"})
    elif formats is not None:
        unknown = set(formats) - set(df.columns)
        if unknown:
            raise ValueError(f"formats names columns that are not in the table: {sorted(unknown)}")
        per_col.update(formats)
    import hashlib

    uid = hashlib.sha1(caption.encode()).hexdigest()[:10]  # stable ids: the same table gives the same HTML
    styler = df.style.format(per_col).set_caption(caption).set_uuid(uid)
    styler = styler.set_table_attributes('class="course-table"')
    return styler if index else styler.hide(axis="index")
