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

One module of about 1,450 lines, because the walker, its sort of ``str``
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
    PyObject *type_of "(PyObject *)Py_TYPE"(PyObject *o) noexcept  # the type as an object pointer

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define JOBLITE_PREFETCH(p) __builtin_prefetch(p)
    #define JOBLITE_PREFETCH_L2(p) __builtin_prefetch(p, 0, 2)  /* to L2: more lines in flight */
    #else
    #define JOBLITE_PREFETCH(p) ((void)0)
    #define JOBLITE_PREFETCH_L2(p) ((void)0)
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
from joblite._pure._hasher import HashLimitError, check_masked

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
DATA_MASKED = 3

# Compile-time constants (C enum values: array sizes and loop bounds the C compiler sees).
cdef enum:
    C_BUFFER_SIZE = 65536
    C_CHUNK_SIZE = 1048576   # gather scratch: half of a core's L2 here
    BAND_SIZE = 2097152      # transposing scratch of long rows: a core's L2 here
    MAX_SCRATCH = 9437184    # most gather scratch: 128 rows of 64 KiB, for bytes
    TILE_MIN_RUN = 128       # bytes of each source column a transposing chunk reads at least
    LINE = 64                # bytes of a cache line
    ROW_PAD = 64             # bytes between long gathered rows: no cache-set aliasing
    DIRECT_ROW = 4096        # contiguous rows this long go to the digest uncopied
    PREFETCH_AHEAD = 8
    BIG_WRITE = 16384
    LINEAR_SCAN = 64
    MASKED_PIECE = 131072    # values zeroed under a mask per digest update: stays in L2 (1 MiB measured 1.6x slower)
    PATH_ENDS = 12           # steps of a path shown at each end of a HashLimitError message


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
cdef extern from *:
    """
    #include <string.h>
    #if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
    #include <emmintrin.h>
    #define JOBLITE_SSE2 1
    #endif

    typedef struct { uint64_t lo, hi; } joblite_item16;

    /* Tiles of the transposing copy: JOBLITE_TILE_BYTES of each destination row
       (one cache line) by JOBLITE_TILE_ROWS rows; source and destination of a
       tile stay in L1 while it is written. */
    #define JOBLITE_TILE_BYTES 64
    #define JOBLITE_TILE_ROWS 128

    /* k rows of n items each, row i read at src + i*rs with items cs bytes
       apart, written to dst + i*pitch.  Items are moved with a fixed-size
       memcpy: one load and one store, whatever the alignment. */
    #define JOBLITE_ROWS(T)                                                          \
    static void joblite_rows_##T(char *dst, Py_ssize_t pitch, const char *src,       \
                                 Py_ssize_t k, Py_ssize_t n, Py_ssize_t rs,          \
                                 Py_ssize_t cs) {                                    \
        for (Py_ssize_t i = 0; i < k; i++) {                                         \
            char *d = dst + i * pitch;                                               \
            const char *s = src + i * rs;                                            \
            Py_ssize_t j = joblite_pairs(d, s, n, cs, (int)sizeof(T));               \
            for (s += j * cs; j < n; j++, s += cs)                                   \
                memcpy(d + j * (Py_ssize_t)sizeof(T), s, sizeof(T));                 \
        }                                                                            \
    }

    #ifdef JOBLITE_SSE2
    /* The items at s, s + 2 * size, ..., s + 30 - size... (every other item
       of 32 bytes) packed into 16 bytes. */
    static inline __m128i joblite_pack2(const char *s, int size) {
        __m128i a = _mm_loadu_si128((const __m128i *)s);
        __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
        if (size == 1) {
            __m128i low = _mm_set1_epi16(0xFF);
            return _mm_packus_epi16(_mm_and_si128(a, low), _mm_and_si128(b, low));
        }
        if (size == 2)  /* sign-extend the low halves, so that the saturating pack keeps them */
            return _mm_packs_epi32(_mm_srai_epi32(_mm_slli_epi32(a, 16), 16),
                                   _mm_srai_epi32(_mm_slli_epi32(b, 16), 16));
        if (size == 4)
            return _mm_unpacklo_epi64(_mm_shuffle_epi32(a, _MM_SHUFFLE(3, 1, 2, 0)),
                                      _mm_shuffle_epi32(b, _MM_SHUFFLE(3, 1, 2, 0)));
        return _mm_unpacklo_epi64(a, b);
    }
    #endif

    /* Every other item (cs == 2 * size, the commonest step): 32 source bytes
       to 16 by vector packs; returns how many items it copied. */
    static Py_ssize_t joblite_pairs(char *d, const char *s, Py_ssize_t n, Py_ssize_t cs, int size) {
        Py_ssize_t j = 0;
    #ifdef JOBLITE_SSE2
        Py_ssize_t v = 16 / size;
        if (cs != 2 * size || size > 8)
            return 0;
        /* j + v < n: the 32 bytes end where item j + v starts, inside the
           array (the last item's trailing gap may be past its end). */
        for (; j + v < n; j += v, s += 32)
            _mm_storeu_si128((__m128i *)(d + j * size), joblite_pack2(s, size));
    #endif
        return j;
    }

    JOBLITE_ROWS(uint8_t)
    JOBLITE_ROWS(uint16_t)
    JOBLITE_ROWS(uint32_t)
    JOBLITE_ROWS(uint64_t)
    JOBLITE_ROWS(joblite_item16)

    /* The same copy for sources whose rows are closer than their items
       (|rs| < |cs|: F order, transposed views): by tiles, so that every source
       line read and every destination line written is used whole. */
    #define JOBLITE_TILE_SCALAR(T)                                                   \\
    static void joblite_tile_##T(char *dst, Py_ssize_t pitch, const char *src,       \\
                                 Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0,        \\
                                 Py_ssize_t j1, Py_ssize_t rs, Py_ssize_t cs) {      \\
        for (Py_ssize_t j = j0; j < j1; j++)                                         \\
            for (Py_ssize_t i = i0; i < i1; i++)                                     \\
                memcpy(dst + i * pitch + j * (Py_ssize_t)sizeof(T),                  \\
                       src + i * rs + j * cs, sizeof(T));                            \\
    }
    JOBLITE_TILE_SCALAR(uint8_t)
    JOBLITE_TILE_SCALAR(uint16_t)
    JOBLITE_TILE_SCALAR(uint32_t)
    JOBLITE_TILE_SCALAR(uint64_t)
    JOBLITE_TILE_SCALAR(joblite_item16)

    #ifdef JOBLITE_SSE2
    /* 8x8 transpose of 16-bit lanes: r[t] holds lane t of every c[]. */
    static inline void joblite_tr16(const __m128i c[8], __m128i r[8]) {
        __m128i a0 = _mm_unpacklo_epi16(c[0], c[1]), a1 = _mm_unpacklo_epi16(c[2], c[3]);
        __m128i a2 = _mm_unpacklo_epi16(c[4], c[5]), a3 = _mm_unpacklo_epi16(c[6], c[7]);
        __m128i a4 = _mm_unpackhi_epi16(c[0], c[1]), a5 = _mm_unpackhi_epi16(c[2], c[3]);
        __m128i a6 = _mm_unpackhi_epi16(c[4], c[5]), a7 = _mm_unpackhi_epi16(c[6], c[7]);
        __m128i b0 = _mm_unpacklo_epi32(a0, a1), b1 = _mm_unpacklo_epi32(a2, a3);
        __m128i b2 = _mm_unpackhi_epi32(a0, a1), b3 = _mm_unpackhi_epi32(a2, a3);
        __m128i b4 = _mm_unpacklo_epi32(a4, a5), b5 = _mm_unpacklo_epi32(a6, a7);
        __m128i b6 = _mm_unpackhi_epi32(a4, a5), b7 = _mm_unpackhi_epi32(a6, a7);
        r[0] = _mm_unpacklo_epi64(b0, b1); r[1] = _mm_unpackhi_epi64(b0, b1);
        r[2] = _mm_unpacklo_epi64(b2, b3); r[3] = _mm_unpackhi_epi64(b2, b3);
        r[4] = _mm_unpacklo_epi64(b4, b5); r[5] = _mm_unpackhi_epi64(b4, b5);
        r[6] = _mm_unpacklo_epi64(b6, b7); r[7] = _mm_unpackhi_epi64(b6, b7);
    }

    /* 16 bytes of one source column: v = 16 / size items, rs bytes apart
       (rs is size, or 2 * size: then its gaps are read and packed out). */
    static inline __m128i joblite_col(const char *p, Py_ssize_t rs, int size) {
        return rs == size ? _mm_loadu_si128((const __m128i *)p) : joblite_pack2(p, size);
    }

    /* Blocks of v x v items (v = 16 / size) over rows i0..ie and columns
       j0..je (multiples of v).  The source rows are contiguous (rs == size):
       each source column of a block is one 16-byte load; or every other item
       (rs == 2 * size): two loads packed.  Each destination row is one
       16-byte store.  One loop per size, so that the block stays in
       registers. */
    static void joblite_blocks_8(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                 Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t rs,
                                 Py_ssize_t cs) {
        for (Py_ssize_t i = i0; i < ie; i += 2) {
            char *d = dst + i * pitch;
            const char *s = src + i * rs;
            for (Py_ssize_t j = j0; j < je; j += 2) {
                __m128i c0 = joblite_col(s + j * cs, rs, 8);
                __m128i c1 = joblite_col(s + (j + 1) * cs, rs, 8);
                _mm_storeu_si128((__m128i *)(d + j * 8), _mm_unpacklo_epi64(c0, c1));
                _mm_storeu_si128((__m128i *)(d + pitch + j * 8), _mm_unpackhi_epi64(c0, c1));
            }
        }
    }

    static void joblite_blocks_4(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                 Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t rs,
                                 Py_ssize_t cs) {
        for (Py_ssize_t i = i0; i < ie; i += 4) {
            char *d = dst + i * pitch;
            const char *s = src + i * rs;
            for (Py_ssize_t j = j0; j < je; j += 4) {
                const char *c = s + j * cs;
                __m128i c0 = joblite_col(c, rs, 4);
                __m128i c1 = joblite_col(c + cs, rs, 4);
                __m128i c2 = joblite_col(c + 2 * cs, rs, 4);
                __m128i c3 = joblite_col(c + 3 * cs, rs, 4);
                __m128i t0 = _mm_unpacklo_epi32(c0, c1), t1 = _mm_unpacklo_epi32(c2, c3);
                __m128i t2 = _mm_unpackhi_epi32(c0, c1), t3 = _mm_unpackhi_epi32(c2, c3);
                _mm_storeu_si128((__m128i *)(d + j * 4), _mm_unpacklo_epi64(t0, t1));
                _mm_storeu_si128((__m128i *)(d + pitch + j * 4), _mm_unpackhi_epi64(t0, t1));
                _mm_storeu_si128((__m128i *)(d + 2 * pitch + j * 4), _mm_unpacklo_epi64(t2, t3));
                _mm_storeu_si128((__m128i *)(d + 3 * pitch + j * 4), _mm_unpackhi_epi64(t2, t3));
            }
        }
    }

    static void joblite_blocks_2(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                 Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t rs,
                                 Py_ssize_t cs) {
        __m128i c[8], r[8];
        int t;
        for (Py_ssize_t i = i0; i < ie; i += 8) {
            char *d = dst + i * pitch;
            const char *s = src + i * rs;
            for (Py_ssize_t j = j0; j < je; j += 8) {
                for (t = 0; t < 8; t++) c[t] = joblite_col(s + (j + t) * cs, rs, 2);
                joblite_tr16(c, r);
                for (t = 0; t < 8; t++) _mm_storeu_si128((__m128i *)(d + t * pitch + j * 2), r[t]);
            }
        }
    }

    static void joblite_blocks_1(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                 Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t rs,
                                 Py_ssize_t cs) {
        /* Pairs of columns interleaved into 16-bit lanes, then two 16-bit
           transposes.  Columns outer: a tile's 64 byte columns are often a
           power of two apart (F order), in a few L1 sets; 16 of them at a
           time stay there while their rows are copied. */
        __m128i lo[8], hi[8], r[16];
        int t;
        for (Py_ssize_t j = j0; j < je; j += 16) {
            for (Py_ssize_t i = i0; i < ie; i += 16) {
                char *d = dst + i * pitch;
                const char *s = src + i * rs;
                for (t = 0; t < 8; t++) {
                    __m128i a = joblite_col(s + (j + 2 * t) * cs, rs, 1);
                    __m128i b = joblite_col(s + (j + 2 * t + 1) * cs, rs, 1);
                    lo[t] = _mm_unpacklo_epi8(a, b);
                    hi[t] = _mm_unpackhi_epi8(a, b);
                }
                joblite_tr16(lo, r);
                joblite_tr16(hi, r + 8);
                for (t = 0; t < 16; t++) _mm_storeu_si128((__m128i *)(d + t * pitch + j), r[t]);
            }
        }
    }
    #endif

    #if defined(JOBLITE_SSE2) && (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #include <immintrin.h>
    #define JOBLITE_AVX2 1
    #define JOBLITE_AVX2_FN __attribute__((target("avx2")))
    /* Blocks of 32-byte vectors for 8 and 4-byte items (rs == size), on CPUs
       with AVX2 (checked at run time): 4x4 and 8x8 items, each source column
       one load, each destination row one store.  (1 and 2-byte items: two
       16-byte blocks at once, below.) */
    JOBLITE_AVX2_FN
    static void joblite_blocks_8_avx2(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                      Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t cs) {
        for (Py_ssize_t i = i0; i < ie; i += 4) {
            char *d = dst + i * pitch;
            const char *s = src + i * 8;
            for (Py_ssize_t j = j0; j < je; j += 4) {
                const char *c = s + j * cs;
                __m256i c0 = _mm256_loadu_si256((const __m256i *)c);
                __m256i c1 = _mm256_loadu_si256((const __m256i *)(c + cs));
                __m256i c2 = _mm256_loadu_si256((const __m256i *)(c + 2 * cs));
                __m256i c3 = _mm256_loadu_si256((const __m256i *)(c + 3 * cs));
                __m256i t0 = _mm256_unpacklo_epi64(c0, c1), t1 = _mm256_unpackhi_epi64(c0, c1);
                __m256i t2 = _mm256_unpacklo_epi64(c2, c3), t3 = _mm256_unpackhi_epi64(c2, c3);
                _mm256_storeu_si256((__m256i *)(d + j * 8), _mm256_permute2x128_si256(t0, t2, 0x20));
                _mm256_storeu_si256((__m256i *)(d + pitch + j * 8), _mm256_permute2x128_si256(t1, t3, 0x20));
                _mm256_storeu_si256((__m256i *)(d + 2 * pitch + j * 8), _mm256_permute2x128_si256(t0, t2, 0x31));
                _mm256_storeu_si256((__m256i *)(d + 3 * pitch + j * 8), _mm256_permute2x128_si256(t1, t3, 0x31));
            }
        }
    }

    JOBLITE_AVX2_FN
    static void joblite_blocks_4_avx2(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                      Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t cs) {
        __m256i u[8];
        int h, t;
        for (Py_ssize_t i = i0; i < ie; i += 8) {
            char *d = dst + i * pitch;
            const char *s = src + i * 4;
            for (Py_ssize_t j = j0; j < je; j += 8) {
                const char *c = s + j * cs;
                for (h = 0; h < 8; h += 4) {
                    __m256i c0 = _mm256_loadu_si256((const __m256i *)(c + h * cs));
                    __m256i c1 = _mm256_loadu_si256((const __m256i *)(c + (h + 1) * cs));
                    __m256i c2 = _mm256_loadu_si256((const __m256i *)(c + (h + 2) * cs));
                    __m256i c3 = _mm256_loadu_si256((const __m256i *)(c + (h + 3) * cs));
                    __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
                    __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
                    /* u[h + t]: rows t (low half) and t + 4 (high half) of columns h..h+3 */
                    u[h] = _mm256_unpacklo_epi64(t0, t2);
                    u[h + 1] = _mm256_unpackhi_epi64(t0, t2);
                    u[h + 2] = _mm256_unpacklo_epi64(t1, t3);
                    u[h + 3] = _mm256_unpackhi_epi64(t1, t3);
                }
                for (t = 0; t < 4; t++) {
                    _mm256_storeu_si256((__m256i *)(d + t * pitch + j * 4),
                                        _mm256_permute2x128_si256(u[t], u[t + 4], 0x20));
                    _mm256_storeu_si256((__m256i *)(d + (t + 4) * pitch + j * 4),
                                        _mm256_permute2x128_si256(u[t], u[t + 4], 0x31));
                }
            }
        }
    }

    /* joblite_tr16 on both 128-bit lanes at once. */
    JOBLITE_AVX2_FN
    static inline void joblite_tr16_avx2(const __m256i c[8], __m256i r[8]) {
        __m256i a0 = _mm256_unpacklo_epi16(c[0], c[1]), a1 = _mm256_unpacklo_epi16(c[2], c[3]);
        __m256i a2 = _mm256_unpacklo_epi16(c[4], c[5]), a3 = _mm256_unpacklo_epi16(c[6], c[7]);
        __m256i a4 = _mm256_unpackhi_epi16(c[0], c[1]), a5 = _mm256_unpackhi_epi16(c[2], c[3]);
        __m256i a6 = _mm256_unpackhi_epi16(c[4], c[5]), a7 = _mm256_unpackhi_epi16(c[6], c[7]);
        __m256i b0 = _mm256_unpacklo_epi32(a0, a1), b1 = _mm256_unpacklo_epi32(a2, a3);
        __m256i b2 = _mm256_unpackhi_epi32(a0, a1), b3 = _mm256_unpackhi_epi32(a2, a3);
        __m256i b4 = _mm256_unpacklo_epi32(a4, a5), b5 = _mm256_unpacklo_epi32(a6, a7);
        __m256i b6 = _mm256_unpackhi_epi32(a4, a5), b7 = _mm256_unpackhi_epi32(a6, a7);
        r[0] = _mm256_unpacklo_epi64(b0, b1); r[1] = _mm256_unpackhi_epi64(b0, b1);
        r[2] = _mm256_unpacklo_epi64(b2, b3); r[3] = _mm256_unpackhi_epi64(b2, b3);
        r[4] = _mm256_unpacklo_epi64(b4, b5); r[5] = _mm256_unpackhi_epi64(b4, b5);
        r[6] = _mm256_unpacklo_epi64(b6, b7); r[7] = _mm256_unpackhi_epi64(b6, b7);
    }

    /* The 16-byte blocks of 2 and 1-byte items (rs == size) two at a time:
       each 32-byte load is a column of 2 * v rows; the low lanes transpose
       the first v rows, the high lanes the next v, and each destination row
       is one 16-byte store (half the shuffles per byte of the SSE2 blocks). */
    JOBLITE_AVX2_FN
    static void joblite_blocks_2_avx2(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                      Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t cs) {
        __m256i c[8], r[8];
        int t;
        for (Py_ssize_t i = i0; i < ie; i += 16) {
            char *d = dst + i * pitch;
            const char *s = src + i * 2;
            for (Py_ssize_t j = j0; j < je; j += 8) {
                for (t = 0; t < 8; t++) c[t] = _mm256_loadu_si256((const __m256i *)(s + (j + t) * cs));
                joblite_tr16_avx2(c, r);
                for (t = 0; t < 8; t++) {
                    _mm_storeu_si128((__m128i *)(d + t * pitch + j * 2), _mm256_castsi256_si128(r[t]));
                    _mm_storeu_si128((__m128i *)(d + (t + 8) * pitch + j * 2), _mm256_extracti128_si256(r[t], 1));
                }
            }
        }
    }

    JOBLITE_AVX2_FN
    static void joblite_blocks_1_avx2(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t i0,
                                      Py_ssize_t ie, Py_ssize_t j0, Py_ssize_t je, Py_ssize_t cs) {
        __m256i lo[8], hi[8], r[16];
        int t;
        for (Py_ssize_t j = j0; j < je; j += 16) {
            for (Py_ssize_t i = i0; i < ie; i += 32) {
                char *d = dst + i * pitch;
                const char *s = src + i;
                for (t = 0; t < 8; t++) {
                    __m256i a = _mm256_loadu_si256((const __m256i *)(s + (j + 2 * t) * cs));
                    __m256i b = _mm256_loadu_si256((const __m256i *)(s + (j + 2 * t + 1) * cs));
                    lo[t] = _mm256_unpacklo_epi8(a, b);
                    hi[t] = _mm256_unpackhi_epi8(a, b);
                }
                joblite_tr16_avx2(lo, r);
                joblite_tr16_avx2(hi, r + 8);
                for (t = 0; t < 16; t++) {
                    _mm_storeu_si128((__m128i *)(d + t * pitch + j), _mm256_castsi256_si128(r[t]));
                    _mm_storeu_si128((__m128i *)(d + (t + 16) * pitch + j), _mm256_extracti128_si256(r[t], 1));
                }
            }
        }
    }

    static int joblite_has_avx2(void) {
        static int known = -1;
        if (known < 0) {
            __builtin_cpu_init();
            known = __builtin_cpu_supports("avx2") ? 1 : 0;
        }
        return known;
    }
    #endif

    static void joblite_transpose(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                                  Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs, int size) {
        Py_ssize_t tile_cols = JOBLITE_TILE_BYTES / size;
        int avx2 = 0;
    #ifdef JOBLITE_AVX2
        avx2 = rs == size && joblite_has_avx2();
    #endif
        for (Py_ssize_t j0 = 0; j0 < n; j0 += tile_cols) {
            Py_ssize_t j1 = j0 + tile_cols < n ? j0 + tile_cols : n;
            for (Py_ssize_t i0 = 0; i0 < k; i0 += JOBLITE_TILE_ROWS) {
                Py_ssize_t i1 = i0 + JOBLITE_TILE_ROWS < k ? i0 + JOBLITE_TILE_ROWS : k;
                Py_ssize_t ie = i0, je = j0;
                if ((rs == size || rs == 2 * size) && j1 < n) {
                    /* Each tile reads fresh lines from as many pages as it has
                       columns, too short a run for the hardware prefetcher:
                       ask for the next tile's lines now. */
                    Py_ssize_t jn = j1 + tile_cols < n ? j1 + tile_cols : n;
                    for (Py_ssize_t j = j1; j < jn; j++) {
                        const char *col = src + i0 * rs + j * cs;
                        for (Py_ssize_t off = 0; off < (i1 - i0) * rs; off += 64)
                            JOBLITE_PREFETCH_L2(col + off);
                    }
                }
    #ifdef JOBLITE_SSE2
                if (size <= 8 && (rs == size || rs == 2 * size)) {
                    Py_ssize_t v = 16 / size, from = i0;
                    /* Packed loads read the gap after a block's last row:
                       blocks stop a row before the chunk's last one. */
                    Py_ssize_t last = rs == size || i1 < k ? i1 : k - 1;
                    je = j0 + (j1 - j0) / v * v;
    #ifdef JOBLITE_AVX2
                    if (avx2 && (je - j0) % (2 * v) == 0) {
                        /* 32-byte blocks (2 * v rows by 2 * v columns, or
                           by v for 1 and 2-byte items) first, then 16-byte
                           blocks for the rows they left. */
                        from = i0 + (i1 - i0) / (2 * v) * (2 * v);
                        if (size == 8) joblite_blocks_8_avx2(dst, pitch, src, i0, from, j0, je, cs);
                        else if (size == 4) joblite_blocks_4_avx2(dst, pitch, src, i0, from, j0, je, cs);
                        else if (size == 2) joblite_blocks_2_avx2(dst, pitch, src, i0, from, j0, je, cs);
                        else joblite_blocks_1_avx2(dst, pitch, src, i0, from, j0, je, cs);
                    }
    #endif
                    ie = last > from ? from + (last - from) / v * v : from;
                    if (size == 8) joblite_blocks_8(dst, pitch, src, from, ie, j0, je, rs, cs);
                    else if (size == 4) joblite_blocks_4(dst, pitch, src, from, ie, j0, je, rs, cs);
                    else if (size == 2) joblite_blocks_2(dst, pitch, src, from, ie, j0, je, rs, cs);
                    else joblite_blocks_1(dst, pitch, src, from, ie, j0, je, rs, cs);
                }
    #endif
                /* What the blocks left: the right strip, then the bottom strip. */
                switch (size) {
                case 1:
                    joblite_tile_uint8_t(dst, pitch, src, i0, ie, je, j1, rs, cs);
                    joblite_tile_uint8_t(dst, pitch, src, ie, i1, j0, j1, rs, cs);
                    break;
                case 2:
                    joblite_tile_uint16_t(dst, pitch, src, i0, ie, je, j1, rs, cs);
                    joblite_tile_uint16_t(dst, pitch, src, ie, i1, j0, j1, rs, cs);
                    break;
                case 4:
                    joblite_tile_uint32_t(dst, pitch, src, i0, ie, je, j1, rs, cs);
                    joblite_tile_uint32_t(dst, pitch, src, ie, i1, j0, j1, rs, cs);
                    break;
                case 8:
                    joblite_tile_uint64_t(dst, pitch, src, i0, ie, je, j1, rs, cs);
                    joblite_tile_uint64_t(dst, pitch, src, ie, i1, j0, j1, rs, cs);
                    break;
                default:
                    joblite_tile_joblite_item16(dst, pitch, src, i0, ie, je, j1, rs, cs);
                    joblite_tile_joblite_item16(dst, pitch, src, ie, i1, j0, j1, rs, cs);
                }
            }
        }
    }
    """
    void rows_u8 "joblite_rows_uint8_t"(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                                        Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil
    void rows_u16 "joblite_rows_uint16_t"(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                                          Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil
    void rows_u32 "joblite_rows_uint32_t"(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                                          Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil
    void rows_u64 "joblite_rows_uint64_t"(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                                          Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil
    void rows_u128 "joblite_rows_joblite_item16"(char *dst, Py_ssize_t pitch, const char *src,
                                                 Py_ssize_t k, Py_ssize_t n, Py_ssize_t rs,
                                                 Py_ssize_t cs) noexcept nogil
    void transpose "joblite_transpose"(char *dst, Py_ssize_t pitch, const char *src, Py_ssize_t k,
                                       Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs, int size) noexcept nogil


cdef extern from *:
    """
    /* dst = src with every item whose mask byte is nonzero set to zero bits;
       n items of `size` bytes (1, 2, 4, 8 or 16).  SSE2: 16 mask bytes
       widened to a byte mask of 16 items (one register per 16 bytes of
       items), ANDed with their bytes; one loop per size, so that the masks
       stay in registers. */
    #ifdef JOBLITE_SSE2
    #define JOBLITE_AND16(t, k) _mm_storeu_si128((__m128i *)(d + 16 * (t)),          \
            _mm_and_si128(_mm_loadu_si128((const __m128i *)(s + 16 * (t))), (k)))
    static Py_ssize_t joblite_zero_masked_sse2(char *dst, const char *src, const uint8_t *mask,
                                               Py_ssize_t n, int size) {
        const __m128i zero = _mm_setzero_si128();
        Py_ssize_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const char *s = src + i * size;
            char *d = dst + i * size;
            __m128i k = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(mask + i)), zero);
            if (size == 1) {
                JOBLITE_AND16(0, k);
                continue;
            }
            __m128i k0 = _mm_unpacklo_epi8(k, k), k1 = _mm_unpackhi_epi8(k, k);
            if (size == 2) {
                JOBLITE_AND16(0, k0); JOBLITE_AND16(1, k1);
                continue;
            }
            __m128i k00 = _mm_unpacklo_epi16(k0, k0), k01 = _mm_unpackhi_epi16(k0, k0);
            __m128i k10 = _mm_unpacklo_epi16(k1, k1), k11 = _mm_unpackhi_epi16(k1, k1);
            if (size == 4) {
                JOBLITE_AND16(0, k00); JOBLITE_AND16(1, k01); JOBLITE_AND16(2, k10); JOBLITE_AND16(3, k11);
                continue;
            }
            JOBLITE_AND16(0, _mm_unpacklo_epi32(k00, k00)); JOBLITE_AND16(1, _mm_unpackhi_epi32(k00, k00));
            JOBLITE_AND16(2, _mm_unpacklo_epi32(k01, k01)); JOBLITE_AND16(3, _mm_unpackhi_epi32(k01, k01));
            JOBLITE_AND16(4, _mm_unpacklo_epi32(k10, k10)); JOBLITE_AND16(5, _mm_unpackhi_epi32(k10, k10));
            JOBLITE_AND16(6, _mm_unpacklo_epi32(k11, k11)); JOBLITE_AND16(7, _mm_unpackhi_epi32(k11, k11));
        }
        return i;
    }
    #endif

    static void joblite_zero_masked(char *dst, const char *src, const uint8_t *mask,
                                    Py_ssize_t n, int size) {
        Py_ssize_t i = 0;
    #ifdef JOBLITE_SSE2
        /* A call per size: the size is a constant in each inlined copy. */
        switch (size) {
        case 1: i = joblite_zero_masked_sse2(dst, src, mask, n, 1); break;
        case 2: i = joblite_zero_masked_sse2(dst, src, mask, n, 2); break;
        case 4: i = joblite_zero_masked_sse2(dst, src, mask, n, 4); break;
        case 8: i = joblite_zero_masked_sse2(dst, src, mask, n, 8); break;
        }
    #endif
        for (; i < n; i++) {
            if (mask[i]) memset(dst + i * size, 0, (size_t)size);
            else memcpy(dst + i * size, src + i * size, (size_t)size);
        }
    }
    """
    void c_zero_masked "joblite_zero_masked"(char *dst, const char *src, const uint8_t *mask,
                                             Py_ssize_t n, int size) noexcept nogil


def zero_masked(values, mask):
    """A copy of `values` with every item where `mask` is true set to all-zero bits.

    Items are treated as their bytes, whatever their dtype: a masked float
    becomes +0.0, a masked bool False, as ``np.where(mask, 0, values)`` gives.
    One pass without the GIL.

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
        As ``check_masked`` of the pure twin: non-arrays, non-contiguous
        arrays, shapes that differ, a mask that is not boolean, items of
        another size.
    """
    import numpy as np

    cdef int size = check_masked(values, mask)
    cdef Py_ssize_t n = values.size
    out = np.empty_like(values, order="C", subok=False)
    if n == 0:
        return out
    cdef const char *src = <const char *><Py_ssize_t>values.__array_interface__["data"][0]
    cdef char *dst = <char *><Py_ssize_t>out.__array_interface__["data"][0]
    cdef const uint8_t *m = <const uint8_t *><Py_ssize_t>mask.__array_interface__["data"][0]
    # check_masked compared shapes and item sizes; the C loop reads n items of `size` bytes
    # from each array and n mask bytes, so the byte counts are checked here, where it matters.
    if out.nbytes != n * size or mask.nbytes != n or values.nbytes != n * size:
        raise ValueError(f"zero_masked: {n} items of {size} bytes do not match buffers of "
                         f"{values.nbytes}, {out.nbytes} and {mask.nbytes} bytes")
    with nogil:
        c_zero_masked(dst, src, m, n, size)
    return out


cdef struct Gather:
    char *base
    int ndim             # number of outer dimensions (all but the last two)
    Py_ssize_t outer_shape[64]
    Py_ssize_t outer_strides[64]
    Py_ssize_t outer_index[64]
    Py_ssize_t rows, cols, row_stride, col_stride, itemsize
    Py_ssize_t row          # next row of the current slab
    Py_ssize_t col          # next column of the current row (rows longer than a chunk)
    bint transposed         # rows closer than items: copy by tiles
    bint done


cdef void copy_rows(const Gather *g, char *dst, Py_ssize_t pitch, const char *src,
                    Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """k rows of n items from `src` (rows g.row_stride apart) to `dst` (rows `pitch` apart)."""
    cdef Py_ssize_t i, j, size = g.itemsize, rs = g.row_stride, cs = g.col_stride
    if cs == size:
        for i in range(k):
            memcpy(dst + i * pitch, src + i * rs, n * size)
    elif g.transposed and k > 1 and (size == 1 or size == 2 or size == 4 or size == 8 or size == 16):
        transpose(dst, pitch, src, k, n, rs, cs, <int>size)
    elif size == 8:
        rows_u64(dst, pitch, src, k, n, rs, cs)
    elif size == 4:
        rows_u32(dst, pitch, src, k, n, rs, cs)
    elif size == 2:
        rows_u16(dst, pitch, src, k, n, rs, cs)
    elif size == 1:
        rows_u8(dst, pitch, src, k, n, rs, cs)
    elif size == 16:
        rows_u128(dst, pitch, src, k, n, rs, cs)
    else:
        for i in range(k):
            for j in range(n):
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
        copy_rows(g, dst + filled * pitch, pitch, slab_start(g) + g.row * g.row_stride, k, g.cols)
        filled += k
        g.row += k - 1
        next_row(g)
    return filled


cdef Py_ssize_t fill_segment(Gather *g, char *dst, Py_ssize_t capacity) noexcept nogil:
    """Copy the next part of a row longer than `capacity` bytes; return its length in bytes."""
    cdef Py_ssize_t n = min(g.cols - g.col, capacity // g.itemsize)
    copy_rows(g, dst, 0, slab_start(g) + g.row * g.row_stride + g.col * g.col_stride, 1, n)
    g.col += n
    if g.col == g.cols:
        g.col = 0
        next_row(g)
    return n * g.itemsize


cdef tuple _simplified(tuple shape, tuple strides):
    """The same walk in C order over fewer dimensions: size-1 ones dropped, contiguous ones merged."""
    sizes = []
    steps = []
    for size, stride in zip(shape, strides):
        if size == 1:
            continue
        if sizes and steps[len(steps) - 1] == stride * size:
            sizes[len(sizes) - 1] *= size
            steps[len(steps) - 1] = stride
        else:
            sizes.append(size)
            steps.append(stride)
    if not sizes:
        return (1,), (0,)
    return tuple(sizes), tuple(steps)


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
    cdef Py_ssize_t chunk_size
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
        elif mode == DATA_MASKED:
            self._zeroed(data, nbytes)
        else:
            self._cast(data, dtype)
        return 0

    cdef int _zeroed(self, tuple data, Py_ssize_t nbytes) except -1:
        """Stream values with zero bits under a mask, zeroed piece by piece in the scratch.

        `data` is ``(values, mask)``, held by the caller while the digest reads
        the pieces.
        """
        values, mask = data
        cdef int size = check_masked(values, mask)
        cdef Py_ssize_t n = values.size, done = 0, k, step = MASKED_PIECE // size
        if values.nbytes != nbytes or mask.nbytes != n:
            raise ValueError(f"masked values of {values.nbytes} bytes ({n} items, mask of "
                             f"{mask.nbytes} bytes) described as {nbytes} bytes")
        cdef const char *src = <const char *><Py_ssize_t>values.__array_interface__["data"][0]
        cdef const uint8_t *m = <const uint8_t *><Py_ssize_t>mask.__array_interface__["data"][0]
        # n items of `size` bytes and n mask bytes (checked above): every piece is in bounds.
        self._flush()
        self._reserve_scratch(min(n, step) * size)
        while done < n:
            k = min(step, n - done)
            with nogil:
                c_zero_masked(self.chunk, src + done * size, m + done, k, size)
            self._digest_memory(self.chunk, k * size)
            done += k
        return 0

    cdef int _digest_memory(self, const char *data, Py_ssize_t n) except -1:
        self.top.digest.update(PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ))
        return 0

    cdef int _gather(self, object array) except -1:
        """Stream a non-contiguous array's bytes in C order, in bounded chunks.

        `array` is held by the caller while the digest's ``update`` (which may
        release the GIL) reads the chunks; the scratch belongs to this hasher.
        """
        cdef Gather g
        cdef Py_ssize_t n, d, k, i, pitch, row_bytes, capacity, total, band, line
        cdef tuple shape, strides
        shape, strides = _simplified(array.shape, array.strides)
        cdef int ndim = len(shape)  # numpy allows at most 64
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
        g.transposed = ndim > 1 and abs(g.row_stride) < abs(g.col_stride)
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
            return 0
        # Scratch: C_CHUNK_SIZE (cache-sized), never more than MAX_SCRATCH, nor
        # more than the array needs.  A transposing chunk of long rows is a band
        # of BAND_SIZE, or more to read TILE_MIN_RUN bytes of each source
        # column, in whole cache lines of it (the next band reads the next ones).
        total = array.size // g.cols * pitch
        capacity = C_CHUNK_SIZE
        if g.transposed:
            band = max(BAND_SIZE // row_bytes if row_bytes >= DIRECT_ROW else C_CHUNK_SIZE // pitch,
                       (TILE_MIN_RUN + g.itemsize - 1) // g.itemsize)
            line = max(LINE // g.itemsize, 1)
            if band >= line:
                band -= band % line
            capacity = min(g.rows, band) * pitch
        capacity = min(capacity, MAX_SCRATCH, total)
        self._reserve_scratch(capacity)
        if pitch > capacity:
            while not g.done:
                with nogil:
                    n = fill_segment(&g, self.chunk, capacity)
                self._digest_memory(self.chunk, n)
        else:
            while not g.done:
                with nogil:
                    k = fill_rows(&g, self.chunk, pitch, capacity // pitch)
                if pitch == row_bytes:
                    self._digest_memory(self.chunk, k * row_bytes)
                else:
                    for i in range(k):
                        self._digest_memory(self.chunk + i * pitch, row_bytes)
        return 0

    cdef int _reserve_scratch(self, Py_ssize_t size) except -1:
        """Make the gather scratch at least `size` bytes."""
        if size <= self.chunk_size:
            return 0
        PyMem_Free(self.chunk)
        self.chunk_size = 0
        self.chunk = <char *>PyMem_Malloc(size)
        if self.chunk == NULL:
            raise MemoryError()
        self.chunk_size = size
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
