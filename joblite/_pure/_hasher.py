"""Pure-Python twin of ``joblite._ext._hasher``: the canonical hash stream.

The encoder walks an object graph iteratively (an explicit stack of frames, so
deep nesting never recurses) and writes the canonical byte stream of
``docs/format_hashing.rst`` into a digest through a bounded buffer.  Types it
does not know are handed to a policy callback, ``reduce_object``, which
returns a canonical *record* or *array* description (see
``joblite.hashing``).  The compiled twin produces the same stream byte for byte.
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


class _Frame:
    __slots__ = ("kind", "items", "pos", "n", "labels", "obj", "collected", "tag")

    def __init__(self, kind, items, obj, labels=None, tag=None):
        self.kind = kind
        self.items = items
        self.pos = 0
        self.n = len(items)
        self.labels = labels
        self.obj = obj
        self.collected = None
        self.tag = tag


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
    """

    def __init__(self, new_digest, reduce_object):
        self._new_digest = new_digest
        self._reduce_object = reduce_object
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
        """
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
                del main.buf[self._mark:]
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
        self._item(root_obj)
        while frames:
            frame = frames[-1]
            if frame.pos >= frame.n:
                self._close(frame)
                continue
            pos = frame.pos
            frame.pos = pos + 1
            kind = frame.kind
            if kind == _F_SORTED:
                key = frame.items[pos]
                self._write_scalar(key, type(key))
                self._item(frame.obj[key])
            elif kind == _F_UNORDERED:
                self._contexts.append(_Context())
                element = frame.items[pos]
                items = element if frame.tag == b"d" else (element,)
                frames.append(_Frame(_F_SUB, items, None))
            else:
                if kind == _F_SEQ and frame.n != len(frame.items):
                    raise RuntimeError(f"{self._path()}: container changed size during hashing")
                self._item(frame.items[pos])

    def _close(self, frame):
        self._frames.pop()
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

    def _push(self, kind, items, obj, labels=None, tag=None):
        self._open[id(obj)] = len(self._open)
        frame = _Frame(kind, items, obj, labels, tag)
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
        if kind is list or kind is tuple:
            self._write((b"l" if kind is list else b"t") + _pack_u64(len(obj)))
            self._push(_F_SEQ, obj, obj)
        elif kind is dict:
            keys = _sortable_keys(list(obj))
            if keys is not None:
                self._write(b"D" + _pack_u64(len(keys)))
                self._push(_F_SORTED, keys, obj)
            else:
                self._push(_F_UNORDERED, list(obj.items()), obj, tag=b"d").collected = []
        elif kind is set or kind is frozenset:
            sorted_tag, digest_tag = _SET_TAGS[kind]
            elements = _sortable_keys(list(obj))
            if elements is not None:
                self._write(sorted_tag + _pack_u64(len(elements)))
                self._push(_F_SEQ, elements, obj)
            else:
                self._push(_F_UNORDERED, list(obj), obj, tag=digest_tag).collected = []
        else:
            self._reduced(obj)

    def _reduced(self, obj):
        try:
            reduced = self._reduce_object(obj)
        except Exception as exc:
            raise TypeError(
                f"cannot hash object of type {type(obj).__qualname__!r} at {self._path()}: {exc}"
            ) from exc
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

    # -- error paths ------------------------------------------------------------
    def _path(self):
        parts = [self._root]
        frames = self._frames
        for index, frame in enumerate(frames):
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
        return "".join(parts)
