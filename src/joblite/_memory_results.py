"""What ``call_and_shelve`` returns: a reference to a stored result, or the value itself without a cache."""

from __future__ import annotations

import os

from . import func_inspect
from .store import StoreBackendBase, layout, store_backend

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

    from ._typing import MmapMode, PathType

__all__ = [
    "MemorizedResult",
    "NotMemorizedResult",
    "backend_state",
    "backend_from_state",
    "entry_name",
    "function_place",
    "open_store",
]


class MemorizedResult:
    """A reference to a result in the cache, as ``call_and_shelve`` returns it.

    It pickles small (the store configuration and the call's identity), so it
    can be sent to another process, which loads the result with :meth:`get`.

    Parameters
    ----------
    location : str, pathlib.Path or StoreBackendBase
        The cache folder (as for :class:`joblite.Memory`) or its store backend.
    call_id : tuple of str
        ``(func_id, args_id)``.
    backend : str, optional
        The store backend, when `location` is a folder; default ``'local'``.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        How arrays of the result are loaded.
    verbose : int, optional
        Above 1, :meth:`get` prints joblib's ``[Memory] ...: Loading f...``
        line (from 10, with the entry's place).
    timestamp : float, optional
        What the ``Loading`` line counts its time from (s since the epoch).
    metadata : dict, optional
        The entry's metadata when it is known; else it is read from the
        store when first asked for.
    name : str, optional
        The function's name in the ``Loading`` line; default: the last part
        of ``func_id``.

    Raises
    ------
    TypeError
        If `location` is neither a folder nor a store backend.
    ValueError
        If `backend` is not a registered store backend.

    Attributes
    ----------
    func_id, args_id : str
    metadata : dict
        ``'duration'`` (s), ``'time'`` (s since the epoch) and, when the
        function was called at ``verbose`` > 0, ``'input_args'``.
    duration : float
        How long the function ran (s).
    """

    def __init__(
        self,
        location: PathType | StoreBackendBase,
        call_id: tuple[str, str],
        backend: str = "local",
        mmap_mode: MmapMode | None = None,
        verbose: int = 0,
        timestamp: float | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.store_backend = open_store(location, backend, verbose)
        self.func_id, self.args_id = call_id
        self.mmap_mode = mmap_mode
        self.verbose = verbose
        self._metadata = metadata
        self.timestamp = timestamp
        self.name = self.func_id.rsplit("/", 1)[-1] if name is None else name

    @property
    def location(self) -> str:
        return self.store_backend.location

    @property
    def metadata(self) -> dict[str, Any]:
        """The entry's metadata, read from the store once.

        Raises
        ------
        KeyError
            If the entry is no longer in the cache.
        """
        if self._metadata is None:
            self._metadata = self.store_backend.get_metadata((self.func_id, self.args_id))
        return self._metadata

    @property
    def duration(self) -> float | None:
        """How long the function ran, in seconds (``metadata['duration']``)."""
        return self.metadata.get("duration")

    def get(self) -> Any:
        """Load and return the result.

        Raises
        ------
        KeyError
            If the entry is no longer in the cache (cleared or evicted).
        """
        call_id = (self.func_id, self.args_id)
        if self.verbose > 1:
            try:
                metadata = self.metadata
            except Exception:  # a missing or damaged entry: the load below says so
                metadata = None
            print(
                func_inspect.format_loading(
                    self.name,
                    self.timestamp,
                    metadata,
                    entry_name(self.store_backend, call_id) if self.verbose >= 10 else None,
                )
            )
        try:
            return self.store_backend.load_item(call_id, self.mmap_mode)
        except KeyError:
            raise KeyError(
                f"the result of {self.func_id} with arguments {self.args_id} is no longer "
                f"in the cache at {self.location} (cleared or evicted)"
            ) from None

    def clear(self) -> None:
        """Remove the result from the cache."""
        self.store_backend.clear_item((self.func_id, self.args_id))

    def __repr__(self):
        return f"MemorizedResult(location={self.location!r}, func={self.func_id!r}, args_id={self.args_id!r})"

    def __reduce__(self):
        return (
            _rebuild_result,
            (
                backend_state(self.store_backend),
                (self.func_id, self.args_id),
                self.mmap_mode,
                self.verbose,
                self._metadata,
                self.name,
            ),
        )


def open_store(location, backend="local", verbose=0):
    """The store backend of `location`: a cache folder (a str or a path) opened with `backend`, or a store backend.

    Raises
    ------
    TypeError
        If `location` is neither.
    ValueError
        If `backend` is not a registered store backend.
    """
    if isinstance(location, StoreBackendBase):
        return location
    if isinstance(location, (str, os.PathLike)):
        return store_backend(backend, os.fspath(location), verbose)
    raise TypeError(
        f"location={location!r} must be a str, a pathlib.Path or a store backend "
        "(without a cache: NotMemorizedFunc(func), or Memory(None).cache(func))"
    )


def backend_state(backend):
    """What rebuilds `backend` in another process: ``(class, location, options)``."""
    options = backend.options() if hasattr(backend, "options") else None
    return type(backend), backend.location, options


def backend_from_state(state):
    """The store backend that :func:`backend_state` described."""
    cls, location, options = state
    backend = cls()
    backend.configure(location, backend_options=options)
    return backend


def _rebuild_result(state, call_id, mmap_mode, verbose, metadata, name):
    # Without the timestamp, as joblib: the Loading lines of a copy show no time.
    return MemorizedResult(
        backend_from_state(state), call_id, mmap_mode=mmap_mode, verbose=verbose, metadata=metadata, name=name
    )


def function_place(store, func_id):
    """Where the entries of `func_id` are, for messages: a folder store's folder, else ``location/func_id``."""
    if hasattr(store, "func_dir"):
        return store.func_dir(func_id)
    return f"{store.location}/{func_id}"


def entry_name(store, call_id):
    """Where the entry `call_id` is, for messages: a folder store's file, else ``location/func_id/args_id``."""
    func_id, args_id = call_id
    if hasattr(store, "func_dir"):
        return layout.entry_path(store.func_dir(func_id), args_id)
    return f"{function_place(store, func_id)}/{args_id}"


class NotMemorizedResult:
    """What ``call_and_shelve`` returns without a cache: the value itself, held in memory."""

    __slots__ = ("value", "valid")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.valid = True

    def get(self) -> Any:
        """Return the value; ``KeyError`` after :meth:`clear`."""
        if not self.valid:
            raise KeyError("the result has been cleared")
        return self.value

    def clear(self) -> None:
        """Forget the value."""
        self.valid = False
        self.value = None

    def __repr__(self):
        return f"NotMemorizedResult({self.value!r})" if self.valid else "NotMemorizedResult(<cleared>)"
