"""Canonical, streaming hashing of Python objects: ``joblite.hash``, ``joblite.Hasher``, cache key digests.

The byte stream that is hashed is specified in ``docs/format_hashing.rst``
(format version 1).  The kernel (``joblite._impl.hasher``, compiled or pure)
encodes the common types itself; :mod:`joblite._hash_policy` maps all the
others to canonical records or arrays, which the kernel then encodes.  This
module is the API on top: the digest algorithms, the limits, and the digests
``Memory`` keys its entries with (:func:`key_digest`, :func:`closure_digest`).
"""

from __future__ import annotations

import functools
import hashlib
import operator

from . import _impl
from ._hash_policy import cell_value, reduce_object

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._typing import HashName

__all__ = [
    "hash",
    "Hasher",
    "HashLimitError",
    "HASH_NAMES",
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "MAX_REDUCTIONS",
    "key_digest",
    "closure_digest",
]

#: Version of the canonical encoding; part of every hashed stream.
FORMAT_VERSION = _impl.hasher.FORMAT_VERSION

#: Default ``max_depth``: containers and objects that may enclose one another.
MAX_DEPTH = _impl.hasher.MAX_DEPTH

#: Default ``max_reductions``: objects that one hash may reduce to records.
MAX_REDUCTIONS = _impl.hasher.MAX_REDUCTIONS

HashLimitError = _impl.hasher.HashLimitError

#: Accepted values of ``hash_name``, the first is the default.
HASH_NAMES = ("xxh3_128", "xxh3_64", "md5", "sha1", "sha256", "blake2b")

_factories: dict[str, Callable[[], Any]] = {}  # hash name -> digest constructor, filled at first use


def _digest_factory(hash_name):
    try:
        return _factories[hash_name]
    except (KeyError, TypeError):  # first use, or not a name at all
        pass
    if hash_name == "xxh3_128" or hash_name == "xxh3_64":
        import xxhash

        factory = getattr(xxhash, hash_name)
    elif hash_name in HASH_NAMES:
        factory = functools.partial(hashlib.new, hash_name)
    else:
        raise ValueError(  # joblib's words, which users match on
            f"Valid options for 'hash_name' are {HASH_NAMES}. Got hash_name={hash_name!r} instead."
        )
    _factories[hash_name] = factory
    return factory


def _check_limit(name, value):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _kernel(hash_name, max_depth, max_reductions, kernels=None):
    """A new stream kernel of the active twin (or of `kernels`), its limits checked."""
    kernels = kernels or _impl.hasher
    max_depth = _check_limit("max_depth", max_depth)
    max_reductions = _check_limit("max_reductions", max_reductions)
    policy = reduce_object
    if max_reductions != MAX_REDUCTIONS:
        policy = functools.partial(reduce_object, max_items=max_reductions)
    return kernels.StreamHasher(_digest_factory(hash_name), policy, max_depth, max_reductions)


