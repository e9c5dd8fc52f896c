"""Compiled twin of ``joblite._pure._hasher``: the canonical hash stream.

Same names, results and exceptions as the pure twin.  The object graph is
walked iteratively in C (an explicit stack of frames); scalars are written
straight into a fixed-size buffer that is fed to the digest when full; array
buffers go to the digest without copies, and non-contiguous arrays are
gathered in bounded chunks by a cache-blocked copy that runs without the GIL.

Whatever the walk uses while Python code can run (the policy and what it
calls, a digest's ``update`` that releases the GIL, the garbage collector) is
held by a strong reference: an item of a live ``list`` is read into a local
(a float's or int's value is read before anything can run), everything else
comes from tuples and from copies that the frames own; a ``bytearray`` is
read through an exported buffer, which cannot be resized.  Lists, dicts and
sets are guarded against changes as in the pure twin (see its docstring).

One module of about a thousand lines, because the walker, its sort of ``str``
keys and its gather of non-contiguous arrays are one hot loop: Cython inlines
``cdef`` functions only within a module, and a split would put calls through
exported pointers where the loop now has none (the policy, which is not hot,
is :mod:`joblite._hash_policy`).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.complex cimport PyComplex_ImagAsDouble, PyComplex_RealAsDouble
from cpython.dict cimport PyDict_Keys, PyDict_Next, PyDict_Size, PyDict_Values
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_AsTuple, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) noexcept
    int PyList_Sort(object lst) except -1
    void PyErr_Clear()
    int PyBUF_READ
    # Borrowed-pointer forms of the macros: no reference counting in the hot loop.
    Py_ssize_t list_size "PyList_GET_SIZE"(PyObject *lst) noexcept
    PyObject *list_item "PyList_GET_ITEM"(PyObject *lst, Py_ssize_t i) noexcept
    double float_value "PyFloat_AS_DOUBLE"(PyObject *f) noexcept
    long long long_value "PyLong_AsLongLongAndOverflow"(PyObject *n, int *overflow) noexcept
    PyObject *type_of "Py_TYPE"(PyObject *o) noexcept

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define JOBLITE_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define JOBLITE_PREFETCH(p) ((void)0)
    #endif

    /* Where the current size of an exact list, dict or set is stored. */
    static Py_ssize_t *joblite_size_field(PyObject *o) {
        if (PyList_CheckExact(o)) return &((PyVarObject *)o)->ob_size;
        if (PyDict_CheckExact(o)) return &((PyDictObject *)o)->ma_used;
        return &((PySetObject *)o)->used;
    }
    """
    void prefetch "JOBLITE_PREFETCH"(const void *p) noexcept nogil
    Py_ssize_t *size_field "joblite_size_field"(PyObject *o) noexcept

# One exception class for both twins, so that an ``except`` sees the same one.
from joblite._pure._hasher import HashLimitError

FORMAT_VERSION = 1
MAX_DEPTH = 100_000
MAX_REDUCTIONS = 10_000_000
HEADER = b"JLH\x01"
BUFFER_SIZE = 1 << 16
CHUNK_SIZE = 1 << 20

RECORD = 0
ARRAY = 1
DATA_BUFFER = 0
DATA_STRIDED = 1
DATA_CAST = 2

DEF C_BUFFER_SIZE = 65536
DEF C_CHUNK_SIZE = 2097152   # gather scratch; measured best for 8-byte transposes here
DEF ROW_PAD = 64             # bytes between long gathered rows: no cache-set aliasing
DEF DIRECT_ROW = 4096        # contiguous rows this long go to the digest uncopied
DEF TILE_COLS = 8
DEF PREFETCH_AHEAD = 8
DEF BIG_WRITE = 16384
DEF LINEAR_SCAN = 64
DEF PATH_ENDS = 12           # steps of a path shown at each end of a HashLimitError message

cdef enum FrameKind:
    F_SEQ = 0
    F_SORTED = 1
    F_UNORDERED = 2
    F_SUB = 3
    F_STR_TABLE = 4


cdef class _Frame:
    cdef int kind
    cdef object items
    cdef Py_ssize_t pos
    cdef Py_ssize_t n
    cdef object labels
    cdef object obj
    cdef list collected
    cdef list values
    cdef _StrTable table
    cdef bytes tag
    cdef bint is_list        # items is a list, maybe obj itself: items are read into strong references
    cdef Py_ssize_t *size    # size field of obj when it is a list, dict or set to check; else &n
    cdef object snapshot     # obj's items (a dict's keys and values) when entered, once guarded


cdef class _Context:
    cdef Py_ssize_t start
    cdef object digest


cdef inline void put_u64(uint8_t *p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <uint8_t>(v >> (8 * i))


cdef inline uint64_t double_bits(double x) noexcept nogil:
    cdef uint64_t bits
    memcpy(&bits, &x, 8)
    return bits


def _short_repr(obj):
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__}>"
    return text if len(text) <= 40 else text[:37] + "..."


