"""The report of ``python -m joblite bench`` (joblite.bench.report): the tables, the JSON document, reST.

The expected text below is the report's format, one table per section with
only the columns the section uses: a change to it shows here.
"""

import json
import pathlib

import pytest

import joblite
from joblite.bench.report import (
    PURE_TARGETS,
    SCHEMA,
    WIDTH,
    Row,
    add_speedups,
    format_markdown,
    format_rst,
    format_table,
    pure_twin_targets,
    rows_from_json,
    size_label,
    to_json,
)

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

FACTS = {
    "cpu_count": 4,
    "usable_cpus": 2,
    "platform": "Linux-test",
    "processor": "x86_64",
    "python": "3.11.7",
    "python_implementation": "CPython",
    "numpy": "2.0.0",
    "joblite": "0.1.0",
    "joblite_with_ext": True,
    "joblite_twins": ["ext", "pure"],
    "joblib": "1.6.0",
    "dask": None,
    "xxhash": "3.4.1",
}

ROWS = [
    Row(
        "hashing",
        "array C order (64 MiB)",
        "joblite",
        0.004,
        64 << 20,
        15.625,
        {"vs_joblib": 20.0, "vs_memory_read": 0.9},
        {"vs_joblib": 15, "vs_memory_read": 0.8},
    ),
    Row("hashing", "array C order (64 MiB)", "joblib", 0.08, 64 << 20, 0.78125),
    Row("hashing", "array C order (64 MiB)", "tokenize", note="not installed"),
    Row("hashing", "small args", "joblite", 2.5e-6, ratios={"us_per_call": 2.5}, targets={"us_per_call": -2.0}),
    Row("parallel", "10,000 tiny tasks, n_jobs=1", "loop", 0.0015),
    Row(
        "parallel",
        "10,000 tiny tasks, n_jobs=1",
        "joblite",
        0.003,
        ratios={"time_vs_loop": 2.0, "mem_over_array": None},
        targets={"time_vs_loop": -3.0, "mem_over_array": -2.2},
    ),
]

TABLE = """\
machine: 4 CPUs (2 usable), Linux-test
python 3.11.7 (CPython), numpy 2.0.0, joblib 1.6.0, dask -, xxhash 3.4.1
joblite 0.1.0: compiled (ext) twin in use (__with_ext__=True), twins available: ext, pure

[hashing] 2 of 3 targets met, 1 MISSED
case                    impl             time  GiB/s  figure     value  target
array C order (64 MiB)  joblite (ext)    4 ms   15.6  x joblib      20  >=15 ok
                                                      / a.sum()    0.9  >=0.8 ok
                        joblib          80 ms  0.781
                        dask tokenize       -
small args              joblite (ext)  2.5 µs         µs/call      2.5  <=2 µs MISSED

[parallel] 1 of 2 targets met, 1 not measured
case                         impl             time  figure       value  target
10,000 tiny tasks, n_jobs=1  plain loop     1.5 ms
                             joblite (ext)    3 ms  t / loop         2  <=3 ok
                                                    mem / array      -  <=2.2 ?

x joblib: times faster than joblib (compressed cases: than joblib zlib-3);
/ a.sum(): GiB/s over the a.sum() memory-read GiB/s;
µs/call: microseconds per call;
t / loop: time over the plain loop's [f(x) for x in xs] in the caller (lower is better);
mem / array: peak memory of a call in a fresh process (the array plus what the call adds to the
  caller, the workers and the memmap folder) over the array's size;
target: the issues' goal for the row's figures and whether it is met (>= a minimum, <= a maximum).

notes:
  array C order (64 MiB), dask tokenize: not installed"""

MARKDOWN_HASHING = """\
### hashing

2 of 3 targets met, 1 MISSED

| case | impl | time | GiB/s | x joblib | / a.sum() | µs/call | target |
|---|---|---:|---:|---:|---:|---:|---:|
| array C order (64 MiB) | joblite (ext) | 4 ms | 15.6 | 20 | 0.9 |  | \\>=15 \\>=0.8 ok |
| array C order (64 MiB) | joblib | 80 ms | 0.781 |  |  |  |  |
| array C order (64 MiB) | dask tokenize | - |  |  |  |  |  |
| small args | joblite (ext) | 2.5 µs |  |  |  | 2.5 | \\<=2 µs MISSED |
"""

