"""``backend='dask'`` on real clusters: a ``LocalCluster`` of worker processes, and a scheduler
plus two workers started as command-line processes through a scheduler file (the batch-job
pattern).  Both are started once for the module, on loopback, and stopped at its end.

Task functions live here, at module level: the workers import this module (its folder is on
their ``sys.path``).  Tasks that wait give up after ``WAIT_SECONDS``, so that a broken
implementation fails a test instead of hanging it.  The end_call tests of the local backends
need no dask.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import Future

import pytest

import joblite
from joblite import Memory, Parallel, delayed, parallel_config
from joblite.backends.threads import ThreadingBackend

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))  # the joblite tested
HERE = os.path.dirname(os.path.abspath(__file__))
WAIT_SECONDS = 30.0
MIB = 1 << 20

# distributed leaves a socket of its own unclosed when a LocalCluster starts.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


# -- task functions (run in the workers) -----------------------------------------------------------
def square(x):
    return x * x


def divide(a, b):
    return a / b


def getpid(_=None):
    return os.getpid()


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"fail_on refuses {x}")
    return x


def wait_for_file(path, value=None):
    """Return `value` once `path` exists; ``'gave up'`` after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "gave up"
        time.sleep(0.02)
    return value


def key_and_random(_):
    import distributed

    return distributed.get_worker().get_current_task(), random.random()


def array_total(array, i):
    return float(array[:1000].sum()) + i, array.flags.writeable


def describe(obj, small):
    return type(obj).__name__, len(obj), small


def nested_pids(n):
    """A task that runs a Parallel call of its own (no backend named): it goes to the same cluster."""
    from joblite import effective_n_jobs

    return os.getpid(), effective_n_jobs(-1), Parallel()(delayed(getpid)(i) for i in range(n))


def loky_inside():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pids = Parallel(n_jobs=2, backend="loky")(delayed(getpid)(i) for i in range(4))
    return os.getpid(), pids, [str(w.message) for w in caught]