class Hasher:
    """Hash many objects into one digest with the canonical encoding.

    ``Hasher().update(a).update(b).hexdigest()`` is the digest of the stream
    of `a` followed by `b`; ``joblite.hash(obj)`` equals
    ``Hasher().update(obj).hexdigest()``.

    Parameters
    ----------
    hash_name : {'xxh3_128', 'xxh3_64', 'md5', 'sha1', 'sha256', 'blake2b'}, optional
        The digest algorithm.  ``xxh3_*`` come from the ``xxhash`` package,
        the others from :mod:`hashlib`.  Default ``'xxh3_128'``.
    max_depth : int, optional, keyword-only
        Bound on the nesting of each object passed to :meth:`update`: the
        most containers and objects that may enclose one another, default
        :data:`MAX_DEPTH` (100,000).  See :func:`hash`.
    max_reductions : int, optional, keyword-only
        Bound on the objects that each :meth:`update` may reduce to records,
        default :data:`MAX_REDUCTIONS` (10,000,000).  See :func:`hash`.

    Attributes
    ----------
    hash_name : str
    max_depth, max_reductions : int
        The values given.

    Raises
    ------
    ValueError
        If `hash_name` is not one of the choices above, or a limit is below 1.
    TypeError
        If a limit is not an integer.

    See Also
    --------
    hash : the digest of one object.

    Notes
    -----
    The encoding is the documented format version :data:`FORMAT_VERSION`
    (see the hash format page of the documentation).
    """

    __slots__ = ("hash_name", "max_depth", "max_reductions", "_kernel")

    def __init__(
        self, hash_name: HashName = "xxh3_128", *, max_depth: int = MAX_DEPTH, max_reductions: int = MAX_REDUCTIONS
    ) -> None:
        self._kernel = _kernel(hash_name, max_depth, max_reductions)
        self.hash_name = hash_name
        self.max_depth = operator.index(max_depth)
        self.max_reductions = operator.index(max_reductions)

    def update(self, obj: object) -> Hasher:
        """Feed the canonical encoding of `obj`.

        Parameters
        ----------
        obj : object
            Any object of a supported type (see the hashing guide).

        Returns
        -------
        Hasher
            `self`, so that calls can be chained.

        Raises
        ------
        TypeError
            If an object inside `obj` cannot be hashed (a generator, an open
            file, a lock, an object whose ``__reduce_ex__`` raises); the message
            names its type and its path inside `obj`, e.g. ``obj[1]['gen']``.
        RuntimeError
            If a list, dict or set inside `obj` is changed while it is hashed
            (by code that hashing runs; by another thread, when the change
            alters its size); the message names its path.  Also if `update` is called while another call of
            this hasher runs (from code that it runs, or from another thread).
        HashLimitError
            If `obj` is nested deeper than `max_depth`, or hashing it needs
            more than `max_reductions` reductions.

        After any of these errors the hasher is left as it was before the
        call.
        """
        self._kernel.update(obj)
        return self

    def digest(self) -> bytes:
        """Return the digest of everything fed so far, as bytes."""
        return self._kernel.digest()

    def hexdigest(self) -> str:
        """Return the digest of everything fed so far, as a lower-case hex string."""
        return self._kernel.hexdigest()


def hash(
    obj: object,
    hash_name: HashName = "xxh3_128",
    coerce_mmap: bool = False,
    *,
    max_depth: int = MAX_DEPTH,
    max_reductions: int = MAX_REDUCTIONS,
) -> str:
    """Return a digest of `obj` that depends only on its value.

    Equal values give equal digests, in any process, run, ``PYTHONHASHSEED``
    and byte order: numpy arrays hash by dtype (byte order normalised), shape
    and elements in C order, so views, copies, C/F order, memmaps and
    byte-swapped arrays with equal values hash equal; ``dict``, ``set`` and
    ``frozenset`` hash independently of insertion order.

    Parameters
    ----------
    obj : object
        The object to hash.  Containers may refer to themselves, and nest as
        deep as `max_depth`.
    hash_name : {'xxh3_128', 'xxh3_64', 'md5', 'sha1', 'sha256', 'blake2b'}, optional
        The digest algorithm, default ``'xxh3_128'`` (32 hex characters).
    coerce_mmap : bool, optional
        Kept for compatibility with ``joblib.hash``; it has no effect, since
        an ``np.memmap`` always hashes like the ndarray with the same values.
    max_depth : int, optional, keyword-only
        The most containers (``list``, ``tuple``, ``dict``, ``set``,
        ``frozenset``) and reduced objects that may enclose one another in
        `obj`: one per step of the path of the innermost one, e.g. 3 for
        ``obj[0][1][2]``.  An object reduced through ``__reduce_ex__``
        usually counts 2 (its record and its state dict).  Default
        :data:`MAX_DEPTH`, 100,000.
    max_reductions : int, optional, keyword-only
        The most objects that hashing `obj` may reduce to canonical records:
        every object that is not a built-in scalar or one of the containers
        above counts one (an array, a ``datetime``, a function, an object
        reduced through ``__reduce_ex__``...).  It also bounds the items of
        any one ``listitems`` or ``dictitems`` iterator that ``__reduce_ex__``
        returns.  Default :data:`MAX_REDUCTIONS`, 10,000,000.

    Returns
    -------
    str
        The hex digest: 32 characters for ``xxh3_128`` and ``md5``, 16 for
        ``xxh3_64``, 40 for ``sha1``, 64 for ``sha256``, 128 for ``blake2b``.

    Raises
    ------
    ValueError
        If `hash_name` is not one of the choices, or a limit is below 1.
    TypeError
        If some object inside `obj` cannot be hashed; the message names its
        type and path, e.g. ``obj[1]['gen']``.  Also if a limit is not an
        integer.
    RuntimeError
        If a list, dict or set inside `obj` is changed while it is hashed
        (by a ``__reduce__``, ``__getstate__`` or property that hashing
        calls; by another thread, when the change alters its size); the
        message names its path, e.g. ``dict at obj['key'][3] changed during
        hashing``.
    HashLimitError
        If `obj` is nested deeper than `max_depth` or needs more than
        `max_reductions` reductions, e.g. an object whose ``__reduce__``
        returns a new object that reduces to a new one, without end.  A
        subclass of :class:`RecursionError`; the message names the path and
        the limit to raise.

    Notes
    -----
    The hashed byte stream is format version :data:`FORMAT_VERSION`,
    specified on the hash format page of the documentation.  The limits do
    not change digests: an object hashes the same under any limits that let
    it be hashed.
    """
    if max_depth is MAX_DEPTH and max_reductions is MAX_REDUCTIONS:
        # The common call, kept short (small arguments are hashed at every cached call).
        kernel = _impl.hasher.StreamHasher(_digest_factory(hash_name), reduce_object)
    else:
        kernel = _kernel(hash_name, max_depth, max_reductions)
    kernel.update(obj)
    return kernel.hexdigest()


