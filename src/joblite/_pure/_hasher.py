"""Pure-Python twin of ``joblite._ext._hasher``: the canonical hash stream.

The encoder walks an object graph iteratively (an explicit stack of frames, so
deep nesting never recurses) and writes the canonical byte stream of
``docs/format_hashing.rst`` into a digest through a bounded buffer.  Types it
does not know are handed to a policy callback, ``reduce_object``, which
returns a canonical *record* or *array* description (see
``joblite.hashing``).  The compiled twin produces the same stream byte for byte.

Code run by the walk (the policy and what it calls: ``__reduce_ex__``,
properties, ``__repr__``...) may change the containers being walked.  Before
each such call, every ``list``, ``dict`` and ``set`` open at that moment is
*guarded*: a copy of its items is taken (nothing can have changed it since it
was entered), the walk goes on over the copy, and when the container is left
it must still hold the same objects in the same order, or a ``RuntimeError``
names its path.  Its size is checked at every step.
"""

import struct

FORMAT_VERSION = 1
HEADER = b"JLH\x01"
BUFFER_SIZE = 1 << 16
CHUNK_SIZE = 1 << 20

RECORD = 0
ARRAY = 1
DATA_BUFFER = 0
DATA_STRIDED = 1
DATA_CAST = 2
DATA_MASKED = 3

#: Default bounds of one ``update``: open containers and objects, and policy calls.
MAX_DEPTH = 100_000
MAX_REDUCTIONS = 10_000_000
#: Steps of a path shown at each end of a ``HashLimitError`` message.
_PATH_ENDS = 12

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

_F_SEQ = 0
_F_SORTED = 1
_F_UNORDERED = 2
_F_SUB = 3

_pack_u64 = struct.Struct("<Q").pack
_pack_i64 = struct.Struct("<q").pack
_pack_f64 = struct.Struct("<d").pack
_pack_c128 = struct.Struct("<dd").pack

_SET_TAGS = {set: (b"e", b"E"), frozenset: (b"z", b"Z")}


#: Bytes of the tiles a transposing gather copies at once: the source lines of a tile stay in L1.
_TILE_BYTES = 1 << 14

#: Item sizes ``zero_masked`` handles.
_MASKED_ITEM_SIZES = (1, 2, 4, 8, 16)


def check_masked(values, mask):
    """Check the arguments of ``zero_masked`` (both twins); return the item size of `values`.

    Raises
    ------
    TypeError
        If `values` or `mask` is not a NumPy array.
    ValueError
        If either is not C-contiguous, their shapes differ, `mask` is not
        boolean, or `values` holds objects or items of another size than 1,
        2, 4, 8 or 16 bytes.
    """
    import numpy as np

    for name, array in (("values", values), ("mask", mask)):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"zero_masked: {name} must be a numpy array, not {type(array).__qualname__}")
        if not array.flags.c_contiguous:
            raise ValueError(
                f"zero_masked: {name} must be C-contiguous, got strides {array.strides} for shape {array.shape}"
            )
    if mask.dtype != np.bool_:
        raise ValueError(f"zero_masked: mask must be boolean, got dtype {mask.dtype}")
    if values.shape != mask.shape:
        raise ValueError(f"zero_masked: values of shape {values.shape} and mask of shape {mask.shape} differ")
    size = values.dtype.itemsize
    if values.dtype.hasobject or size not in _MASKED_ITEM_SIZES:
        raise ValueError(
            f"zero_masked: items of dtype {values.dtype} ({size} bytes) are not raw values of 1, 2, 4, 8 or 16 bytes"
        )
    return size


def zero_masked(values, mask):
    """A copy of `values` with every item where `mask` is true set to all-zero bits.

    Items are treated as their bytes, whatever their dtype: a masked float
    becomes +0.0, a masked bool False, as ``np.where(mask, 0, values)`` gives.

    Parameters
    ----------
    values : numpy.ndarray
        C-contiguous array of items of 1, 2, 4, 8 or 16 bytes (not objects).
    mask : numpy.ndarray of bool
        C-contiguous, of the shape of `values`: true where the item is zeroed.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous array of the dtype and shape of `values`.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_masked`: non-arrays, non-contiguous arrays, shapes
        that differ, a mask that is not boolean, items of another size.
    """
    import numpy as np

    size = check_masked(values, mask)
    if size == 16:
        raw = values.reshape(-1).view(np.uint64).reshape(-1, 2)
        return np.where(mask.reshape(-1, 1), np.uint64(0), raw).view(values.dtype).reshape(values.shape)
    uint = np.dtype(f"=u{size}")
    return np.where(mask, uint.type(0), values.view(uint)).view(values.dtype)