def blas_threads(_=None):
    import numpy  # noqa: F401 (loads the BLAS library)
    import threadpoolctl

    return sorted({info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"})


def computed(x, log):
    """Append a line to `log` each time it really runs (O_APPEND: whole lines from any process)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{x} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    time.sleep(0.5)  # long enough for both workers to ask at once
    return x * 10


def fail_once(flag):
    if not os.path.exists(flag):
        open(flag, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"


def pause(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


# -- end_call on the local backends (no dask needed) ---------------------------------------------
class RecordingBackend(ThreadingBackend):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ends = []
        self.stops = 0

    def end_call(self, completed):
        self.ends.append(completed)

    def stop(self):
        self.stops += 1
        super().stop()


def test_end_call_follows_every_call_on_a_local_backend():
    backend = RecordingBackend()
    assert Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(5)) == [0, 1, 4, 9, 16]
    assert backend.ends == [True]
    with pytest.raises(ValueError, match="fail_on refuses 3"):
        Parallel(n_jobs=2, backend=backend)(delayed(fail_on)(i, 3) for i in range(5))
    assert backend.ends == [True, False]
    results = Parallel(n_jobs=2, backend=backend, return_as="generator")(delayed(square)(i) for i in range(50))
    assert next(results) == 0
    results.close()
    assert backend.ends == [True, False, False]
    # inside a with block, every call ends, while stop waits for the block's end
    with Parallel(n_jobs=2, backend=backend) as parallel:
        stops = backend.stops
        assert parallel(delayed(square)(i) for i in range(3)) == [0, 1, 4]
        with pytest.raises(ValueError):
            parallel(delayed(fail_on)(i, 1) for i in range(3))
        assert backend.stops == stops
    assert backend.ends == [True, False, False, True, False]
    assert backend.stops == stops + 1


def _fresh_python(code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_joblite_does_not_import_dask():
    out = _fresh_python(
        "import sys, joblite\n"
        "joblite.Parallel, joblite.parallel_config, joblite.delayed\n"
        "from joblite.backends import get_backend_factory\n"
        "try:\n"
        "    get_backend_factory('no-such-backend')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "print(sorted(name for name in ('dask', 'distributed') if name in sys.modules))\n"
    )
    assert "dask" in out.splitlines()[0]  # listed among the registered backends
    assert out.splitlines()[1] == "[]"


def test_dask_backend_without_distributed_says_what_to_install():
    out = _fresh_python(
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "from joblite import Parallel\n"
        "try:\n"
        "    Parallel(backend='dask')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'joblite[dask]'" in out


# -- clusters ------------------------------------------------------------------------------------
def _local_cluster(folder, **options):
    import dask
    import distributed

    # The scheduler's HTTP server (metrics) on a free loopback port, without the dashboard;
    # its and the workers' files in `folder`, not in the shared dask-scratch-space of /tmp.
    with dask.config.set({"temporary-directory": str(folder)}):
        return distributed.LocalCluster(
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            local_directory=str(folder),
            **options,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("distributed")
    cluster = _local_cluster(tmp_path_factory.mktemp("dask-local"), n_workers=2, threads_per_worker=1, processes=True)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def client(cluster):
    import distributed

    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def dask_client(client):
    """The module's client with its two workers there, and nothing kept from earlier tests."""
    from joblite.backends.dask import release_scattered

    client.wait_for_workers(2, timeout=60)
    release_scattered()
    yield client
    release_scattered()


def _spawn(args, log, env):
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(20)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """``dask scheduler --scheduler-file F`` and two ``dask worker --scheduler-file F`` processes."""
    pytest.importorskip("distributed")
    folder = tmp_path_factory.mktemp("dask-cli")
    scheduler_file = str(folder / "scheduler.json")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_PARENT, HERE, os.environ.get("PYTHONPATH")])),
        DASK_TEMPORARY_DIRECTORY=str(folder),
    )
    dask = [sys.executable, "-m", "dask"]
    processes = []
    with open(folder / "cluster.log", "w") as log:
        try:
            processes.append(
                _spawn(
                    dask
                    + [
                        "scheduler",
                        "--scheduler-file",
                        scheduler_file,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                        "--no-dashboard",
                        "--dashboard-address",
                        "127.0.0.1:0",
                    ],
                    log,
                    env,
                )
            )
            for _ in range(2):
                processes.append(
                    _spawn(
                        dask
                        + [
                            "worker",
                            "--scheduler-file",
                            scheduler_file,
                            "--nworkers",
                            "1",
                            "--nthreads",
                            "1",
                            "--host",
                            "127.0.0.1",
                            "--no-dashboard",
                            "--dashboard-address",
                            "127.0.0.1:0",
                            "--local-directory",
                            str(folder),
                        ],
                        log,
                        env,
                    )
                )
            yield scheduler_file, processes
        finally:
            from joblite.backends.dask._clients import close_own_clients

            close_own_clients()  # the clients joblite made for scheduler_file and scheduler_host
            for process in reversed(processes):
                _stop(process)


def _scheduler_keys(client):
    return set(client.run_on_scheduler(lambda dask_scheduler: [str(key) for key in dask_scheduler.tasks]))


def _held_keys(client):
    return {str(key) for keys in client.has_what().values() for key in keys}


