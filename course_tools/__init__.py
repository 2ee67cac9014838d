"""Classroom tooling of the course, kept apart from the science library ``collapse_lib``.

* :mod:`course_tools.assignments` -- nbgrader source/release notebooks from the chapters'
  exercise sections, and the exercise table of ``instructors.md``;
* :mod:`course_tools.grade` -- grading one untrusted submission safely (sandbox, deadline,
  reference tests from the instructor source);
* :mod:`course_tools.grade_class` -- a whole class through nbgrader's own pipeline;
* :mod:`course_tools.student_edition` -- the site without solutions, and the student notebooks.
"""
