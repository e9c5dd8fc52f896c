"""What ``call_and_shelve`` returns: a reference to a stored result, or the value itself without a cache."""

__all__ = ["MemorizedResult", "NotMemorizedResult", "backend_state", "backend_from_state"]


class MemorizedResult:
    """A reference to a result in the cache, as ``call_and_shelve`` returns it.

    It pickles small (the store configuration and the call's identity), so it
    can be sent to another process, which loads the result with :meth:`get`.

    Parameters
    ----------
    store_backend : StoreBackendBase
    call_id : tuple of str
        ``(func_id, args_id)``.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        How arrays of the result are loaded.
    verbose : int, optional
    metadata : dict, optional
        The entry's metadata when it is known.

    Attributes
    ----------
    func_id, args_id : str
    """

    def __init__(self, store_backend, call_id, mmap_mode=None, verbose=0, metadata=None):
        self.store_backend = store_backend
        self.func_id, self.args_id = call_id
        self.mmap_mode = mmap_mode
        self.verbose = verbose
        self.metadata = metadata

    @property
    def location(self):
        return self.store_backend.location

    def get(self):
        """Load and return the result.

        Raises
        ------
        KeyError
            If the entry is no longer in the cache (cleared or evicted).
        """
        try:
            return self.store_backend.load_item((self.func_id, self.args_id), self.mmap_mode)
        except KeyError:
            raise KeyError(f"the result of {self.func_id} with arguments {self.args_id} is no longer "
                           f"in the cache at {self.location} (cleared or evicted)") from None

    def clear(self):
        """Remove the result from the cache."""
        self.store_backend.clear_item((self.func_id, self.args_id))

    def __repr__(self):
        return f"MemorizedResult(location={self.location!r}, func={self.func_id!r}, args_id={self.args_id!r})"

    def __reduce__(self):
        return (_rebuild_result, (backend_state(self.store_backend), (self.func_id, self.args_id),
                                  self.mmap_mode, self.verbose, self.metadata))


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


def _rebuild_result(state, call_id, mmap_mode, verbose, metadata):
    return MemorizedResult(backend_from_state(state), call_id, mmap_mode, verbose, metadata)


class NotMemorizedResult:
    """What ``call_and_shelve`` returns without a cache: the value itself, held in memory."""

    __slots__ = ("value", "valid")

    def __init__(self, value):
        self.value = value
        self.valid = True

    def get(self):
        """Return the value; ``KeyError`` after :meth:`clear`."""
        if not self.valid:
            raise KeyError("the result has been cleared")
        return self.value

    def clear(self):
        """Forget the value."""
        self.valid = False
        self.value = None

    def __repr__(self):
        return f"NotMemorizedResult({self.value!r})" if self.valid else "NotMemorizedResult(<cleared>)"