def _until(condition, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- running tasks -------------------------------------------------------------------------------
def test_tasks_run_on_the_workers_in_order_and_as_they_finish(dask_client):
    workers = set(dask_client.run(os.getpid).values())
    assert Parallel(backend="dask", client=dask_client)(delayed(square)(i) for i in range(200)) == [
        i * i for i in range(200)
    ]
    with parallel_config(backend="dask", client=dask_client):
        pids = Parallel(batch_size=1)(delayed(getpid)(i) for i in range(20))
        generator = Parallel(return_as="generator")(delayed(square)(i) for i in range(50))
        unordered = Parallel(return_as="generator_unordered")(delayed(square)(i) for i in range(50))
        assert list(generator) == [i * i for i in range(50)]
        assert sorted(unordered) == sorted(i * i for i in range(50))
    assert set(pids) <= workers and os.getpid() not in pids
    assert len(set(pids)) == 2  # n_jobs=None: the whole cluster


def test_keys_are_readable_and_tasks_never_pure(dask_client):
    out = Parallel(backend="dask", client=dask_client, batch_size=1)(delayed(key_and_random)(0) for _ in range(2))
    (key1, value1), (key2, value2) = out
    for key in (key1, key2):
        assert re.fullmatch(r"batch_of_key_and_random_1_calls-[0-9a-f]{32}", key), key
    assert key1 != key2 and value1 != value2  # two equal calls both ran


def test_progress_callback_and_verbose(dask_client, capsys):
    seen = []
    out = Parallel(backend="dask", client=dask_client, verbose=10, callback=lambda i, r: seen.append((i, r)))(
        delayed(square)(i) for i in range(30)
    )
    assert out == [i * i for i in range(30)]
    assert sorted(seen) == [(i, i * i) for i in range(30)]
    assert "Done   30 tasks" in capsys.readouterr().err


def test_n_jobs_caps_the_batches_running_at_once(dask_client):
    spans = Parallel(backend="dask", client=dask_client, n_jobs=1, batch_size=1)(delayed(pause)(0.2) for _ in range(4))
    spans.sort()
    assert all(end <= following_start for (_, end), (following_start, _) in zip(spans, spans[1:])), spans


def test_tiny_tasks_travel_in_few_large_batches(dask_client):
    # dask's round trip (tens of ms) is not taken for the tasks' work: after a first
    # measure the batches grow to max_batch_size, and 100,000 tasks make a handful of
    # dask tasks (over 20 when they were sized from the round trip, 8,192 tasks at most).
    from distributed import get_task_stream

    from joblite.backends.dask import DaskBackend

    with get_task_stream(dask_client) as stream:
        assert Parallel(backend="dask", client=dask_client)(delayed(square)(i) for i in range(100_000)) == [
            i * i for i in range(100_000)
        ]
    sizes = [int(re.match(r"batch_of_square_(\d+)_calls", task["key"]).group(1)) for task in stream.data]
    assert sum(sizes) == 100_000, sizes
    # (The first batches hold one task each until one is measured: a first task that
    # imports modules in its worker may take a few.)
    assert max(sizes) == DaskBackend.max_batch_size and len([n for n in sizes if n > 1]) <= 8, sizes


def test_retries_and_submit_options(dask_client, tmp_path):
    assert Parallel(backend="dask", client=dask_client, retries=1)([delayed(fail_once)(str(tmp_path / "flag"))]) == [
        "second attempt"
    ]
    address, pid = sorted(dask_client.run(os.getpid).items())[0]
    assert set(
        Parallel(backend="dask", client=dask_client, workers=[address], batch_size=1)(
            delayed(getpid)(i) for i in range(6)
        )
    ) == {pid}


def test_bad_options_are_named():
    pytest.importorskip("distributed")
    from joblite.backends.dask import DaskBackend

    with pytest.raises(ValueError, match="unknown option.*pure"):
        Parallel(backend="dask", pure=True)
    with pytest.raises(ValueError, match="one of client, scheduler_host and scheduler_file"):
        DaskBackend(scheduler_host="tcp://127.0.0.1:1", scheduler_file="x.json")
    with pytest.raises(TypeError, match="scatter must be a list or tuple"):
        DaskBackend(scatter=3)
    with pytest.raises(ValueError, match="wait_for_workers_timeout=-1"):
        DaskBackend(wait_for_workers_timeout=-1)
    with pytest.raises(TypeError, match="client='tcp"):
        DaskBackend(client="tcp://127.0.0.1:8786")


# -- data ----------------------------------------------------------------------------------------
def test_large_array_sent_once_held_once_per_worker_and_reused(dask_client, monkeypatch):
    np = pytest.importorskip("numpy")
    from joblite.backends.dask import release_scattered

    scattered = []
    scatter = dask_client.scatter
    monkeypatch.setattr(dask_client, "scatter", lambda data, **kw: scattered.append(list(data)) or scatter(data, **kw))
    array = np.arange(4 * MIB, dtype=np.float64)  # 32 MiB
    expected = [(float(array[:1000].sum()) + i, False) for i in range(64)]
    assert (
        Parallel(backend="dask", client=dask_client, batch_size=1)(delayed(array_total)(array, i) for i in range(64))
        == expected
    )
    assert len(scattered) == 1, "sent more than once in one call"
    sizes = dask_client.run(
        lambda dask_worker: [
            k
            for k in dask_worker.data
            if dask_worker.data[k].__sizeof__() >= 32 * MIB or getattr(dask_worker.data[k], "nbytes", 0) >= 32 * MIB
        ]
    )
    assert all(len(keys) <= 1 for keys in sizes.values()), sizes  # one copy per worker at most
    kept = set(scattered[0])
    assert kept <= set(dask_client.who_has())

    # An equal array (another object) in the next call: nothing new is sent.
    assert (
        Parallel(backend="dask", client=dask_client, batch_size=1)(
            delayed(array_total)(array.copy(), i) for i in range(64)
        )
        == expected
    )
    assert len(scattered) == 1, "an equal array was sent again"

    assert release_scattered(dask_client) >= 32 * MIB
    assert _until(lambda: not kept & (_held_keys(dask_client) | _scheduler_keys(dask_client)))


def test_scatter_option_and_other_large_arguments(dask_client, monkeypatch):
    pd = pytest.importorskip("pandas")
    scattered = []
    scatter = dask_client.scatter
    monkeypatch.setattr(dask_client, "scatter", lambda data, **kw: scattered.append(list(data)) or scatter(data, **kw))
    small = ("chosen", 1)
    blob = b"x" * (2 * MIB)
    frame = pd.DataFrame({"a": range(200_000)})
    out = Parallel(backend="dask", client=dask_client, scatter=[small], batch_size=1)(
        [delayed(describe)(blob, small), delayed(describe)(frame, small), delayed(describe)(blob, small)]
    )
    assert out == [("bytes", 2 * MIB, small), ("DataFrame", 200_000, small), ("bytes", 2 * MIB, small)]
    names = sorted(key.split("-")[0] for keys in scattered for key in keys)
    assert names == ["joblite_DataFrame", "joblite_bytes", "joblite_tuple"]


def test_large_single_arguments_are_sent_once(dask_client, monkeypatch):
    """Tasks of one argument each (their batches hold the arguments alone): a large one is scattered too."""
    scattered = []
    scatter = dask_client.scatter
    monkeypatch.setattr(dask_client, "scatter", lambda data, **kw: scattered.append(list(data)) or scatter(data, **kw))
    blob = b"y" * (2 * MIB)
    assert Parallel(backend="dask", client=dask_client, batch_size=4)(
        delayed(len)(argument) for argument in [blob, b"ab", blob, blob, b"c"]
    ) == [2 * MIB, 2, 2 * MIB, 2 * MIB, 1]
    assert [key.split("-")[0] for keys in scattered for key in keys] == ["joblite_bytes"]


# -- failures ------------------------------------------------------------------------------------
class Stuck:
    """Tasks that wait for `flag`; :meth:`nothing_left` checks the cluster holds nothing new."""

    def __init__(self, client, flag):
        self.client = client
        self.flag = flag
        self.before = _scheduler_keys(client) | _held_keys(client)

    def nothing_left(self):
        """No task and no data of the call on the scheduler or the workers (within a few seconds)."""
        client = self.client
        left = lambda: (_scheduler_keys(client) | _held_keys(client) | set(client.who_has())) - self.before  # noqa: E731
        assert _until(lambda: not left(), 10), f"left on the cluster: {sorted(left())}"


@pytest.fixture
def stuck(dask_client, tmp_path):
    stuck = Stuck(dask_client, str(tmp_path / "flag"))
    yield stuck
    open(stuck.flag, "w").close()  # tasks already running end (dask cannot stop a thread)


def test_task_error_keeps_its_type_and_remote_traceback_and_leaves_nothing(dask_client, stuck):
    np = pytest.importorskip("numpy")
    array = np.random.default_rng(0).random(MIB)  # 8 MiB, never sent before: scattered by this call
    tasks = [delayed(fail_on)(0, 0)] + [delayed(wait_for_file)(stuck.flag, array) for _ in range(6)]
    with pytest.raises(ValueError, match="fail_on refuses 0") as info:
        Parallel(backend="dask", client=dask_client, batch_size=1)(tasks)
    cause = info.value.__cause__
    assert cause is not None and "Traceback" in str(cause) and "fail_on" in str(cause)
    stuck.nothing_left()
    logs = "\n".join(line for lines in dask_client.get_worker_logs().values() for _, line in lines)
    assert "Compute Failed" not in logs


def test_timeout_names_the_task_and_cancels(dask_client, stuck):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="wait_for_file.*timeout=1.0"):
        Parallel(backend="dask", client=dask_client, timeout=1)(delayed(wait_for_file)(stuck.flag, i) for i in range(6))
    assert time.monotonic() - start < 15
    stuck.nothing_left()


