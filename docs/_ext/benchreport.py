"""Sphinx directive ``bench-report``: render a saved ``python -m joblite bench --json`` document.

``.. bench-report:: _data/bench.json`` (a path relative to the page) inserts
the machine facts and one table per section, as
:func:`joblite.bench.report.format_rst` renders them, so that the
performance page is regenerated from the recorded run at every build.
"""

from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

from joblite.bench.report import format_rst, rows_from_json


class BenchReport(Directive):
    required_arguments = 1

    def run(self):
        env = self.state.document.settings.env
        relative, path = env.relfn2path(self.arguments[0], env.docname)
        env.note_dependency(relative)
        with open(path, encoding="utf-8") as file:
            rows, facts = rows_from_json(file.read())
        # Inserted like an included file, so that each section's title starts a section of the page.
        self.state_machine.insert_input(StringList(format_rst(rows, facts).splitlines(), source=path), path)
        return []


def setup(app):
    app.add_directive("bench-report", BenchReport)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
