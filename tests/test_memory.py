"""Memory: joblib's caching API, cache keys, code changes, damaged entries and size limits."""

import asyncio
import datetime
import functools
import inspect
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import joblite
from joblite import func_inspect
from joblite.memory import (
    AsyncMemorizedFunc,
    MemorizedFunc,
    MemorizedResult,
    Memory,
    NotMemorizedFunc,
    NotMemorizedResult,
    expires_after,
)
from joblite.store import CacheWarning, FileSystemStoreBackend, StoreBackendBase, register_store_backend

# The joblite under test (installed or in place) first on the path of subprocesses.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))


def Counter(func):
    """`func` wrapped to count its calls in ``.calls`` (with its signature)."""

    @functools.wraps(func)
    def counted(*args, **kwargs):
        # Not a closure over the list: closure values are part of the cache key.
        counted.calls.append((args, kwargs))
        return func(*args, **kwargs)

    counted.calls = []
    return counted


def outputs(location):
    """Paths of every cached result under `location`."""
    found = []
    for folder, _, files in os.walk(os.path.join(location, "joblite")):
        found += [os.path.join(folder, name) for name in files if name.endswith(".out")]
    return sorted(found)


def add(x, y=2, *, z=3):
    return x + y + z


def test_hit_and_miss_with_joblib_argument_semantics(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    calls = []

    def f(x, y=2, *, z=3):
        calls.append(x)
        return x + y + z

    cached = memory.cache(f)
    assert isinstance(cached, MemorizedFunc)
    assert cached(1) == 6
    # f(1), f(x=1), f(1, y=default), f(1, z=default) are one entry
    assert cached(x=1) == cached(1, 2) == cached(1, y=2, z=3) == cached(z=3, x=1) == 6
    assert calls == [1]
    assert cached(1, 5) == 9 and cached(1, z=0) == 3
    assert calls == [1, 1, 1]
    assert len(outputs(tmp_path)) == 3
    assert cached.__name__ == "f" and cached.__wrapped__ is f


def test_cache_as_decorator_with_and_without_arguments(tmp_path):
    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def plain(x):
        return x

    @memory.cache(ignore=["debug"], verbose=0)
    def with_options(x, debug=False):
        return x

    assert plain(1) == 1 and with_options(2, debug=True) == 2
    assert with_options.check_call_in_cache(2) and with_options.check_call_in_cache(2, debug=False)
    assert memory.cache(plain).func is plain.func  # re-wrapping a MemorizedFunc wraps its function


def test_ignore_drops_names_from_the_key(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    counted = Counter(lambda x, verbose=0, **options: x)
    cached = memory.cache(counted, ignore=["verbose", "progress"])
    assert cached(1, verbose=1) == cached(1, verbose=2) == cached(1, progress=True) == 1
    assert len(counted.calls) == 1
    cached(1, other=True)
    assert len(counted.calls) == 2


def test_ignore_names_that_are_not_parameters_raise(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    with pytest.raises(ValueError, match="'y' is not a parameter"):
        memory.cache(lambda x: x, ignore=["y"])
    with pytest.raises(ValueError, match="list of parameter names"):
        memory.cache(lambda x: x, ignore="x")


def test_arguments_that_do_not_fit_raise_like_python_and_compute_nothing(tmp_path):
    counted = Counter(add)
    cached = Memory(tmp_path, verbose=0).cache(counted)
    for args, kwargs in [((), {}), ((1, 2, 3), {}), ((1,), {"x": 1}), ((1,), {"w": 0})]:
        with pytest.raises(TypeError):
            cached(*args, **kwargs)
    assert counted.calls == []


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((1,), {}),
        ((1, 2), {}),
        ((), {"a": 1}),
        ((1, 2, 3, 4), {}),
        ((1,), {"kw": 5, "extra": 6}),
        ((1, 2, 3), {"b": 2}),
        ((), {"a": 1, "b": 2, "kw": 0}),
        ((1,), {"b": 7, "zz": [1]}),
    ],
)
def test_call_binder_agrees_with_inspect(args, kwargs):
    def f(a, b=2, *rest, kw=1, **more):
        pass

    def g(a, /, b=2, *, kw=1, **more):
        pass

    for func in (f, g):
        binder = func_inspect.CallBinder(func)
        try:
            bound = inspect.signature(func).bind(*args, **kwargs)
        except TypeError:
            with pytest.raises(TypeError):
                binder.values(args, kwargs)
            continue
        bound.apply_defaults()
        assert binder.values(args, kwargs) == list(bound.arguments.values())


def test_location_none_caches_nothing():
    memory = Memory(None)
    counted = Counter(add)
    cached = memory.cache(counted)
    assert isinstance(cached, NotMemorizedFunc)
    assert cached(1) == cached(1) == 6 and len(counted.calls) == 2
    assert cached.call(1) == (6, {})
    result = cached.call_and_shelve(1)
    assert isinstance(result, NotMemorizedResult) and result.get() == 6
    result.clear()
    with pytest.raises(KeyError):
        result.get()
    assert not cached.check_call_in_cache(1)
    assert memory.eval(add, 1) == 6 and memory.reduce_size(items_limit=0) == []
    memory.clear()
    assert pickle.loads(pickle.dumps(memory.cache(add)))(2) == 7


def test_call_always_computes_and_returns_metadata(tmp_path):
    counted = Counter(add)
    cached = Memory(tmp_path, verbose=0).cache(counted)
    before = time.time()
    output, metadata = cached.call(1)
    assert output == 6 and metadata["time"] >= before - 1 and metadata["duration"] >= 0
    assert "input_args" not in metadata  # only kept when verbose asks for it
    cached.call(1)
    assert len(counted.calls) == 2
    assert cached(1) == 6 and len(counted.calls) == 2
    _, metadata = Memory(tmp_path, verbose=1).cache(add).call(1, y=5)
    assert metadata["input_args"] == {"x": "1", "y": "5", "z": "3"}


def test_call_and_shelve_returns_a_picklable_reference(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(add)
    result = cached.call_and_shelve(1, 1)
    assert isinstance(result, MemorizedResult)
    assert result.get() == 5
    copy = pickle.loads(pickle.dumps(result))
    assert copy.get() == 5 and copy.args_id == result.args_id
    assert cached.call_and_shelve(1, 1).args_id == result.args_id
    result.clear()
    with pytest.raises(KeyError, match="no longer in the cache"):
        copy.get()
    assert not cached.check_call_in_cache(1, 1)


def test_memory_and_memorized_func_pickle(tmp_path):
    memory = Memory(
        tmp_path, verbose=0, mmap_mode="r", bytes_limit="1G", backend_options={"lock": True, "lock_timeout": 5}
    )
    copy = pickle.loads(pickle.dumps(memory))
    assert (copy.location, copy.mmap_mode, copy.bytes_limit) == (memory.location, "r", 1 << 30)
    assert copy.store_backend.lock and copy.store_backend.lock_timeout == 5
    cached = memory.cache(add)
    assert cached(1) == 6
    clone = pickle.loads(pickle.dumps(cached))
    assert clone.check_call_in_cache(1) and clone(1) == 6 and clone.func_id == cached.func_id


def test_decorated_module_function_pickles_by_name(tmp_path, monkeypatch):
    (tmp_path / "decorated_mod.py").write_text(
        textwrap.dedent(f"""
        import joblite
        memory = joblite.Memory({str(tmp_path / "cache")!r}, verbose=0)

        @memory.cache
        def square(x):
            return x * x
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import decorated_mod

    try:
        assert pickle.loads(pickle.dumps(decorated_mod.square)) is decorated_mod.square
        assert decorated_mod.square(3) == 9
    finally:
        sys.modules.pop("decorated_mod", None)


def test_verbose_prints_joblib_style_lines(tmp_path, capsys):
    cached = Memory(tmp_path, verbose=1).cache(add)
    cached(1, y=4)
    printed = capsys.readouterr().out
    assert "[Memory] Calling" in printed and "add(1, y=4)" in printed  # as passed, as joblib prints it
    assert "add - 0.0s, 0.0min" in printed
    cached(1, y=4)
    assert capsys.readouterr().out == ""  # hits are silent below verbose 5
    Memory(tmp_path, verbose=0).cache(add)(2)
    assert capsys.readouterr().out == ""


class Loud:
    """An argument whose repr must not be built on a hit."""

    reprs = 0

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        Loud.reprs += 1
        return f"Loud({self.value})"


def test_hits_build_no_repr_and_read_no_metadata(tmp_path, monkeypatch):
    cached = Memory(tmp_path, verbose=1).cache(lambda item: item.value)
    assert cached(Loud(3)) == 3
    reprs = Loud.reprs
    monkeypatch.setattr(FileSystemStoreBackend, "get_metadata", lambda *args: pytest.fail("metadata read on a hit"))
    monkeypatch.setattr(
        FileSystemStoreBackend, "get_cached_func_code", lambda *args: pytest.fail("code record read again")
    )
    for _ in range(3):
        assert cached(Loud(3)) == 3
    assert Loud.reprs == reprs


def test_mmap_mode_returns_memmaps_on_first_call_and_on_hits(tmp_path):
    memory = Memory(tmp_path, verbose=0, mmap_mode="r")
    cached = memory.cache(lambda n: {"a": np.arange(n, dtype=np.float64), "n": n})
    first = cached(1000)
    again = cached(1000)
    for value in (first, again):
        assert isinstance(value["a"], np.memmap) and value["a"].mode == "r"
        np.testing.assert_array_equal(value["a"], np.arange(1000.0))
    plain = memory.cache(cached.func, mmap_mode=None)(1000)
    assert type(plain["a"]) is np.ndarray
    del first, again


def test_compressed_results(tmp_path):
    cached = Memory(tmp_path, verbose=0, compress=True).cache(lambda n: np.zeros(n))
    np.testing.assert_array_equal(cached(100000), np.zeros(100000))
    np.testing.assert_array_equal(cached(100000), np.zeros(100000))
    assert os.path.getsize(outputs(tmp_path)[0]) < 100000


def test_equal_array_arguments_share_an_entry(tmp_path):
    counted = Counter(lambda a: float(a.sum()))
    cached = Memory(tmp_path, verbose=0).cache(counted)
    a = np.arange(12.0).reshape(3, 4)
    assert cached(a) == cached(np.asfortranarray(a)) == cached(a.copy()) == 66.0
    assert len(counted.calls) == 1
    cached(a + 1)
    assert len(counted.calls) == 2


def test_closures_with_different_values_do_not_share_entries(tmp_path):
    memory = Memory(tmp_path, verbose=0)

    def make(offset):
        def shifted(x):
            return x + offset

        return shifted

    one, ten = memory.cache(make(1)), memory.cache(make(10))
    assert one.func_id == ten.func_id
    assert one(1) == 2 and ten(1) == 11 and one(1) == 2


def test_two_lambdas_and_two_functions_of_one_name_do_not_collide(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    double, triple = memory.cache(lambda x: 2 * x), memory.cache(lambda x: 3 * x)
    assert double.func_id != triple.func_id
    assert (double(2), triple(2), double(2), triple(2)) == (4, 6, 4, 6)

    def same(x):
        return x + 1

    first = same

    def same(x):  # noqa: F811 - a second function of the same name, alive with the first
        return x + 2

    cached_first, cached_second = memory.cache(first), memory.cache(same)
    assert (cached_first(0), cached_second(0), cached_first(0), cached_second(0)) == (1, 2, 1, 2)
    assert cached_first.func_id != cached_second.func_id


def test_bound_methods_key_on_their_instance(tmp_path):
    class Scaler:
        def __init__(self, factor):
            self.factor = factor

        def scale(self, x):
            return self.factor * x

    memory = Memory(tmp_path, verbose=0)
    assert memory.cache(Scaler(2).scale)(5) == 10
    assert memory.cache(Scaler(3).scale)(5) == 15


def test_partials_key_on_their_arguments(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    assert memory.cache(functools.partial(add, y=10))(1) == 14
    assert memory.cache(functools.partial(add, y=20))(1) == 24


def test_unhashable_arguments_compute_with_a_warning(tmp_path):
    counted = Counter(lambda data, n=1: n)
    cached = Memory(tmp_path, verbose=0).cache(counted)
    with pytest.warns(CacheWarning, match=r"args\['data'\]") as caught:
        assert cached((i for i in range(3)), n=4) == 4
    with pytest.warns(CacheWarning) as caught_again:
        assert cached.call_and_shelve(threading.Lock()).get() == 1
    assert len(counted.calls) == 2 and outputs(tmp_path) == []
    assert [w.filename for w in list(caught) + list(caught_again)] == [__file__] * 2  # at the call


def test_closure_values_that_cannot_be_hashed_warn_at_the_first_call(tmp_path):
    lock = threading.Lock()

    def locked(x):
        with lock:
            return x

    cached = Memory(tmp_path, verbose=0).cache(locked)
    with pytest.warns(CacheWarning, match="not part of the cache key") as caught:
        assert cached(1) == 1
    assert [w.filename for w in caught] == [__file__]
    assert cached.check_call_in_cache(1) and len(outputs(tmp_path)) == 1


# Entries written by earlier versions must be found: their args_id are pinned here.
def echo(x, y=2, *, z=3):
    return x, y, z


def shifted_by(offset):
    def shifted(x):
        return x + offset

    return shifted


@pytest.mark.parametrize(
    "make, args, kwargs, args_id",
    [
        (lambda m: m.cache(echo), (1,), {}, "9adb4246b8644de9e51f8745c3fa83ac"),
        (lambda m: m.cache(echo), (1,), {"z": [1.5, "a", None]}, "00555ab58465232e083f5d4f1ad76819"),
        (lambda m: m.cache(shifted_by(10)), (1,), {}, "fec8b23b4f43b5c3ae38457392a4b5b9"),
        (
            lambda m: m.cache(echo),
            (np.arange(6).reshape(2, 3),),
            {"y": {"k": (1, 2)}},
            "7c723f809daaf84aef283bd76f1bc81d",
        ),
        (lambda m: m.cache(echo, ignore=["y"]), (1,), {"y": 5}, "d63e985de44cd07de090ec5a1e62c7d9"),
    ],
    ids=["defaults", "keyword", "closure", "array", "ignored"],
)
def test_entry_keys_do_not_change(tmp_path, make, args, kwargs, args_id):
    cached = make(Memory(tmp_path, verbose=0))
    assert cached.call_and_shelve(*args, **kwargs).args_id == args_id
    assert [os.path.basename(path) for path in outputs(tmp_path)] == [args_id + ".out"]


def test_unpicklable_results_are_returned_with_a_warning_every_time(tmp_path):
    counted = Counter(lambda x: (x, threading.Lock()))
    cached = Memory(tmp_path, verbose=0).cache(counted)
    for expected_calls in (1, 2):
        with pytest.warns(CacheWarning, match="cannot be stored"):
            value = cached(1)
        assert value[0] == 1 and len(counted.calls) == expected_calls
    assert outputs(tmp_path) == []
    left = [name for _, _, files in os.walk(tmp_path / "joblite") for name in files if name.endswith(".tmp")]
    assert left == []  # no temporary left


def damage_truncate(path):
    with open(path, "r+b") as fileobj:
        fileobj.truncate(os.path.getsize(path) // 2)


def damage_flip(path):
    with open(path, "r+b") as fileobj:
        fileobj.seek(os.path.getsize(path) // 2)
        byte = fileobj.read(1)
        fileobj.seek(-1, os.SEEK_CUR)
        fileobj.write(bytes([byte[0] ^ 0xFF]))


def damage_version(path):
    with open(path, "r+b") as fileobj:
        fileobj.seek(8)
        fileobj.write(b"\x63\x00")  # a future format version


def damage_empty(path):
    open(path, "wb").close()


@pytest.mark.parametrize("damage", [damage_truncate, damage_flip, damage_version, damage_empty])
def test_damaged_entries_warn_and_are_recomputed_and_replaced(tmp_path, damage):
    counted = Counter(lambda n: np.arange(n))
    cached = Memory(tmp_path, verbose=0).cache(counted)
    cached(10000)
    (path,) = outputs(tmp_path)
    damage(path)
    with pytest.warns(CacheWarning, match="cannot be loaded"):
        np.testing.assert_array_equal(cached(10000), np.arange(10000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(cached(10000), np.arange(10000))
    assert len(counted.calls) == 2


def test_results_whose_class_is_gone_are_recomputed(tmp_path, monkeypatch):
    (tmp_path / "vanishing_mod.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing_mod

    cached = Memory(tmp_path / "cache", verbose=0).cache(lambda: vanishing_mod.Thing())
    cached()
    del vanishing_mod.Thing
    with pytest.warns(CacheWarning, match="cannot be loaded"):
        with pytest.raises(AttributeError):  # the function itself needs the class
            cached()
    sys.modules.pop("vanishing_mod", None)


def test_validation_callback_and_expires_after(tmp_path):
    counted = Counter(add)
    memory = Memory(tmp_path, verbose=0)
    seen = []
    cached = memory.cache(counted, cache_validation_callback=lambda metadata: seen.append(metadata) or True)
    cached(1)
    cached(1)
    assert len(counted.calls) == 1 and seen[0]["duration"] >= 0
    never = memory.cache(counted, cache_validation_callback=expires_after(seconds=-1))
    never(1)
    never(1)
    assert len(counted.calls) == 3
    fresh = memory.cache(counted, cache_validation_callback=expires_after(hours=1))
    fresh(1)
    assert len(counted.calls) == 3
    with pytest.raises(ValueError, match="not callable"):
        memory.cache(add, cache_validation_callback=3)


def test_clear_a_function_and_the_whole_memory(tmp_path, capsys):
    memory = Memory(tmp_path, verbose=1)
    first, second = memory.cache(add), memory.cache(lambda x: x)
    first(1), second(1)
    assert len(outputs(tmp_path)) == 2
    first.clear()
    assert "Clearing function cache" in capsys.readouterr().out
    assert len(outputs(tmp_path)) == 1 and not first.check_call_in_cache(1)
    assert second.check_call_in_cache(1)
    memory.clear(warn=False)
    assert outputs(tmp_path) == [] and capsys.readouterr().out == ""
    assert first(1) == 6  # usable after clearing


def test_eval(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    counted = Counter(add)
    assert memory.eval(counted, 1, y=1) == memory.eval(counted, 1, y=1) == 5


def set_access(path, seconds_ago):
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))


def test_reduce_size_evicts_least_recently_used(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    cached = memory.cache(lambda i: np.zeros(1000) + i)
    for i in range(6):
        cached(i)
    by_key = {}
    for i in range(6):
        result = cached.call_and_shelve(i)
        path = os.path.join(cached.store_backend.func_dir(cached.func_id), result.args_id[:2], result.args_id + ".out")
        by_key[i] = path
        set_access(path, 1000 - 100 * i)  # 0 is the least recently used
    set_access(by_key[0], 10)  # ... until it is loaded again:
    removed = memory.reduce_size(items_limit=4)
    assert sorted(os.path.basename(item.path) for item in removed) == sorted(
        os.path.basename(by_key[i]) for i in (1, 2)
    )
    assert [cached.check_call_in_cache(i) for i in range(6)] == [True, False, False, True, True, True]
    size = max(item.size for item in memory.store_backend.get_items())
    assert len(memory.reduce_size(bytes_limit=2 * size)) == 2
    assert len(memory.reduce_size(age_limit=datetime.timedelta(seconds=100))) == 1  # entry 5, 500 s
    assert [cached.check_call_in_cache(i) for i in range(6)] == [True] + [False] * 5
    with pytest.raises(ValueError, match="items_limit"):
        memory.reduce_size(items_limit=-1)
    with pytest.raises(ValueError, match="bytes_limit"):
        memory.reduce_size(bytes_limit="lots")


def test_loads_record_the_access_time_themselves(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(add)
    cached(1)
    (path,) = outputs(tmp_path)
    set_access(path, 3600)
    cached(1)
    assert time.time() - os.path.getmtime(path) < 60


def test_bytes_limit_is_enforced_automatically(tmp_path):
    memory = Memory(tmp_path, verbose=0, bytes_limit="4M")
    cached = memory.cache(lambda i: np.full(1 << 17, i, dtype=np.float64))  # 1 MiB each
    for i in range(20):
        cached(i)
        time.sleep(0.01)
    total = sum(item.size for item in memory.store_backend.get_items())
    assert total <= 4 << 20
    assert cached.check_call_in_cache(19)  # the newest stay
    assert not cached.check_call_in_cache(0)


def test_async_functions_are_cached_with_await(tmp_path):
    calls = []

    async def fetch(x):
        calls.append(x)
        await asyncio.sleep(0)
        return x * 2

    cached = Memory(tmp_path, verbose=0).cache(fetch)
    assert isinstance(cached, AsyncMemorizedFunc)

    async def main():
        return [
            await cached(2),
            await cached(2),
            await cached(x=2),
            (await cached.call(2))[0],
            (await cached.call_and_shelve(3)).get(),
        ]

    assert asyncio.run(main()) == [4, 4, 4, 4, 6]
    assert calls == [2, 2, 3]


def test_async_calls_return_computed_values_when_the_store_fails(tmp_path):
    calls = []

    async def fetch(x):
        calls.append(x)
        return x * 2

    memory = Memory(tmp_path, verbose=0, backend_options={"lock": True, "lock_timeout": 3600})
    cached = memory.cache(fetch)
    assert asyncio.run(cached(1)) == 2
    (tmp_path / "joblite").rename(tmp_path / "elsewhere")  # the store goes while in use

    async def main():
        return [await cached(1), await cached(2), (await cached.call(3))[0], (await cached.call_and_shelve(4)).get()]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(main()) == [2, 4, 6, 8]
    assert calls == [1, 1, 2, 3, 4]
    assert [warning.category for warning in caught] == [CacheWarning] * 4  # one a call
    assert all(str(tmp_path / "joblite") in str(warning.message) for warning in caught)
    assert all(warning.filename == __file__ for warning in caught)
    assert not (tmp_path / "joblite").exists()


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="backend='s3'"):
        Memory(tmp_path, backend="s3")
    with pytest.raises(ValueError, match="mmap_mode='x'"):
        Memory(tmp_path, mmap_mode="x")
    with pytest.raises(ValueError, match="unknown option"):
        Memory(tmp_path, backend_options={"locks": True})
    with pytest.raises(ValueError, match="bytes_limit"):
        Memory(tmp_path, bytes_limit=-1)
    with pytest.raises(TypeError, match="location=3"):
        Memory(3)
    with pytest.raises(TypeError, match="not callable"):
        Memory(tmp_path).cache(3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lock_timeout": "abc"}, "backend_options['lock_timeout']='abc'"),
        ({"lock_timeout": 0}, "backend_options['lock_timeout']=0 must be a finite number of seconds > 0"),
        ({"lock_timeout": float("nan")}, "backend_options['lock_timeout']=nan"),
        ({"lock_timeout": float("inf")}, "backend_options['lock_timeout']=inf"),
        (
            {"size_check_interval": -1},
            "backend_options['size_check_interval']=-1 must be a finite number of seconds >= 0",
        ),
        ({"size_check_interval": True}, "backend_options['size_check_interval']=True"),
        ({"lock": "no"}, "backend_options['lock']='no' must be True or False"),
    ],
)
def test_backend_options_are_checked_naming_the_option_and_value(tmp_path, options, message):
    with pytest.raises(ValueError) as raised:
        Memory(tmp_path, backend_options=options)
    assert message in str(raised.value)
    assert not (tmp_path / "joblite").exists()  # nothing made for a refused configuration


def test_verbose_must_be_an_int_as_for_joblib(tmp_path):
    with pytest.raises(TypeError, match="verbose='x' must be an int"):
        Memory(tmp_path, verbose="x")
    with pytest.raises(TypeError, match="verbose=0.5 must be an int"):
        Memory(tmp_path, verbose=0).cache(add, verbose=0.5)
    with pytest.raises(TypeError, match="verbose=None"):
        MemorizedFunc(add, Memory(tmp_path, verbose=0).store_backend, verbose=None)
    # What joblib's users pass: ints, bools, numpy integers; and options that were fine.
    for verbose in (0, 1, 100, True, False, np.int64(2), -1):
        memory = Memory(
            tmp_path, verbose=verbose, backend_options={"lock": True, "lock_timeout": 5, "size_check_interval": 0}
        )
        assert memory.cache(add, verbose=verbose).func is add
    assert Memory(tmp_path, backend_options={"lock_timeout": np.float32(2.5)}).store_backend.lock_timeout == 2.5


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    tmp = tmp_path / "joblite" / ".tmp"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    import socket

    leftover = tmp / f"{dead}@{socket.gethostname()}"
    leftover.mkdir(parents=True)
    (leftover / "3.out").write_bytes(b"partial")
    other_host = tmp / "123@elsewhere"
    other_host.mkdir()
    memory.cache(add)(1)
    assert not leftover.exists()
    assert other_host.exists()  # another host's: kept until it has been silent for an hour


class DictStore(StoreBackendBase):
    """A store backend in a dict, to show the documented interface is enough."""

    def configure(self, location, verbose=0, backend_options=None):
        self.location = location
        self.entries, self.codes = {}, {}

    def load_item(self, call_id, mmap_mode=None):
        return pickle.loads(self.entries[call_id][0])

    def dump_item(self, call_id, value, metadata, compress=0):
        self.entries[call_id] = (pickle.dumps(value), metadata, time.time())
        return len(self.entries[call_id][0])

    def contains_item(self, call_id):
        return call_id in self.entries

    def get_metadata(self, call_id):
        return self.entries[call_id][1]

    def clear_item(self, call_id):
        self.entries.pop(call_id, None)

    def clear_path(self, func_id):
        for call_id in [c for c in self.entries if c[0] == func_id]:
            del self.entries[call_id]

    def clear(self):
        self.entries.clear()

    def get_cached_func_code(self, func_id):
        return self.codes.get(func_id)

    def store_cached_func_code(self, func_id, record):
        self.codes[func_id] = record

    def get_items(self, func_id=None):
        return [
            joblite.CacheItemInfo(c[0], c[1], repr(c), len(v[0]), v[2])
            for c, v in self.entries.items()
            if func_id in (None, c[0])
        ]


def test_register_store_backend():
    register_store_backend("dict-test", DictStore)
    memory = Memory("anywhere", backend="dict-test", verbose=0)
    counted = Counter(add)
    cached = memory.cache(counted)
    assert cached(1) == cached(1) == 6 and len(counted.calls) == 1
    assert len(memory.reduce_size(items_limit=0)) == 1 and not cached.check_call_in_cache(1)
    with pytest.raises(ValueError, match="subclass of StoreBackendBase"):
        register_store_backend("bad", dict)


# -- code changes, across processes as users meet them ---------------------------------
SCRIPT = """
import joblite
memory = joblite.Memory({cache!r}, verbose={verbose})

{body}

print("RESULT", f(3))
"""


def run_script(tmp_path, body, verbose=0, env=None):
    """Run a script defining `f` (cached) and calling f(3); return (result, computed, stderr)."""
    path = tmp_path / "script.py"
    log = tmp_path / "computed.log"
    body = textwrap.dedent(body).replace("LOG", repr(str(log)))
    path.write_text(SCRIPT.format(cache=str(tmp_path / "cache"), verbose=verbose, body=body))
    before = log.read_text().count("\n") if log.exists() else 0
    process = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PACKAGE_PARENT, **(env or {})},
        cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr
    result = [line for line in process.stdout.splitlines() if line.startswith("RESULT")][0]
    after = log.read_text().count("\n") if log.exists() else 0
    return result.split()[1], after - before, process.stderr


BASE = '''
@memory.cache
def f(x, y=1):
    """Add."""
    open(LOG, "a").write("computed\\n")
    return x + y
'''


@pytest.mark.parametrize(
    "edited, recomputed",
    [
        (BASE, False),
        (BASE.replace('"""Add."""', '"""Add two numbers, documented better."""'), False),
        (BASE.replace("return x + y", "# a comment\n\n    return x + y   # sum"), False),
        (BASE.replace("return x + y", "return (x +\n            y)"), False),
        (BASE.replace('    """Add."""\n', ""), False),
        (BASE.replace("@memory.cache\n", "@memory.cache(verbose=0)\n"), False),
        (BASE.replace("return x + y", "return x + y + 0"), True),
        (BASE.replace("y=1", "y=1, z=0"), True),
        (BASE.replace("return x + y", "return y + x"), True),
    ],
)
def test_code_changes_invalidate_and_cosmetic_changes_do_not(tmp_path, edited, recomputed):
    assert run_script(tmp_path, BASE)[:2] == ("4", 1)
    assert run_script(tmp_path, BASE)[:2] == ("4", 0)
    assert run_script(tmp_path, edited)[1] == (1 if recomputed else 0)


def test_changed_defaults_give_new_entries(tmp_path):
    assert run_script(tmp_path, BASE)[:2] == ("4", 1)
    assert run_script(tmp_path, BASE.replace("y=1", "y=2"))[:2] == ("5", 1)


def test_code_change_warns_at_verbose(tmp_path):
    run_script(tmp_path, BASE, verbose=1)
    stderr = run_script(tmp_path, BASE.replace("x + y", "x - y"), verbose=1)[2]
    assert "CacheWarning" in stderr and "has changed" in stderr


EXEC_BODY = '''
source = """
def f(x, y=1):
    "doc"
    open(LOG, "a").write("computed\\\\n")
    return x + y if x in {1, 2, 3, 'a', 'b'} else None
"""
namespace = {"LOG": LOG}
exec(source, namespace)
f = memory.cache(namespace["f"])
'''


@pytest.mark.parametrize("seeds", [("1", "2"), ("0", "12345")])
def test_functions_without_source_are_stable_across_processes_and_hash_seeds(tmp_path, seeds):
    assert run_script(tmp_path, EXEC_BODY, env={"PYTHONHASHSEED": seeds[0]})[:2] == ("4", 1)
    assert run_script(tmp_path, EXEC_BODY, env={"PYTHONHASHSEED": seeds[1]})[:2] == ("4", 0)
    edited = EXEC_BODY.replace("return x + y", "return x * y")
    assert run_script(tmp_path, edited, env={"PYTHONHASHSEED": seeds[1]})[:2] == ("3", 1)


def test_code_digest_ignores_docstring_of_exec_functions():
    namespace = {}
    exec("def f(x):\n    'one'\n    return x\n", namespace)
    exec("def g(x):\n    return x\n", namespace)
    exec("def h(x):\n    return -x\n", namespace)
    digest = lambda func: func_inspect.code_digest(func, joblite.hash)[0]  # noqa: E731
    namespace["g"].__code__ = namespace["g"].__code__.replace(co_name="f", co_qualname="f")
    assert digest(namespace["f"]) == digest(namespace["g"]) != digest(namespace["h"])


def test_wrapping_again_does_not_read_the_source_again(tmp_path, monkeypatch):
    memory = Memory(tmp_path, verbose=0)

    def fresh(x):
        return x

    assert memory.eval(fresh, 1) == 1
    monkeypatch.setattr(inspect, "getsource", lambda *args: pytest.fail("source read again"))
    for _ in range(3):
        assert memory.cache(fresh)(1) == 1


def test_code_record_is_written_again_after_a_clear(tmp_path):
    memory = Memory(tmp_path, verbose=0)
    cached = memory.cache(add)
    cached(1)
    record = os.path.join(cached.store_backend.func_dir(cached.func_id), "func_code.json")
    assert os.path.exists(record)
    for clear in (cached.clear, memory.clear):
        clear()
        assert not os.path.exists(record)
        cached(1)
        assert os.path.exists(record)


def test_a_lock_is_released_when_the_validation_callback_raises(tmp_path):
    calls = []

    def callback(metadata):  # rejects the entry at the first lookup, raises at the second
        calls.append(metadata)
        if len(calls) > 1:
            raise ValueError("callback failed")
        return False

    memory = Memory(tmp_path, verbose=0, backend_options={"lock": True, "lock_timeout": 3600})
    memory.cache(add)(1)
    with pytest.raises(ValueError, match="callback failed"):
        memory.cache(add, cache_validation_callback=callback)(1)
    assert os.listdir(tmp_path / "joblite" / ".locks") == []
    assert memory.cache(add)(1) == 6


@pytest.mark.parametrize("error", [ValueError("failed"), StopIteration(7)], ids=["ValueError", "StopIteration"])
def test_what_the_function_raises_reaches_the_caller_and_the_lock_is_released(tmp_path, error):
    def fails(x):
        raise error

    memory = Memory(tmp_path, verbose=0, backend_options={"lock": True, "lock_timeout": 3600})
    cached = memory.cache(fails)
    for call in (cached, cached.call_and_shelve, cached.call):
        with pytest.raises(type(error)):
            call(1)
    assert os.listdir(tmp_path / "joblite" / ".locks") == [] and outputs(tmp_path) == []


def test_calls_return_computed_values_when_the_store_fails(tmp_path):
    counted = Counter(lambda x: x * 2)
    memory = Memory(tmp_path, verbose=0, backend_options={"lock": True, "lock_timeout": 3600})
    cached = memory.cache(counted)
    assert cached(1) == 2
    (tmp_path / "joblite").rename(tmp_path / "elsewhere")  # the store goes while in use
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [cached(1), cached(2), cached.call(3)[0], cached.call_and_shelve(4).get()] == [2, 4, 6, 8]
    assert [args for args, _ in counted.calls] == [(1,), (1,), (2,), (3,), (4,)]
    assert [warning.category for warning in caught] == [CacheWarning] * 4  # one a call
    assert all(str(tmp_path / "joblite") in str(warning.message) for warning in caught)
    assert all(warning.filename == __file__ for warning in caught)
    assert not (tmp_path / "joblite").exists()


def test_a_function_cleared_by_another_process_gets_its_code_record_back(tmp_path):
    # Another process clears the function (its folder goes, code record included) while
    # this one runs: its next entry is written under a new code record, never without one
    # (a later process with other code would otherwise take that entry as its own).
    memory = Memory(tmp_path, verbose=0)
    cached = memory.cache(add)
    cached(1)
    folder = cached.store_backend.func_dir(cached.func_id)
    other = Memory(tmp_path, verbose=0).store_backend  # as another process would
    other.clear_path(cached.func_id)
    assert not os.path.exists(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached(2) == 7
    assert os.path.isfile(os.path.join(folder, "func_code.json"))
    assert cached.check_call_in_cache(2)


def test_a_folder_that_is_not_a_store_is_never_written_or_cleared(tmp_path):
    package = tmp_path / "project" / "joblite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    with pytest.raises(ValueError, match="is not a joblite cache store"):
        Memory(package.parent)
    assert os.listdir(package) == ["__init__.py"]
    memory = Memory(tmp_path / "cache", verbose=0)
    assert (
        (tmp_path / "cache" / "joblite" / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    memory.cache(add)(1)
    memory.clear()
    assert os.listdir(tmp_path / "cache" / "joblite") == ["CACHEDIR.TAG"] or sorted(
        os.listdir(tmp_path / "cache" / "joblite")
    ) == [".tmp", "CACHEDIR.TAG"]


def test_a_process_removes_its_temporary_folder_at_exit(tmp_path):
    assert run_script(tmp_path, BASE)[:2] == ("4", 1)
    assert os.listdir(tmp_path / "cache" / "joblite" / ".tmp") == []


def test_hits_see_an_entry_replaced_by_another_process(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(add)
    assert cached(1) == cached(1) == 6  # the second hit may reuse the kept stream
    other = Memory(tmp_path, verbose=0).store_backend  # "another process": its own store object
    call_id = (cached.func_id, cached.call_and_shelve(1).args_id)
    other.dump_item(call_id, "replaced", {"duration": 0.0, "time": 0.0}, ("", 0))
    assert cached(1) == "replaced"
    other.clear_item(call_id)
    assert cached(1) == 6 and cached(1) == 6


def test_hits_return_fresh_objects(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(lambda n: {"items": list(range(n))})
    cached(3)
    for _ in range(2):
        hit = cached(3)
        hit["items"].append("mutated by the caller")
    assert cached(3) == {"items": [0, 1, 2]} and cached(3) is not cached(3)


class Counted:
    """An argument that counts how often it is hashed (reduced)."""

    reductions = 0

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        Counted.reductions += 1
        return Counted, (self.value,)


def test_arguments_are_hashed_once_per_call(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(lambda item: item.value)
    for expected in (1, 2, 3):  # a miss, then hits
        assert cached(Counted(7)) == 7
        assert Counted.reductions == expected


def test_a_cached_main_function_run_by_parallel_workers_shares_the_callers_entries(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        import joblite
        from joblite import Parallel, delayed

        memory = joblite.Memory({str(tmp_path / "cache")!r}, verbose=0)

        @memory.cache
        def square(x):
            open({str(tmp_path / "computed.log")!r}, "a").write(f"{{os.getpid()}}\\n")
            return x * x

        if __name__ == "__main__":
            first = Parallel(n_jobs=2)(delayed(square)(x) for x in range(6))
            second = Parallel(n_jobs=2)(delayed(square)(x) for x in range(6))
            print(first == second == [x * x for x in range(6)],
                  all(square.check_call_in_cache(x) for x in range(6)), os.getpid())
    """)
    )
    process = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": PACKAGE_PARENT},
        cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr
    same, cached, caller = process.stdout.split()
    assert (same, cached) == ("True", "True")
    computed = (tmp_path / "computed.log").read_text().split()
    assert len(computed) == 6 and caller not in computed  # once each, in the workers
    assert os.listdir(tmp_path / "cache" / "joblite") == ["CACHEDIR.TAG", "__main__.pipeline"] or sorted(
        os.listdir(tmp_path / "cache" / "joblite")
    ) == [".tmp", "CACHEDIR.TAG", "__main__.pipeline"]


def test_mmap_mode_w_plus_maps_the_entry_without_truncating_it(tmp_path):
    cached = Memory(tmp_path, verbose=0, mmap_mode="w+").cache(lambda n: np.arange(n, dtype=np.float64))
    for _ in range(3):  # the miss (loaded back as a memmap), then hits
        value = cached(1000)
        assert isinstance(value, np.memmap) and value.mode == "r+"
        np.testing.assert_array_equal(value, np.arange(1000.0))
        del value