def test_generator_closed_early_cancels(dask_client, stuck):
    results = Parallel(backend="dask", client=dask_client, batch_size=1, return_as="generator")(
        [delayed(square)(3)] + [delayed(wait_for_file)(stuck.flag, i) for i in range(6)]
    )
    assert next(results) == 9
    results.close()
    stuck.nothing_left()


def test_ctrl_c_cancels_the_call(dask_client, stuck):
    interrupt = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C, while it waits
    interrupt.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Parallel(backend="dask", client=dask_client, batch_size=1)(
                delayed(wait_for_file)(stuck.flag, i) for i in range(6)
            )
    finally:
        interrupt.cancel()
    stuck.nothing_left()


def test_sigkilled_worker_fails_the_call_within_seconds(dask_client, stuck):
    from joblite.backends.processes import WorkerDiedError

    pids = dask_client.run(os.getpid)
    results = Parallel(backend="dask", client=dask_client, batch_size=1, return_as="generator")(
        delayed(wait_for_file)(stuck.flag, i) for i in range(4)
    )
    running = {}
    assert _until(lambda: running.update({a: k for a, k in dask_client.processing().items() if k}) or running)
    address = sorted(running)[0]
    os.kill(pids[address], signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(WorkerDiedError) as info:
        list(results)
    assert time.monotonic() - killed < 30
    message = str(info.value)
    assert address in message and "batch_of_wait_for_file_1_calls-" in message and "remove-worker" in message
    stuck.nothing_left()
    open(stuck.flag, "w").close()
    # The next call works (on the survivor, or on the worker the nanny restarts).
    assert Parallel(backend="dask", client=dask_client)(delayed(square)(i) for i in range(10)) == [
        i * i for i in range(10)
    ]


def test_killed_worker_is_explained():
    pytest.importorskip("distributed")
    from distributed import KilledWorker

    from joblite.backends.dask import DaskBackend
    from joblite.backends.processes import WorkerDiedError

    error = DaskBackend().translate(KilledWorker("batch_of_f_1_calls-00", "tcp://127.0.0.1:5", 3))
    assert isinstance(error, WorkerDiedError)
    assert "batch_of_f_1_calls-00" in str(error) and "tcp://127.0.0.1:5" in str(error) and "4 times" in str(error)


# -- finding the cluster -------------------------------------------------------------------------
def test_scheduler_file_of_a_batch_job_cluster(cli_cluster):
    import distributed

    scheduler_file, processes = cli_cluster
    assert all(process.poll() is None for process in processes)
    with parallel_config(backend="dask", scheduler_file=scheduler_file, wait_for_workers_timeout=60):
        with distributed.Client(scheduler_file=scheduler_file, set_as_default=False) as own:
            own.wait_for_workers(2, timeout=60)
            workers = set(own.run(os.getpid).values())
            address = own.scheduler.address
        pids = Parallel(batch_size=1)(delayed(getpid)(i) for i in range(8))
    assert set(pids) <= workers and len(set(pids)) == 2
    out = Parallel(backend="dask", scheduler_host=address)(delayed(square)(i) for i in range(5))
    assert out == [0, 1, 4, 9, 16]


def test_a_failed_dask_task_fails_its_batch_with_its_error(cli_cluster):
    # A batch's task errs in dask itself only in rare cases (KilledWorker, data lost):
    # run_batch returns the tasks' errors.  The error reaches the batch's future as is.
    # (On the command-line cluster: dask logs "Compute Failed", which the LocalCluster's
    # tests look for.)
    import distributed

    from joblite.backends.dask._call import Call, _Task

    with distributed.Client(scheduler_file=cli_cluster[0], set_as_default=False) as client:
        call = Call(client, None, 0, {})
        try:
            task = _Task("batch_of_divide_1_calls-0", Future(), 0, 1, None)
            call.tasks[task.key] = task
            call.running = 1
            client.loop.add_callback(call._collect, task, client.submit(divide, 1, 0, pure=False))
            with pytest.raises(ZeroDivisionError):
                task.future.result(timeout=30)
        finally:
            call.end(False)


def test_the_default_client_is_used_and_none_is_a_clear_error(cluster):
    import distributed

    with pytest.raises(ValueError, match=r"found no dask client(.|\n)*Client\(LocalCluster\(\)\)"):
        Parallel(backend="dask")
    with distributed.Client(cluster):  # the default client while it is open
        assert Parallel(backend="dask")(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


def test_unreachable_scheduler_is_named():
    dask = pytest.importorskip("dask")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"  # nobody listens once it is closed
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ConnectionError, match=re.escape(f"scheduler at '{address}' (scheduler_host=")):
            Parallel(backend="dask", scheduler_host=address)


def test_missing_scheduler_file_is_named(tmp_path):
    pytest.importorskip("distributed")
    path = str(tmp_path / "scheduler.json")
    with pytest.raises(FileNotFoundError, match=re.escape(repr(path))):
        Parallel(backend="dask", scheduler_file=path, wait_for_workers_timeout=0.3)
    with open(path, "w") as file:
        json.dump({"no": "address"}, file)
    with pytest.raises(ValueError, match="not a dask scheduler file"):
        Parallel(backend="dask", scheduler_file=path, wait_for_workers_timeout=0.3)


def test_no_worker_waits_then_names_the_option(tmp_path):
    distributed = pytest.importorskip("distributed")
    with _local_cluster(tmp_path, n_workers=0) as empty, distributed.Client(empty, set_as_default=False) as client:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="wait_for_workers_timeout=0.5"):
            Parallel(backend="dask", client=client, wait_for_workers_timeout=0.5)(delayed(square)(1) for _ in range(2))
        assert time.monotonic() - start < 10
        assert _until(lambda: not _scheduler_keys(client))  # the probe task is gone