RECORDED_RUN = pathlib.Path(__file__).resolve().parent.parent / "docs" / "_data" / "bench.json"


def test_the_table_is_unchanged():
    assert format_table(ROWS, FACTS) == TABLE


def test_every_line_of_a_full_run_fits_a_terminal_of_100_columns():
    """The recorded run of every section (long case names, long keys and notes) included."""
    rows, facts = rows_from_json(RECORDED_RUN.read_text())
    text = format_table(rows, facts)
    assert WIDTH == 100
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    # nothing is lost to the wrapping: every case and every figure's value is there
    for row in rows:
        assert row.name.split()[0] in text
    figure_lines = [line for line in text.splitlines() if not line.startswith("[")]
    assert sum(line.endswith(" MISSED") for line in figure_lines) == sum(
        1
        for row in rows
        for key, goal in row.targets.items()
        if row.ratios.get(key) is not None and not (row.ratios[key] >= goal if goal >= 0 else row.ratios[key] <= -goal)
    )


def test_each_section_says_in_one_line_how_many_targets_it_meets():
    lines = format_table(ROWS, FACTS).splitlines()
    assert "[hashing] 2 of 3 targets met, 1 MISSED" in lines
    assert "[parallel] 1 of 2 targets met, 1 not measured" in lines
    untargeted = [Row("import", "import joblite", "joblite", 0.01)]
    assert "[import] no targets" in format_table(untargeted, FACTS).splitlines()


def test_the_markdown_report_has_a_table_per_section_with_only_its_columns():
    text = format_markdown(ROWS, FACTS)
    assert MARKDOWN_HASHING in text
    assert "| case | impl | time | t / loop | mem / array | target |" in text
    assert text.startswith("- machine: 4 CPUs (2 usable), Linux-test\n")
    assert "- array C order (64 MiB), dask tokenize: not installed" in text


@pytest.mark.parametrize("with_ext", [True, False])
def test_the_pure_twin_aims_at_its_own_goal_and_keeps_the_others(with_ext, monkeypatch):
    monkeypatch.setattr(joblite, "__with_ext__", with_ext)
    goals = {"vs_joblib": 2, "copies_per_worker": -1.0}
    rows = [
        Row("distributed", "case", "joblite", targets=dict(goals)),
        Row("distributed", "case", "joblib", targets=dict(goals)),
    ]
    pure_twin_targets(rows, kept=["copies_per_worker"])
    assert rows[0].targets == (goals if with_ext else {"copies_per_worker": -1.0, **PURE_TARGETS})
    assert rows[1].targets == goals  # only joblite's rows have the issues' goals


def test_the_table_names_the_pure_twin_when_it_is_the_one_measured():
    text = format_table(ROWS[:1], dict(FACTS, joblite_with_ext=False))
    assert "pure-Python twin in use (__with_ext__=False)" in text
    assert "array C order (64 MiB)  joblite (pure)" in text


def test_the_json_document_has_the_machine_and_every_field_of_every_row():
    document = json.loads(to_json(ROWS, FACTS))
    assert list(document) == ["schema", "machine", "rows"]
    assert document["schema"] == SCHEMA == "joblite.bench/1"
    assert document["machine"] == FACTS
    assert [list(row) for row in document["rows"]] == [
        [
            "section",
            "name",
            "impl",
            "seconds",
            "nbytes",
            "gib_per_s",
            "ratios",
            "targets",
            "note",
            "spread",
            "meets_targets",
        ]
    ] * len(ROWS)
    assert document["rows"][0] == {
        "section": "hashing",
        "name": "array C order (64 MiB)",
        "impl": "joblite",
        "seconds": 0.004,
        "nbytes": 67108864,
        "gib_per_s": 15.625,
        "ratios": {"vs_joblib": 20.0, "vs_memory_read": 0.9},
        "targets": {"vs_joblib": 15, "vs_memory_read": 0.8},
        "note": "",
        "spread": None,
        "meets_targets": True,
    }
    assert [row["meets_targets"] for row in document["rows"]] == [True, None, None, False, None, None]
    assert document["rows"][2]["seconds"] is None and document["rows"][2]["note"] == "not installed"