def _simplified(shape, strides):
    """The same walk in C order over fewer dimensions: size-1 ones dropped, contiguous ones merged."""
    sizes, steps = [], []
    for size, stride in zip(shape, strides):
        if size == 1:
            continue
        if sizes and steps[-1] == stride * size:
            sizes[-1] *= size
            steps[-1] = stride
        else:
            sizes.append(size)
            steps.append(stride)
    if not sizes:
        return (1,), (0,)
    return tuple(sizes), tuple(steps)


class HashLimitError(RecursionError):
    """An object is nested deeper, or needs more reductions, than a hash allows.

    Raised by :func:`joblite.hash` and :meth:`joblite.Hasher.update` when an
    object exceeds ``max_depth`` or ``max_reductions``, whichever kernel runs
    (the compiled one raises this class too).

    Parameters
    ----------
    message : str
    path : str, optional
        Path of the object at which the limit was reached, e.g. ``obj[0]['k']``.
    limit : {'max_depth', 'max_reductions'}, optional
        The limit that was exceeded.
    value : int, optional
        Its value.
    """

    __module__ = "joblite.hashing"  # where users find it (pickle too)

    def __init__(self, message, path=None, limit=None, value=None):
        super().__init__(message)
        self.path = path
        self.limit = limit
        self.value = value


class _Frame:
    __slots__ = ("kind", "items", "values", "pos", "n", "labels", "obj", "collected", "tag", "live", "snapshot")

    def __init__(self, kind, items, obj, labels=None, tag=None, live=None):
        self.kind = kind
        self.items = items
        self.values = None  # of a sorted dict: the values, in the order of its keys
        self.pos = 0
        self.n = len(items)
        self.labels = labels
        self.obj = obj
        self.collected = None
        self.tag = tag
        self.live = live  # obj when it is a list, dict or set to check, else None
        self.snapshot = None  # live's items (a dict's items) when entered, once guarded


class _Context:
    """A digest being fed: the main one, or the sub-digest of one dict item / set element."""

    __slots__ = ("digest", "buf")

    def __init__(self, digest=None):
        self.digest = digest
        self.buf = bytearray()


def _short_repr(obj):
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _sortable_keys(keys):
    """Return `keys` sorted when all are exactly ``str`` or all exactly ``int``; else None."""
    if not keys:
        return keys
    kind = type(keys[0])
    if kind is not str and kind is not int:
        return None
    for key in keys:
        if type(key) is not kind:
            return None
    return sorted(keys)


