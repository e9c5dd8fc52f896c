"""``python -m joblite bench --plot DIR``: a chart per section, and a before/after chart of ``--compare``."""

import pathlib
import subprocess
import sys

import pytest

from joblite.bench import plot
from joblite.bench.compare import compare_runs
from joblite.bench.report import rows_from_json

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

DATA = pathlib.Path(__file__).resolve().parent / "data" / "bench"
PNG = b"\x89PNG\r\n\x1a\n"

pytest.importorskip("matplotlib")


def read(name):
    return rows_from_json((DATA / name).read_text())[0]


def test_one_png_per_section_of_the_run(tmp_path):
    paths = plot.plot_sections(read("run_a.json"), str(tmp_path / "charts"))
    assert [pathlib.Path(path).name for path in paths] == ["hashing.png", "parallel.png", "import.png"]
    for path in paths:
        assert pathlib.Path(path).read_bytes().startswith(PNG)
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == ["hashing.png", "import.png", "parallel.png"]


def test_the_comparison_chart(tmp_path):
    path = plot.plot_comparison(compare_runs(read("run_a.json"), read("run_b.json")), str(tmp_path))
    assert pathlib.Path(path).name == "compare.png"
    assert pathlib.Path(path).read_bytes().startswith(PNG)
    assert [p.name for p in tmp_path.iterdir()] == ["compare.png"]  # no temporary file left


def test_the_command_line_draws_the_comparison(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "--compare", str(DATA / "run_a.json"), str(DATA / "run_b.json")]
        + ["--plot", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "compare.png").read_bytes().startswith(PNG)


def test_without_matplotlib_the_message_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(RuntimeError, match=r"joblite\[plot\]"):
        plot.plot_sections(read("run_a.json"), str(tmp_path))
    # the command stops before running anything, with the same message
    script = (
        "import sys; sys.modules['matplotlib'] = None; from joblite.__main__ import main; "
        "sys.exit(main(['bench', '--section', 'import', '--plot', sys.argv[1]]))"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and "joblite[plot]" in result.stderr
    assert not (tmp_path / "out").exists()
