"""The main job: ``python -m joblite bench``, joblite against its baselines.

The package, one job a module (imports point down this list):

``cli``
    The command: its options, the registry of sections (``SECTIONS``) and the run.
``sections/``
    One module per section (``hashing``, ``persistence``, ``memory``,
    ``parallel``, ``import_time``, and ``distributed``, run only when named),
    each a function ``section(context) -> list of Row``;
    ``sections.Context`` is what every section is given.
``codecs``, ``function``
    The tools ``bench codecs PATH`` (which ``compress=`` for the user's own
    data) and ``bench parallel MODULE:FUNCTION`` (how many jobs for the
    user's own function).
``plot``
    Charts of a run or of a comparison (``--plot``; matplotlib).
``compare``
    ``--compare``: the figures of two runs, weighed against their spread.
``report``
    The rows, the machine's facts, the tables (text, Markdown,
    reStructuredText) and the JSON document.
``timing``
    Best wall times of calls, alone or taking turns, with their spread.
``workloads``
    The seeded data, the implementations compared and the calls timed; the
    only module that ``asv_benchmarks/`` imports.
``children``
    Fresh processes: a module function run in a new interpreter.
``procmem``
    Memory of processes and memmap folders, read from /proc.

Nothing in the package imports numpy, joblib or dask at module import time;
sections that write files do so in a fresh temporary folder, removed when
they finish.
"""