class StreamHasher:
    """Feed the canonical encoding of objects into a digest.

    Parameters
    ----------
    new_digest : callable
        ``new_digest()`` returns a fresh digest object with ``update(buffer)``,
        ``copy()``, ``digest()``, ``hexdigest()`` and ``digest_size``.
    reduce_object : callable
        Policy callback for every type the kernel does not encode itself; see
        ``joblite.hashing``.
    max_depth : int, optional
        Most containers and reduced objects open at once in one ``update``.
    max_reductions : int, optional
        Most calls of `reduce_object` in one ``update``.
    """

    def __init__(self, new_digest, reduce_object, max_depth=MAX_DEPTH, max_reductions=MAX_REDUCTIONS):
        self._new_digest = new_digest
        self._reduce_object = reduce_object
        self._max_depth = max_depth
        self._max_reductions = max_reductions
        self._frames = None
        self._main = _Context(new_digest())
        self._main.buf += HEADER

    # -- public -----------------------------------------------------------------
    def update(self, obj, root="obj"):
        """Append the encoding of `obj`; on error the state is as before the call.

        Raises
        ------
        TypeError
            If some object inside `obj` cannot be hashed; the message names its
            type and its path, starting at `root`.
        RuntimeError
            If a list, dict or set inside `obj` changes while it is hashed, or
            if `update` is called again by code that this call runs.
        HashLimitError
            If `obj` is nested deeper than `max_depth` or needs more than
            `max_reductions` calls of the policy.
        """
        if self._frames is not None:
            raise RuntimeError(
                "update() was called while this hasher is already hashing an object "
                "(by code that hashing runs, or by another thread)"
            )
        main = self._main
        self._mark = len(main.buf)
        self._backup = None
        self._contexts = [main]
        try:
            self._walk(obj, root)
        except BaseException:
            if self._backup is not None:
                main.digest, main.buf = self._backup
            else:
                del main.buf[self._mark :]
            raise
        finally:
            self._contexts = None
            self._frames = None
            self._backup = None

    def digest(self):
        """The digest of everything fed so far, as bytes."""
        return self._final().digest()

    def hexdigest(self):
        """The digest of everything fed so far, as a hex string."""
        return self._final().hexdigest()

    def _final(self):
        digest = self._main.digest.copy()
        digest.update(self._main.buf)
        return digest

    # -- writing ----------------------------------------------------------------
    def _write(self, data):
        ctx = self._contexts[-1]
        ctx.buf += data
        if len(ctx.buf) >= BUFFER_SIZE:
            self._flush(ctx)

    def _flush(self, ctx):
        if ctx is self._main and self._backup is None:
            self._backup = (ctx.digest.copy(), bytearray(ctx.buf[: self._mark]))
        if ctx.digest is None:
            ctx.digest = self._new_digest()
        ctx.digest.update(ctx.buf)
        ctx.buf = bytearray()

    def _write_big(self, data):
        """Write a large buffer straight to the digest, not through the buffer."""
        ctx = self._contexts[-1]
        data = memoryview(data)
        if len(ctx.buf) + data.nbytes < BUFFER_SIZE:
            ctx.buf += data
            return
        self._flush(ctx)
        ctx.digest.update(data)

    def _write_str(self, tag, text):
        data = text.encode("utf-8", "surrogatepass")
        self._write(tag + _pack_u64(len(data)) + data)

    def _write_scalar(self, obj, kind):
        """Write `obj` if its type is a scalar the kernel encodes itself; return True if so."""
        if kind is str:
            self._write_str(b"s", obj)
        elif kind is int:
            if _INT64_MIN <= obj <= _INT64_MAX:
                self._write(b"i" + _pack_i64(obj))
            else:
                data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
                self._write(b"I" + _pack_u64(len(data)) + data)
        elif kind is float:
            self._write(b"f" + _pack_f64(obj))
        elif obj is None:
            self._write(b"N")
        elif kind is bool:
            self._write(b"T" if obj else b"F")
        elif kind is bytes:
            self._write(b"b" + _pack_u64(len(obj)) + obj)
        elif kind is bytearray:
            self._write(b"y" + _pack_u64(len(obj)) + obj)
        elif kind is complex:
            self._write(b"c" + _pack_c128(obj.real, obj.imag))
        else:
            return False
        return True

    # -- walking ----------------------------------------------------------------
    def _walk(self, root_obj, root):
        self._frames = frames = []
        self._open = {}
        self._root = root
        self._n_guarded = 0
        self._n_reduced = 0
        self._item(root_obj)
        while frames:
            frame = frames[-1]
            if frame.live is not None and len(frame.live) != frame.n:
                raise self._changed(frame)
            if frame.pos >= frame.n:
                self._close(frame)
                continue
            pos = frame.pos
            frame.pos = pos + 1
            kind = frame.kind
            if kind == _F_SORTED:
                key = frame.items[pos]
                self._write_scalar(key, type(key))
                self._item(frame.values[pos])
            elif kind == _F_UNORDERED:
                self._contexts.append(_Context())
                element = frame.items[pos]
                items = element if frame.tag == b"d" else (element,)
                frames.append(_Frame(_F_SUB, items, None))
            else:
                self._item(frame.items[pos])

    # -- containers changed by the code the walk runs ---------------------------
    def _guard(self):
        """Copy the items of every list, dict and set entered since the last call.

        Called before any code the walk runs; nothing can have changed these
        containers since they were entered, so the copies are what was entered.
        """
        frames = self._frames
        for index in range(self._n_guarded, len(frames)):
            frame = frames[index]
            live = frame.live
            if live is None:
                continue
            if type(live) is dict:
                frame.snapshot = tuple(live.items())
            else:
                frame.snapshot = tuple(live)
                if type(live) is list:
                    frame.items = frame.snapshot  # walk on over the items as they were
        self._n_guarded = len(frames)

    def _check_unchanged(self, frame):
        """Raise if a guarded container no longer holds what it held when entered."""
        live = frame.live
        if type(live) is dict:
            same = all(
                key is old_key and value is old_value
                for (key, value), (old_key, old_value) in zip(live.items(), frame.snapshot)
            )
        else:
            same = all(item is old for item, old in zip(live, frame.snapshot))
        if not same:
            raise self._changed(frame)

    def _changed(self, frame):
        """The error for the changed container of `frame`, the innermost frame."""
        live = frame.live
        path = "".join(self._path_parts(len(self._frames) - 1))
        if len(live) != frame.n:
            detail = f"{frame.n} items when entered, {len(live)} now"
        else:
            detail = "items replaced or reordered"
        return RuntimeError(f"{type(live).__name__} at {path} changed during hashing ({detail})")

    def _close(self, frame):
        if frame.snapshot is not None:
            self._check_unchanged(frame)
        self._frames.pop()
        if self._n_guarded > len(self._frames):
            self._n_guarded = len(self._frames)
        if frame.kind == _F_SUB:
            ctx = self._contexts.pop()
            if ctx.digest is None:
                ctx.digest = self._new_digest()
            ctx.digest.update(ctx.buf)
            self._frames[-1].collected.append(ctx.digest.digest())
            return
        if frame.kind == _F_UNORDERED:
            digests = frame.collected
            digests.sort()
            self._write(frame.tag + _pack_u64(len(digests)))
            for digest in digests:
                self._write(digest)
        del self._open[id(frame.obj)]

    def _push(self, kind, items, obj, labels=None, tag=None, live=None):
        if len(self._open) >= self._max_depth:
            raise self._limit_error(
                obj, "max_depth", self._max_depth, "nested deeper than max_depth={} containers and objects"
            )
        self._open[id(obj)] = len(self._open)
        frame = _Frame(kind, items, obj, labels, tag, live)
        self._frames.append(frame)
        return frame

    def _item(self, obj):
        kind = type(obj)
        if self._write_scalar(obj, kind):
            return
        depth = self._open.get(id(obj))
        if depth is not None:
            self._write(b"R" + _pack_u64(len(self._open) - depth))
            return
        if kind is list:
            self._write(b"l" + _pack_u64(len(obj)))
            self._push(_F_SEQ, obj, obj, live=obj)
        elif kind is tuple:
            self._write(b"t" + _pack_u64(len(obj)))
            self._push(_F_SEQ, obj, obj)
        elif kind is dict:
            keys = _sortable_keys(list(obj))
            if keys is not None:
                self._write(b"D" + _pack_u64(len(keys)))
                self._push(_F_SORTED, keys, obj, live=obj).values = [obj[key] for key in keys]
            else:
                self._push(_F_UNORDERED, list(obj.items()), obj, tag=b"d", live=obj).collected = []
        elif kind is set or kind is frozenset:
            sorted_tag, digest_tag = _SET_TAGS[kind]
            live = obj if kind is set else None
            elements = _sortable_keys(list(obj))
            if elements is not None:
                self._write(sorted_tag + _pack_u64(len(elements)))
                self._push(_F_SEQ, elements, obj, live=live)
            else:
                self._push(_F_UNORDERED, list(obj), obj, tag=digest_tag, live=live).collected = []
        else:
            self._reduced(obj)

    def _reduced(self, obj):
        self._n_reduced += 1
        if self._n_reduced > self._max_reductions:
            raise self._limit_error(
                obj,
                "max_reductions",
                self._max_reductions,
                "more than max_reductions={} objects to reduce (an object graph that unfolds without end?)",
            )
        self._guard()
        try:
            reduced = self._reduce_object(obj)
        except Exception as exc:
            raise TypeError(f"cannot hash object of type {type(obj).__qualname__!r} at {self._path()}: {exc}") from exc
        if reduced[0] == RECORD:
            _, name, components, labels = reduced
            self._write_str(b"O", name)
            self._write(_pack_u64(len(components)))
            self._push(_F_SEQ, components, obj, labels=labels)
        else:
            self._array(*reduced[1:])

    def _array(self, dtype_str, shape, nbytes, mode, data, dtype):
        header = bytearray()
        text = dtype_str.encode("utf-8", "surrogatepass")
        header += b"A" + _pack_u64(len(text)) + text + _pack_u64(len(shape))
        for dim in shape:
            header += _pack_u64(dim)
        header += _pack_u64(nbytes)
        self._write(header)
        if nbytes == 0:
            return
        if mode == DATA_BUFFER:
            self._write_big(data)
            return
        import numpy as np

        if mode == DATA_MASKED:
            values, mask = data
            check_masked(values, mask)
            if values.nbytes != nbytes or mask.nbytes != values.size:
                raise ValueError(
                    f"masked values of {values.nbytes} bytes ({values.size} items, mask of "
                    f"{mask.nbytes} bytes) described as {nbytes} bytes"
                )
            self._write_big(zero_masked(values, mask).reshape(-1).view(np.uint8))
            return

        if mode == DATA_STRIDED and self._gather_transposed(np, data):
            return
        itemsize = dtype.itemsize
        chunks = np.nditer(
            data,
            flags=["external_loop", "buffered", "zerosize_ok", "refs_ok"],
            op_dtypes=[dtype],
            casting="unsafe",
            buffersize=max(1, CHUNK_SIZE // itemsize),
            order="C",
        )
        for chunk in chunks:
            self._write_big(np.ascontiguousarray(chunk).view(np.uint8))

    def _gather_transposed(self, np, array):
        """Stream `array` in C order by tiles if its rows are closer than its items.

        numpy copies such an array (F order, transposed views) item by item
        along the destination's rows, a cache line read for each item; copied
        by tiles of whole source lines it runs many times faster.  Returns
        False, having written nothing, for any other layout or for rows
        longer than ``CHUNK_SIZE`` (the extra memory stays within a chunk).
        """
        shape, strides = _simplified(array.shape, array.strides)
        if len(shape) < 2 or abs(strides[-2]) >= abs(strides[-1]) or shape[-1] * array.itemsize > CHUNK_SIZE:
            return False  # (rows longer than a chunk: nditer's bounded buffer)
        from numpy.lib.stride_tricks import as_strided

        view = as_strided(array, shape, strides, writeable=False)  # a view: the dims merge exactly
        rows, cols = shape[-2:]
        itemsize = array.itemsize
        block = max(1, CHUNK_SIZE // (cols * itemsize))  # rows of a chunk
        tile = max(16, _TILE_BYTES // (min(block, rows) * itemsize))  # columns of a tile
        out = np.empty((min(block, rows), cols), array.dtype)
        for index in np.ndindex(*shape[:-2]):
            slab = view[index]
            for i in range(0, rows, block):
                part = slab[i : i + block]
                chunk = out[: len(part)]
                for j in range(0, cols, tile):
                    chunk[:, j : j + tile] = part[:, j : j + tile]
                self._write_big(chunk.reshape(-1).view(np.uint8))
        return True

    # -- error paths ------------------------------------------------------------
    def _limit_error(self, obj, limit, value, reason):
        parts = self._path_parts(len(self._frames))
        shown = parts
        if len(parts) > 2 * _PATH_ENDS + 1:
            hidden = len(parts) - 2 * _PATH_ENDS
            shown = parts[:_PATH_ENDS] + [f"<...{hidden} steps...>"] + parts[-_PATH_ENDS:]
        return HashLimitError(
            f"cannot hash object of type {type(obj).__qualname__!r} at {''.join(shown)}: "
            f"{reason.format(value)}; pass a larger {limit} to hash it",
            "".join(parts),
            limit,
            value,
        )

    def _path(self):
        return "".join(self._path_parts(len(self._frames)))

    def _path_parts(self, depth):
        """The steps of the path to the item the first `depth` frames are at."""
        parts = [self._root]
        frames = self._frames
        for index in range(depth):
            frame = frames[index]
            pos = frame.pos - 1
            if frame.kind == _F_SEQ:
                if frame.labels is not None:
                    parts.append(frame.labels[pos])
                elif type(frame.obj) in (set, frozenset):
                    parts.append(f"{{{_short_repr(frame.items[pos])}}}")
                else:
                    parts.append(f"[{pos}]")
            elif frame.kind == _F_SORTED:
                parts.append(f"[{_short_repr(frame.items[pos])}]")
            elif frame.kind == _F_SUB:
                parent = frames[index - 1]
                if parent.tag == b"d":
                    key = frame.items[0]
                    label = f"[{_short_repr(key)}]"
                    parts.append(label if pos == 1 else f"<key {_short_repr(key)}>")
                else:
                    parts.append(f"{{{_short_repr(frame.items[0])}}}")
        return parts