@pytest.mark.parametrize(
    "ratios, met",
    [
        ({"vs_joblib": 15.0, "ms": 1.0}, True),  # a minimum reached, a maximum not exceeded
        ({"vs_joblib": 14.9, "ms": 1.0}, False),
        ({"vs_joblib": 15.0, "ms": 1.01}, False),
        ({"vs_joblib": 15.0}, None),  # a targeted figure is missing
        ({"vs_joblib": 15.0, "ms": None}, None),
    ],
)
def test_targets_are_minimums_when_positive_and_maximums_when_negative(ratios, met):
    assert Row("s", "case", "joblite", 1.0, ratios=ratios, targets={"vs_joblib": 15, "ms": -1.0}).meets_targets() is met


def test_speedups_are_set_on_joblite_against_the_baselines_present():
    rows = [Row("s", "case", "joblite", 0.5), Row("s", "case", "joblib", 2.0), Row("s", "case", "numpy", 1.0)]
    add_speedups(rows, {"vs_joblib": "joblib", "vs_numpy": "numpy", "vs_pickle": "pickle"}, {"vs_joblib": 3})
    assert rows[0].ratios == {"vs_joblib": 4.0, "vs_numpy": 2.0}
    assert rows[0].targets == {"vs_joblib": 3}
    assert rows[1].ratios == {} and rows[2].ratios == {}


def test_size_labels():
    assert size_label(1 << 30) == "1 GiB"
    assert size_label(3 << 29) == "1536 MiB"
    assert size_label(64 << 20) == "64 MiB"


def test_the_json_document_reads_back_into_the_same_rows_and_facts():
    rows, facts = rows_from_json(to_json(ROWS, FACTS))
    assert rows == ROWS and facts == FACTS


def test_a_run_recorded_before_the_schema_field_reads_as_its_first_version():
    document = json.loads(to_json(ROWS, FACTS))
    del document["schema"]
    assert rows_from_json(json.dumps(document)) == (ROWS, FACTS)


@pytest.mark.parametrize(
    "document, message",
    [
        ('{"rows": []}', "the keys 'schema', 'machine' and 'rows'"),
        ('{"schema": "joblite.bench/9", "machine": {}, "rows": []}', "not 'joblite.bench/9'"),
        ('{"machine": {}, "rows": [{"section": "s"}]}', "row 0 of the benchmark JSON document has the keys"),
    ],
)
def test_a_document_that_is_not_a_benchmark_report_is_refused(document, message):
    with pytest.raises(ValueError, match=message):
        rows_from_json(document)


def test_the_rst_report_has_a_table_per_section_with_every_cell_and_parses_cleanly():
    from docutils.core import publish_doctree

    text = format_rst(ROWS, FACTS)
    warnings = []
    tree = publish_doctree(
        text, settings_overrides={"report_level": 1, "halt_level": 5, "warning_stream": _Collect(warnings)}
    )
    assert warnings == []
    titles = [node.astext() for node in tree.findall(lambda node: node.tagname == "title")]
    assert titles == ["Hashing", "Parallel", "Columns"]
    tables = list(tree.findall(lambda node: node.tagname == "table"))
    assert len(tables) == 2
    first = [
        [entry.astext() for entry in row.findall(lambda node: node.tagname == "entry")]
        for row in tables[0].findall(lambda node: node.tagname == "row")
    ]
    assert first[0] == ["case", "impl", "time", "GiB/s", "x joblib", "/ a.sum()", "µs/call", "target"]
    assert first[1] == ["array C order (64 MiB)", "joblite (ext)", "4 ms", "15.6", "20", "0.9", "", ">=15 >=0.8 ok"]
    assert first[3][:3] == ["array C order (64 MiB)", "dask tokenize", "-"]
    assert "n_jobs=1" in tables[1].astext() and "<=3 <=2.2 ?" in tables[1].astext()


class _Collect:
    def __init__(self, into):
        self.into = into

    def write(self, text):
        if text.strip():
            self.into.append(text)


def test_the_performance_page_renders_a_recorded_run_of_every_default_section():
    import os

    from joblite.bench.cli import DEFAULT_SECTIONS

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "_data", "bench.json")
    with open(path, encoding="utf-8") as file:
        rows, facts = rows_from_json(file.read())
    assert {row.section for row in rows} == set(DEFAULT_SECTIONS)
    assert facts["joblite_with_ext"] is True  # the issues' goals are for the compiled twin
    # a row without a time has another figure, or says why it has none
    assert all(row.seconds is not None or row.ratios or row.note for row in rows)