cdef struct StrKey:
    uint64_t prefix              # first 8 bytes, big-endian: most comparisons stay in the array
    const unsigned char *data
    Py_ssize_t size
    PyObject *key                # borrowed: the table keeps the lists alive
    PyObject *value


cdef int compare_from(const StrKey *a, const StrKey *b, Py_ssize_t depth) noexcept nogil:
    """Order of two UTF-8 strings known to be equal in their first `depth` bytes."""
    if a.prefix != b.prefix:
        return -1 if a.prefix < b.prefix else 1
    cdef Py_ssize_t n = min(a.size, b.size) - depth
    cdef int c = memcmp(a.data + depth, b.data + depth, n) if n > 0 else 0
    if c != 0:
        return c
    return (a.size > b.size) - (a.size < b.size)


cdef int compare_keys(const void *a, const void *b) noexcept nogil:
    return compare_from(<const StrKey *>a, <const StrKey *>b, 0)


cdef inline int byte_at(const StrKey *key, Py_ssize_t depth) noexcept nogil:
    if depth >= key.size:
        return -1
    if depth < 8:
        return <int>((key.prefix >> (56 - 8 * depth)) & 0xFF)
    return key.data[depth]


cdef inline void swap_keys(StrKey *a, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef StrKey tmp = a[i]
    a[i] = a[j]
    a[j] = tmp


cdef void sort_utf8(StrKey *a, Py_ssize_t n, Py_ssize_t depth) noexcept nogil:
    """Sort distinct UTF-8 strings bytewise, which is code point order.

    Multikey quicksort (Bentley and Sedgewick, "Fast algorithms for sorting and
    searching strings", SODA 1997): three-way partitions on the byte at
    `depth`, so common prefixes are compared once.  Past a depth of 64 it
    hands over to qsort, which bounds the recursion.
    """
    cdef Py_ssize_t i, j, lt, gt
    cdef int pivot, c
    while n > 1:
        if n < 12:
            for i in range(1, n):
                j = i
                while j > 0 and compare_from(&a[j - 1], &a[j], depth) > 0:
                    swap_keys(a, j - 1, j)
                    j -= 1
            return
        if depth > 64:
            qsort(a, n, sizeof(StrKey), compare_keys)
            return
        swap_keys(a, 0, n // 2)
        pivot = byte_at(&a[0], depth)
        lt = 0
        gt = n - 1
        i = 1
        while i <= gt:
            c = byte_at(&a[i], depth)
            if c < pivot:
                swap_keys(a, lt, i)
                lt += 1
                i += 1
            elif c > pivot:
                swap_keys(a, i, gt)
                gt -= 1
            else:
                i += 1
        sort_utf8(a, lt, depth)
        if pivot >= 0:
            sort_utf8(a + lt, gt - lt + 1, depth + 1)
        a += gt + 1
        n -= gt + 1


cdef class _StrTable:
    """Str keys (and their values) sorted by UTF-8 bytes, which is code point order."""
    cdef StrKey *entries
    cdef Py_ssize_t n
    cdef list keys
    cdef list values

    def __dealloc__(self):
        PyMem_Free(self.entries)


cdef _StrTable _str_table(list keys, list values):
    """Sorted table of `keys` (all exactly str) and `values`; None if a key has no UTF-8 form."""
    cdef Py_ssize_t i, j, n = PyList_GET_SIZE(keys)
    cdef const char *data
    cdef StrKey *entry
    cdef _StrTable table = _StrTable()
    table.keys = keys
    table.values = values
    table.n = n
    table.entries = <StrKey *>PyMem_Malloc(max(n, 1) * sizeof(StrKey))
    if table.entries == NULL:
        raise MemoryError()
    for i in range(n):
        entry = &table.entries[i]
        entry.key = PyList_GET_ITEM(keys, i)
        entry.value = NULL if values is None else PyList_GET_ITEM(values, i)
        data = PyUnicode_AsUTF8AndSize(<object>entry.key, &entry.size)
        if data == NULL:
            PyErr_Clear()  # lone surrogates: leave the ordering to Python
            return None
        entry.data = <const unsigned char *>data
        entry.prefix = 0
        for j in range(min(entry.size, 8)):
            entry.prefix |= (<uint64_t>entry.data[j]) << (56 - 8 * j)
    with nogil:
        sort_utf8(table.entries, n, 0)
    return table


cdef object _sorted_keys(list keys, list values):
    """Keys (and values) in key order when all keys are exactly str or all exactly int.

    Returns a `_StrTable` for str keys, a ``(keys, values)`` pair of lists for
    int keys (and str keys with lone surrogates), or None for any other mix.
    `values` is None for sets.
    """
    cdef Py_ssize_t i, n = PyList_GET_SIZE(keys)
    if n == 0:
        return keys, values
    cdef type kind = type(<object>PyList_GET_ITEM(keys, 0))
    if kind is not str and kind is not int:
        return None
    for i in range(1, n):
        if type(<object>PyList_GET_ITEM(keys, i)) is not kind:
            return None
    if kind is str:
        table = _str_table(keys, values)
        if table is not None:
            return table
    if values is None:
        PyList_Sort(keys)
        return keys, None
    pairs = sorted(zip(keys, values))  # keys are distinct: values are never compared
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs]


# -- strided gather: C-order bytes of an arbitrary-strided array, in chunks ---------
cdef struct Gather:
    char *base
    int ndim             # number of outer dimensions (all but the last two)
    Py_ssize_t outer_shape[64]
    Py_ssize_t outer_strides[64]
    Py_ssize_t outer_index[64]
    Py_ssize_t rows, cols, row_stride, col_stride, itemsize
    Py_ssize_t row          # next row of the current slab
    Py_ssize_t col          # next column of the current row (rows longer than a chunk)
    bint done


cdef struct Item16:
    uint64_t lo, hi

ctypedef fused item_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t
    Item16


cdef void tile_rows(item_t *kind, char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                    Py_ssize_t cols, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil:
    """k rows of `cols` items at `src` to `dst` (rows `pitch` bytes apart), by column tiles.

    Reading a few columns at a time keeps the source lines in cache while every
    destination row is written; `pitch` is padded by the caller so that the
    destination rows do not fall into the same cache sets.
    """
    cdef Py_ssize_t i, j, j0, j1
    for j0 in range(0, cols, TILE_COLS):
        j1 = min(j0 + TILE_COLS, cols)
        for j in range(j0, j1):
            for i in range(k):
                (<item_t *>(dst + i * pitch))[j] = (<const item_t *>(src + i * rs + j * cs))[0]


cdef void copy_rows(const Gather *g, char *dst, Py_ssize_t pitch, const char *src,
                    Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i, j, size = g.itemsize, rs = g.row_stride, cs = g.col_stride
    if cs == size:
        for i in range(k):
            memcpy(dst + i * pitch, src + i * rs, g.cols * size)
    elif size == 8:
        tile_rows(<uint64_t *>NULL, dst, pitch, src, k, g.cols, rs, cs)
    elif size == 4:
        tile_rows(<uint32_t *>NULL, dst, pitch, src, k, g.cols, rs, cs)
    elif size == 2:
        tile_rows(<uint16_t *>NULL, dst, pitch, src, k, g.cols, rs, cs)
    elif size == 1:
        tile_rows(<uint8_t *>NULL, dst, pitch, src, k, g.cols, rs, cs)
    elif size == 16:
        tile_rows(<Item16 *>NULL, dst, pitch, src, k, g.cols, rs, cs)
    else:
        for j in range(g.cols):
            for i in range(k):
                memcpy(dst + i * pitch + j * size, src + i * rs + j * cs, size)


cdef inline const char *slab_start(const Gather *g) noexcept nogil:
    cdef const char *slab = g.base
    cdef int d
    for d in range(g.ndim):
        slab += g.outer_index[d] * g.outer_strides[d]
    return slab


cdef void next_row(Gather *g) noexcept nogil:
    cdef int d
    g.row += 1
    if g.row < g.rows:
        return
    g.row = 0
    for d in range(g.ndim - 1, -1, -1):
        g.outer_index[d] += 1
        if g.outer_index[d] < g.outer_shape[d]:
            return
        g.outer_index[d] = 0
    g.done = True


cdef Py_ssize_t fill_rows(Gather *g, char *dst, Py_ssize_t pitch, Py_ssize_t max_rows) noexcept nogil:
    """Copy up to `max_rows` whole rows, `pitch` bytes apart, into `dst`; return how many."""
    cdef Py_ssize_t filled = 0, k
    while not g.done and filled < max_rows:
        k = min(g.rows - g.row, max_rows - filled)
        copy_rows(g, dst + filled * pitch, pitch, slab_start(g) + g.row * g.row_stride, k)
        filled += k
        g.row += k - 1
        next_row(g)
    return filled


cdef Py_ssize_t fill_segment(Gather *g, char *dst, Py_ssize_t capacity) noexcept nogil:
    """Copy the next part of a row longer than `capacity` bytes; return its length in bytes."""
    cdef Py_ssize_t n = min(g.cols - g.col, capacity // g.itemsize), j
    cdef const char *src = slab_start(g) + g.row * g.row_stride + g.col * g.col_stride
    for j in range(n):
        memcpy(dst + j * g.itemsize, src + j * g.col_stride, g.itemsize)
    g.col += n
    if g.col == g.cols:
        g.col = 0
        next_row(g)
    return n * g.itemsize


cdef class StreamHasher:
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

    cdef object new_digest
    cdef object reduce_object
    cdef uint8_t *buf
    cdef Py_ssize_t pos
    cdef Py_ssize_t mark
    cdef list contexts
    cdef _Context top
    cdef object backup
    cdef list frames
    cdef PyObject **open_objs
    cdef Py_ssize_t n_open
    cdef Py_ssize_t cap_open
    cdef dict open_map
    cdef char *chunk
    cdef str root
    cdef Py_ssize_t max_depth
    cdef Py_ssize_t max_reductions
    cdef Py_ssize_t n_reduced
    cdef Py_ssize_t n_guarded    # frames[:n_guarded] are guarded

    def __cinit__(self):
        self.buf = <uint8_t *>PyMem_Malloc(C_BUFFER_SIZE)
        self.cap_open = 64
        self.open_objs = <PyObject **>PyMem_Malloc(self.cap_open * sizeof(PyObject *))
        if self.buf == NULL or self.open_objs == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.buf)
        PyMem_Free(self.open_objs)
        PyMem_Free(self.chunk)

    def __init__(self, new_digest, reduce_object, Py_ssize_t max_depth=MAX_DEPTH,
                 Py_ssize_t max_reductions=MAX_REDUCTIONS):
        self.new_digest = new_digest
        self.reduce_object = reduce_object
        self.max_depth = max_depth
        self.max_reductions = max_reductions
        main = _Context()
        main.start = 0
        main.digest = new_digest()
        self.contexts = [main]
        self.top = main
        memcpy(self.buf, b"JLH\x01", 4)
        self.pos = 4

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
        if self.frames is not None:
            raise RuntimeError("update() was called while this hasher is already hashing an object "
                               "(by code that hashing runs, or by another thread)")
        cdef _Context main = self.contexts[0]
        self.mark = self.pos
        self.backup = None
        self.root = root
        self.frames = []
        self.n_open = 0
        self.open_map = {}
        self.n_reduced = 0
        self.n_guarded = 0
        try:
            self._walk(obj)
        except BaseException:
            del self.contexts[1:]
            self.top = main
            if self.backup is not None:
                main.digest, prefix = self.backup
                memcpy(self.buf, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix))
                self.pos = PyBytes_GET_SIZE(prefix)
            else:
                self.pos = self.mark
            raise
        finally:
            self.frames = None
            self.open_map = None
            self.n_open = 0
            self.backup = None

    def digest(self):
        """The digest of everything fed so far, as bytes."""
        return self._final().digest()

    def hexdigest(self):
        """The digest of everything fed so far, as a hex string."""
        return self._final().hexdigest()

    cdef object _final(self):
        cdef _Context main = self.contexts[0]
        digest = main.digest.copy()
        digest.update(PyMemoryView_FromMemory(<char *>self.buf, self.pos, PyBUF_READ))
        return digest

    # -- writing ----------------------------------------------------------------
    cdef int _flush(self) except -1:
        """Feed the innermost context's buffered bytes to its digest."""
        cdef _Context ctx = self.top
        if ctx.digest is None:
            ctx.digest = self.new_digest()
        elif len(self.contexts) == 1 and self.backup is None:
            self.backup = (ctx.digest.copy(), PyBytes_FromStringAndSize(<char *>self.buf, self.mark))
        ctx.digest.update(PyMemoryView_FromMemory(<char *>self.buf + ctx.start,
                                                  self.pos - ctx.start, PyBUF_READ))
        self.pos = ctx.start
        return 0

    cdef inline uint8_t *_reserve(self, Py_ssize_t n) except NULL:
        # n is at most BIG_WRITE, and a context starts in the first half of the buffer.
        if self.pos + n > C_BUFFER_SIZE:
            self._flush()
        cdef uint8_t *p = self.buf + self.pos
        self.pos += n
        return p

    cdef int _write_tag_u64(self, char tag, uint64_t value) except -1:
        cdef uint8_t *p = self._reserve(9)
        p[0] = tag
        put_u64(p + 1, value)
        return 0

    cdef int _write_data(self, const char *data, Py_ssize_t n, object owner) except -1:
        """Write `n` bytes at `data` (kept alive by `owner`), big ones straight to the digest."""
        if n <= BIG_WRITE:
            memcpy(self._reserve(n), data, n)
            return 0
        self._flush()
        self.top.digest.update(PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ))
        return 0

    cdef int _write_str(self, char tag, str text) except -1:
        cdef Py_ssize_t n
        cdef const char *data = PyUnicode_AsUTF8AndSize(text, &n)  # cached UTF-8 of the str
        if data == NULL:
            # Lone surrogates have no strict UTF-8 form; the format uses 'surrogatepass'.
            PyErr_Clear()
            encoded = text.encode("utf-8", "surrogatepass")
            self._write_tag_u64(tag, PyBytes_GET_SIZE(encoded))
            return self._write_data(PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded), encoded)
        self._write_tag_u64(tag, n)
        return self._write_data(data, n, text)

    cdef int _write_big_int(self, object value) except -1:
        data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        self._write_tag_u64(b"I", PyBytes_GET_SIZE(data))
        self._write_data(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), data)
        return 0

    cdef inline int _write_number(self, PyObject *obj) except -1:
        """Write `obj` if it is a float or an int in i64 range; return 1 if so.

        `obj` may be a borrowed reference: its value is read before anything
        that could run Python code (a flush).
        """
        cdef int overflow
        cdef long long value
        cdef PyObject *kind = type_of(obj)
        if kind == <PyObject *>float:
            self._write_tag_u64(b"f", double_bits(float_value(obj)))
            return 1
        if kind == <PyObject *>int:
            value = long_value(obj, &overflow)
            if not overflow:
                self._write_tag_u64(b"i", <uint64_t>value)
                return 1
        return 0

    cdef int _write_bytearray(self, object obj) except -1:
        # An exported buffer cannot be resized by another thread while a flush
        # (a digest update) has released the GIL.
        cdef Py_buffer view
        PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE)
        try:
            self._write_tag_u64(b"y", view.len)
            self._write_data(<const char *>view.buf, view.len, obj)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int _write_scalar(self, object obj) except -1:
        """Write `obj` if its type is a scalar the kernel encodes itself; return 1 if so."""
        cdef type kind = type(obj)
        cdef uint8_t *p
        cdef int overflow
        cdef long long value
        cdef Py_ssize_t n
        if kind is str:
            self._write_str(b"s", obj)
        elif kind is int:
            value = PyLong_AsLongLongAndOverflow(obj, &overflow)
            if overflow:
                self._write_big_int(obj)
            else:
                self._write_tag_u64(b"i", <uint64_t>value)
        elif kind is float:
            self._write_tag_u64(b"f", double_bits(PyFloat_AS_DOUBLE(obj)))
        elif obj is None:
            self._reserve(1)[0] = b"N"
        elif kind is bool:
            self._reserve(1)[0] = b"T" if obj is True else b"F"
        elif kind is bytes:
            n = PyBytes_GET_SIZE(obj)
            self._write_tag_u64(b"b", n)
            self._write_data(PyBytes_AS_STRING(obj), n, obj)
        elif kind is bytearray:
            self._write_bytearray(obj)
        elif kind is complex:
            p = self._reserve(17)
            p[0] = b"c"
            put_u64(p + 1, double_bits(PyComplex_RealAsDouble(obj)))
            put_u64(p + 9, double_bits(PyComplex_ImagAsDouble(obj)))
        else:
            return 0
        return 1

    # -- walking ----------------------------------------------------------------
    cdef int _walk(self, object root_obj) except -1:
        cdef list frames = self.frames
        cdef _Frame frame
        cdef Py_ssize_t pos
        cdef PyObject *found
        cdef object item
        self._item(root_obj)
        while PyList_GET_SIZE(frames):
            frame = <_Frame>PyList_GET_ITEM(frames, PyList_GET_SIZE(frames) - 1)
            if frame.size[0] != frame.n:
                raise self._changed(frame)
            if frame.pos >= frame.n:
                self._close(frame)
                continue
            pos = frame.pos
            frame.pos = pos + 1
            if frame.kind == F_SEQ:
                if frame.is_list:
                    found = list_item(<PyObject *>frame.items, pos)
                    if not self._write_number(found):
                        # A strong reference: code run for this item may drop the list's.
                        item = <object>found
                        self._item(item)
                else:
                    self._item(<object>PyTuple_GET_ITEM(frame.items, pos))
            elif frame.kind == F_SORTED:
                # Sorted order visits objects at random addresses: fetch ahead.
                if pos + PREFETCH_AHEAD < frame.n:
                    prefetch(PyList_GET_ITEM(frame.items, pos + PREFETCH_AHEAD))
                    prefetch(PyList_GET_ITEM(frame.values, pos + PREFETCH_AHEAD))
                self._write_scalar(<object>PyList_GET_ITEM(frame.items, pos))
                self._item(<object>PyList_GET_ITEM(frame.values, pos))
            elif frame.kind == F_STR_TABLE:
                self._table_entry(frame.table, pos)
            elif frame.kind == F_UNORDERED:
                self._open_context()
                element = <object>PyList_GET_ITEM(frame.items, pos)
                sub = _Frame()
                sub.kind = F_SUB
                sub.size = &sub.n
                sub.items = element if frame.tag == b"d" else (element,)
                sub.n = PyTuple_GET_SIZE(sub.items)
                frames.append(sub)
            else:  # F_SUB
                self._item(<object>PyTuple_GET_ITEM(frame.items, pos))
        return 0

    cdef int _open_context(self) except -1:
        if self.pos > C_BUFFER_SIZE // 2:
            self._flush()
        ctx = _Context()
        ctx.start = self.pos
        self.contexts.append(ctx)
        self.top = ctx
        return 0

    # -- containers changed by the code the walk runs ---------------------------
    cdef int _guard(self) except -1:
        """Copy the items of every list, dict and set entered since the last call.

        Called before any code the walk runs; nothing can have changed these
        containers since they were entered, so the copies are what was entered.
        """
        cdef list frames = self.frames
        cdef Py_ssize_t index, n = PyList_GET_SIZE(frames)
        cdef _Frame frame
        for index in range(self.n_guarded, n):
            frame = <_Frame>PyList_GET_ITEM(frames, index)
            if frame.size == &frame.n:
                continue
            kind = type(frame.obj)
            if kind is list:
                frame.snapshot = PyList_AsTuple(frame.obj)
                frame.items = frame.snapshot  # walk on over the items as they were
                frame.is_list = False
            elif kind is dict:
                frame.snapshot = (PyDict_Keys(frame.obj), PyDict_Values(frame.obj))
            else:
                frame.snapshot = tuple(frame.obj)
        self.n_guarded = n
        return 0

    cdef int _check_unchanged(self, _Frame frame) except -1:
        """Raise if a guarded container no longer holds what it held when entered.

        Only identities are compared: no Python code runs.  The sizes are
        known to be equal.
        """
        cdef Py_ssize_t i = 0, pos = 0
        cdef PyObject *key
        cdef PyObject *value
        cdef list keys, values
        cdef tuple items
        if type(frame.obj) is dict:
            keys, values = frame.snapshot
            while PyDict_Next(frame.obj, &pos, &key, &value):
                if key != PyList_GET_ITEM(keys, i) or value != PyList_GET_ITEM(values, i):
                    raise self._changed(frame)
                i += 1
            return 0
        items = frame.snapshot
        if type(frame.obj) is list:
            for i in range(PyTuple_GET_SIZE(items)):
                if PyList_GET_ITEM(frame.obj, i) != PyTuple_GET_ITEM(items, i):
                    raise self._changed(frame)
            return 0
        for element in frame.obj:
            if <PyObject *>element != PyTuple_GET_ITEM(items, i):
                raise self._changed(frame)
            i += 1
        return 0

    cdef object _changed(self, _Frame frame):
        """The error for the changed container of `frame`, the innermost frame."""
        live = frame.obj
        path = "".join(self._path_parts(len(self.frames) - 1))
        if len(live) != frame.n:
            detail = f"{frame.n} items when entered, {len(live)} now"
        else:
            detail = "items replaced or reordered"
        return RuntimeError(f"{type(live).__name__} at {path} changed during hashing ({detail})")

    cdef int _close(self, _Frame frame) except -1:
        cdef _Context ctx
        cdef _Frame parent
        cdef Py_ssize_t i, size
        if frame.snapshot is not None:
            self._check_unchanged(frame)
        self.frames.pop()
        if self.n_guarded > list_size(<PyObject *>self.frames):
            self.n_guarded = list_size(<PyObject *>self.frames)
        if frame.kind == F_SUB:
            ctx = self.top
            if ctx.digest is None:
                ctx.digest = self.new_digest()
            ctx.digest.update(PyMemoryView_FromMemory(<char *>self.buf + ctx.start,
                                                      self.pos - ctx.start, PyBUF_READ))
            self.pos = ctx.start
            self.contexts.pop()
            self.top = self.contexts[len(self.contexts) - 1]
            parent = self.frames[len(self.frames) - 1]
            parent.collected.append(ctx.digest.digest())
            return 0
        if frame.kind == F_UNORDERED:
            digests = frame.collected
            digests.sort()
            self._write_tag_u64((<bytes>frame.tag)[0], len(digests))
            for digest in digests:
                self._write_data(PyBytes_AS_STRING(digest), PyBytes_GET_SIZE(digest), digest)
        self.n_open -= 1
        if self.n_open >= LINEAR_SCAN:
            del self.open_map[<Py_ssize_t><void *>frame.obj]
        return 0

    cdef _Frame _push(self, int kind, object items, object obj, object labels, bytes tag, bint live):
        """Open `obj`; `live`: it is a list, dict or set whose changes are checked."""
        cdef _Frame frame = _Frame()
        cdef PyObject **grown
        if self.n_open >= self.max_depth:
            raise self._limit_error(
                obj, "max_depth", self.max_depth, "nested deeper than max_depth={} containers and objects")
        if self.n_open == self.cap_open:
            grown = <PyObject **>PyMem_Malloc(2 * self.cap_open * sizeof(PyObject *))
            if grown == NULL:
                raise MemoryError()
            memcpy(grown, self.open_objs, self.cap_open * sizeof(PyObject *))
            PyMem_Free(self.open_objs)
            self.open_objs = grown
            self.cap_open *= 2
        if self.n_open >= LINEAR_SCAN:
            self.open_map[<Py_ssize_t><void *>obj] = self.n_open
        self.open_objs[self.n_open] = <PyObject *>obj
        self.n_open += 1
        frame.kind = kind
        frame.items = items
        frame.n = len(items)
        frame.is_list = type(items) is list
        frame.size = size_field(<PyObject *>obj) if live else &frame.n
        frame.labels = labels
        frame.obj = obj
        frame.tag = tag
        self.frames.append(frame)
        return frame

    cdef int _push_sorted(self, object ordered, object obj, bint live) except -1:
        """Walk a dict's items or a set's elements in the order `_sorted_keys` gave."""
        cdef _Frame frame
        if type(ordered) is _StrTable:
            frame = self._push(F_STR_TABLE, (<_StrTable>ordered).keys, obj, None, None, live)
            frame.table = ordered
        elif ordered[1] is None:
            self._push(F_SEQ, ordered[0], obj, None, None, live)
        else:
            self._push(F_SORTED, ordered[0], obj, None, None, live).values = ordered[1]
        return 0

    cdef int _table_entry(self, _StrTable table, Py_ssize_t pos) except -1:
        cdef StrKey *entry = &table.entries[pos]
        cdef StrKey *ahead
        if pos + PREFETCH_AHEAD < table.n:
            # Sorted order visits objects at random addresses: fetch ahead.
            ahead = &table.entries[pos + PREFETCH_AHEAD]
            prefetch(ahead.data)
            prefetch(ahead.value)
        self._write_tag_u64(b"s", entry.size)
        self._write_data(<const char *>entry.data, entry.size, None)
        if entry.value != NULL:
            self._item(<object>entry.value)
        return 0

    cdef Py_ssize_t _find_open(self, object obj) except -2:
        cdef Py_ssize_t i, n = min(self.n_open, LINEAR_SCAN)
        for i in range(n):
            if self.open_objs[i] == <PyObject *>obj:
                return i
        if self.n_open > LINEAR_SCAN:
            found = self.open_map.get(<Py_ssize_t><void *>obj)
            if found is not None:
                return found
        return -1

    cdef int _item(self, object obj) except -1:
        cdef Py_ssize_t depth
        if self._write_scalar(obj):
            return 0
        depth = self._find_open(obj)
        if depth >= 0:
            self._write_tag_u64(b"R", self.n_open - depth)
            return 0
        kind = type(obj)
        if kind is list:
            self._write_tag_u64(b"l", PyList_GET_SIZE(obj))
            self._push(F_SEQ, obj, obj, None, None, True)
        elif kind is tuple:
            self._write_tag_u64(b"t", PyTuple_GET_SIZE(obj))
            self._push(F_SEQ, obj, obj, None, None, False)
        elif kind is dict:
            ordered = _sorted_keys(PyDict_Keys(obj), PyDict_Values(obj))
            if ordered is not None:
                self._write_tag_u64(b"D", PyDict_Size(obj))
                self._push_sorted(ordered, obj, True)
            else:
                self._push(F_UNORDERED, list((<dict>obj).items()), obj, None, b"d", True).collected = []
        elif kind is set or kind is frozenset:
            ordered = _sorted_keys(list(obj), None)
            if ordered is not None:
                self._write_tag_u64(b"e" if kind is set else b"z", len(obj))
                self._push_sorted(ordered, obj, kind is set)
            else:
                self._push(F_UNORDERED, list(obj), obj, None, b"E" if kind is set else b"Z",
                           kind is set).collected = []
        else:
            self._reduced(obj)
        return 0

    cdef int _reduced(self, object obj) except -1:
        self.n_reduced += 1
        if self.n_reduced > self.max_reductions:
            raise self._limit_error(
                obj, "max_reductions", self.max_reductions,
                "more than max_reductions={} objects to reduce (an object graph that unfolds without end?)")
        self._guard()
        try:
            reduced = self.reduce_object(obj)
        except Exception as exc:
            raise TypeError(
                f"cannot hash object of type {type(obj).__qualname__!r} at {self._path()}: {exc}"
            ) from exc
        if reduced[0] == RECORD:
            _, name, components, labels = reduced
            self._write_str(b"O", name)
            put_u64(self._reserve(8), len(components))
            self._push(F_SEQ, components, obj, labels, None, False)
        else:
            _, dtype_str, shape, nbytes, mode, data, dtype = reduced
            self._array(dtype_str, shape, nbytes, mode, data, dtype)
        return 0

    cdef int _array(self, str dtype_str, tuple shape, Py_ssize_t nbytes, int mode, object data,
                    object dtype) except -1:
        cdef Py_buffer view
        self._write_str(b"A", dtype_str)
        put_u64(self._reserve(8), len(shape))
        for dim in shape:
            put_u64(self._reserve(8), dim)
        put_u64(self._reserve(8), nbytes)
        if nbytes == 0:
            return 0
        if mode == DATA_BUFFER:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                self._write_data(<const char *>view.buf, view.len, data)
            finally:
                PyBuffer_Release(&view)
        elif mode == DATA_STRIDED:
            self._gather(data)
        else:
            self._cast(data, dtype)
        return 0

    cdef int _digest_memory(self, const char *data, Py_ssize_t n) except -1:
        self.top.digest.update(PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ))
        return 0

    cdef int _gather(self, object array) except -1:
        """Stream a non-contiguous array's bytes in C order, in bounded chunks."""
        cdef Gather g
        cdef Py_ssize_t n, d, k, i, pitch, row_bytes
        cdef tuple shape = array.shape
        cdef tuple strides = array.strides
        cdef int ndim = len(shape)  # numpy allows at most 64
        if self.chunk == NULL:
            self.chunk = <char *>PyMem_Malloc(C_CHUNK_SIZE + ROW_PAD * (C_CHUNK_SIZE // DIRECT_ROW))
            if self.chunk == NULL:
                raise MemoryError()
        g.base = <char *><Py_ssize_t>array.__array_interface__["data"][0]
        g.itemsize = array.itemsize
        g.done = False
        g.row = 0
        g.col = 0
        g.ndim = max(ndim - 2, 0)
        if ndim == 1:
            g.rows, g.cols = 1, shape[0]
            g.row_stride, g.col_stride = 0, strides[0]
        else:
            g.rows, g.cols = shape[ndim - 2], shape[ndim - 1]
            g.row_stride, g.col_stride = strides[ndim - 2], strides[ndim - 1]
            for d in range(g.ndim):
                g.outer_shape[d] = shape[d]
                g.outer_strides[d] = strides[d]
                g.outer_index[d] = 0
        row_bytes = g.cols * g.itemsize
        pitch = row_bytes + ROW_PAD if row_bytes >= DIRECT_ROW else row_bytes
        self._flush()
        if g.itemsize >= DIRECT_ROW or (g.col_stride == g.itemsize and row_bytes >= DIRECT_ROW):
            # Long contiguous runs (whole rows, or single big items) need no copy.
            n = g.itemsize if g.col_stride != g.itemsize else row_bytes
            while not g.done:
                self._digest_memory(slab_start(&g) + g.row * g.row_stride + g.col * g.col_stride, n)
                g.col += n // g.itemsize
                if g.col == g.cols:
                    g.col = 0
                    next_row(&g)
        elif pitch > C_CHUNK_SIZE:
            while not g.done:
                with nogil:
                    n = fill_segment(&g, self.chunk, C_CHUNK_SIZE)
                self._digest_memory(self.chunk, n)
        else:
            while not g.done:
                with nogil:
                    k = fill_rows(&g, self.chunk, pitch, C_CHUNK_SIZE // pitch)
                if pitch == row_bytes:
                    self._digest_memory(self.chunk, k * row_bytes)
                else:
                    for i in range(k):
                        self._digest_memory(self.chunk + i * pitch, row_bytes)
        return 0

    cdef int _cast(self, object array, object dtype) except -1:
        import numpy as np

        chunks = np.nditer(
            array,
            flags=["external_loop", "buffered", "zerosize_ok", "refs_ok"],
            op_dtypes=[dtype],
            casting="unsafe",
            buffersize=max(1, CHUNK_SIZE // dtype.itemsize),
            order="C",
        )
        for chunk in chunks:
            data = np.ascontiguousarray(chunk).view(np.uint8)
            self._flush()
            self.top.digest.update(data)
        return 0

    # -- error paths ------------------------------------------------------------
    cdef object _limit_error(self, object obj, str limit, Py_ssize_t value, str reason):
        parts = self._path_parts(len(self.frames))
        shown = parts
        if len(parts) > 2 * PATH_ENDS + 1:
            hidden = len(parts) - 2 * PATH_ENDS
            shown = parts[:PATH_ENDS] + [f"<...{hidden} steps...>"] + parts[len(parts) - PATH_ENDS:]
        return HashLimitError(
            f"cannot hash object of type {type(obj).__qualname__!r} at {''.join(shown)}: "
            f"{reason.format(value)}; pass a larger {limit} to hash it",
            "".join(parts), limit, value)

    cdef str _path(self):
        return "".join(self._path_parts(len(self.frames)))

    cdef list _path_parts(self, Py_ssize_t depth):
        """The steps of the path to the item the first `depth` frames are at."""
        cdef _Frame frame, parent
        cdef Py_ssize_t index, pos
        parts = [self.root]
        frames = self.frames
        for index in range(depth):
            frame = frames[index]
            pos = frame.pos - 1
            if frame.kind == F_SEQ:
                if frame.labels is not None:
                    parts.append(frame.labels[pos])
                elif type(frame.obj) in (set, frozenset):
                    parts.append(f"{{{_short_repr(frame.items[pos])}}}")
                else:
                    parts.append(f"[{pos}]")
            elif frame.kind == F_SORTED:
                parts.append(f"[{_short_repr(frame.items[pos])}]")
            elif frame.kind == F_STR_TABLE:
                key = _short_repr(<object>frame.table.entries[pos].key)
                parts.append(f"{{{key}}}" if type(frame.obj) in (set, frozenset) else f"[{key}]")
            elif frame.kind == F_SUB:
                parent = frames[index - 1]
                if parent.tag == b"d":
                    key = frame.items[0]
                    label = f"[{_short_repr(key)}]"
                    parts.append(label if pos == 1 else f"<key {_short_repr(key)}>")
                else:
                    parts.append(f"{{{_short_repr(frame.items[0])}}}")
        return parts