def key_digest(key, root="args"):
    """Return the digest under which ``Memory`` files a call: ``hash(key)``, with errors naming `root`.

    The digest is the one :func:`hash` gives `key` (``xxh3_128``, default
    limits); only the paths in error messages differ, so that they name the
    call's arguments (``args['data']``) rather than ``obj``.

    Parameters
    ----------
    key : object
        What identifies the call: its bound arguments, with whatever else
        decides the result (closure values, the instance of a bound method).
    root : str, optional
        The name of `key` in error messages.

    Returns
    -------
    str
        32 hex characters.

    Raises
    ------
    TypeError, RuntimeError, HashLimitError
        As :func:`hash` does, the path starting at `root`.
    """
    # Kept short, not through Hasher: this runs at every cached call, hits included.
    try:
        factory = _factories["xxh3_128"]
    except KeyError:
        factory = _digest_factory("xxh3_128")
    kernel = _impl.hasher.StreamHasher(factory, reduce_object)
    kernel.update(key, root)
    return kernel.hexdigest()


def closure_digest(func):
    """Return :func:`hash` of the values `func` closes over, or None when it has no closure.

    The values are hashed as a tuple; a cell not yet filled hashes as the
    ``empty_cell`` record, as in the record of a function (see the hash format).

    Parameters
    ----------
    func : function
        A plain function; other callables have no ``__closure__`` (None).

    Returns
    -------
    str or None
        32 hex characters (``xxh3_128``).

    Raises
    ------
    TypeError, RuntimeError, HashLimitError
        As :func:`hash` does, when a value cannot be hashed.
    """
    cells = getattr(func, "__closure__", None)
    if not cells:
        return None
    return hash(tuple(cell_value(cell) for cell in cells))


def twin_hasher(twin, hash_name="xxh3_128", *, max_depth=MAX_DEPTH, max_reductions=MAX_REDUCTIONS):
    """A new stream kernel of one named twin (``'ext'`` or ``'pure'``), for tests and benchmarks.

    Parameters
    ----------
    twin : {'ext', 'pure'}
        Which twin's kernel.
    hash_name, max_depth, max_reductions
        As for :func:`hash`.

    Returns
    -------
    StreamHasher
        The kernel a :class:`Hasher` wraps: feed it with ``update(obj, root)``,
        read the digest so far with ``hexdigest()``.

    Raises
    ------
    ValueError, TypeError
        As :func:`hash` does for a bad `hash_name` or limit; ``ValueError``
        for an unknown `twin`.
    ImportError
        If ``'ext'`` is asked for and the compiled twin is not built.
    """
    return _kernel(hash_name, max_depth, max_reductions, _impl.get_twin(twin)["_hasher"])


def hash_with_twin(twin, obj, hash_name="xxh3_128", root="obj", *, max_depth=MAX_DEPTH, max_reductions=MAX_REDUCTIONS):
    """Hash `obj` with one named twin (``'ext'`` or ``'pure'``), for tests and benchmarks."""
    kernel = twin_hasher(twin, hash_name, max_depth=max_depth, max_reductions=max_reductions)
    kernel.update(obj, root)
    return kernel.hexdigest()
