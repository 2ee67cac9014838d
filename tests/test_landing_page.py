"""The landing page's totals come from the chapters' "Before you start" boxes (_ext/course_times.py)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("course_times", ROOT / "_ext" / "course_times.py")
ct = importlib.util.module_from_spec(spec)
sys.modules.setdefault("course_times", ct)
spec.loader.exec_module(ct)


@pytest.mark.parametrize("text, minutes", [
    ("**Time:** about 45 minutes to read and run, plus about an hour for the exercises.", (45, 60)),
    ("**Time:** about an hour to read and run (the live demo takes under a minute), plus about\n"
     "two hours for the exercises.", (60, 120)),
    ("**Time:** about 1.5 hours to read and run, plus about 90 minutes for the exercises", (90, 90)),
])
def test_time_lines_are_read(text, minutes):
    assert ct.chapter_minutes(text) == minutes


def test_a_chapter_without_its_time_is_refused():
    with pytest.raises(ValueError, match="Time"):
        ct.chapter_minutes("**Time:** a while.")


def test_every_chapter_states_its_time_and_the_landing_page_uses_the_sums():
    chapters = ct.toc_chapters(ROOT)
    assert len(chapters) >= 10
    reading, exercises = ct.course_hours(ROOT)  # raises, naming the chapter, if a box is missing
    assert 5 <= reading <= 20 and 5 <= exercises <= 20
    index = (ROOT / "index.md").read_text()
    assert "{{ reading_hours }}" in index and "{{ exercise_hours }}" in index