# -- nesting, threads, Memory ----------------------------------------------------------------------
def test_nested_parallel_runs_on_the_same_cluster_without_deadlock(dask_client):
    workers = set(dask_client.run(os.getpid).values())
    # One thread per worker, and every outer task waits for its nested call: it must give its
    # thread back while it waits.  The timeout makes a deadlock fail instead of hang.
    out = Parallel(backend="dask", client=dask_client, batch_size=1, timeout=60)(
        delayed(nested_pids)(4) for _ in range(2)
    )
    for pid, n_jobs, inner in out:
        assert pid in workers and set(inner) <= workers and len(inner) == 4
        assert n_jobs == 2  # the nested call sees the cluster's threads


def test_loky_inside_a_daemonic_worker_runs_sequentially_with_a_warning(dask_client):
    [(pid, pids, messages)] = Parallel(backend="dask", client=dask_client)([delayed(loky_inside)()])
    assert pids == [pid] * 4
    assert any("distributed.worker.daemon" in message for message in messages), messages


def test_blas_threads_limited_in_tasks(dask_client):
    pytest.importorskip("threadpoolctl")
    pytest.importorskip("numpy")
    from joblite import cpu_count

    share = max(1, cpu_count() // 1)  # one thread per worker, on this host
    assert Parallel(backend="dask", client=dask_client)([delayed(blas_threads)()]) == [[share]]
    with parallel_config(inner_max_num_threads=1):
        assert Parallel(backend="dask", client=dask_client)([delayed(blas_threads)()]) == [[1]]


def test_memory_in_tasks_files_entries_in_the_callers_folder_and_locks(dask_client, tmp_path):
    memory = Memory(tmp_path / "cache", verbose=0, backend_options={"lock": True})
    cached = memory.cache(computed)
    log = str(tmp_path / "log")
    assert cached(1, log) == 10  # a local call's entry...
    out = Parallel(backend="dask", client=dask_client, batch_size=1)(delayed(cached)(x, log) for x in (1, 2, 2, 3, 3))
    assert out == [10, 20, 20, 30, 30]
    with open(log) as file:
        lines = file.read().split()[::2]
    # ...is found by the tasks (same key), and 2 and 3, asked by both workers at once, ran once each
    assert sorted(lines) == ["1", "2", "3"], lines
    assert all(cached.check_call_in_cache(x, log) for x in (1, 2, 3))  # filed where the caller looks
