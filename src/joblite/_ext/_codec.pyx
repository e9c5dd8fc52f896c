"""Compiled twin of ``joblite._pure._codec``: byte shuffle and chunk framing.

Same names, results and exceptions as the pure twin.  The shuffle runs without
the GIL.  Items of 2, 4 and 8 bytes are transposed eight at a time inside
64-bit registers (SWAR: three, two or one rounds of masked swaps), so each
plane receives 8-byte stores and the source is read once, in order; other item
sizes use a byte loop over blocks of items that stay in the L1 cache.  Words
are loaded and stored little-endian (byte-swapped on big-endian hosts), so the
result does not depend on the host's byte order.  On SSE2 hosts (every x86-64)
the unshuffle of 4- and 8-byte items, on the load path, interleaves 16 items
at a time with byte, word and dword unpacks instead.

`lz4_unshuffle` decodes the lz4 chunks of a frame straight into the final
buffer without the GIL, through ``LZ4_decompress_safe`` of the library the
``lz4`` package is built with (found with ctypes; without it, the pure twin's
loop gives the same results).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_RawFree, PyMem_RawMalloc
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from operator import index as _index

U32_MAX = 0xFFFFFFFF

cdef enum:
    L1_BLOCK = 16384  # bytes of source items per block in the generic loop

ctypedef void (*kernel_t)(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil


cdef extern from *:
    """
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define JOBLITE_LE64(v) __builtin_bswap64(v)
    #define JOBLITE_LE32(v) __builtin_bswap32(v)
    #else
    #define JOBLITE_LE64(v) (v)
    #define JOBLITE_LE32(v) (v)
    #endif
    """
    uint64_t le64 "JOBLITE_LE64"(uint64_t v) noexcept nogil
    uint32_t le32 "JOBLITE_LE32"(uint32_t v) noexcept nogil


# memcpy of a fixed size compiles to one (unaligned) move
cdef inline uint64_t load64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return le64(v)


cdef inline uint64_t load32(const uint8_t *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return le32(v)


cdef inline void store64(uint8_t *p, uint64_t v) noexcept nogil:
    v = le64(v)
    memcpy(p, &v, 8)


cdef inline void store32(uint8_t *p, uint64_t v) noexcept nogil:
    cdef uint32_t w = le32(<uint32_t>v)
    memcpy(p, &w, 4)


cdef extern from *:
    """
    /* SSE2 (every x86-64 CPU): 16 items per step, three rounds of byte, word and dword unpacks */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #define JOBLITE_LOAD(p) _mm_loadu_si128((const __m128i *)(p))
    #define JOBLITE_STORE(p, v) _mm_storeu_si128((__m128i *)(p), (v))
    static Py_ssize_t joblite_unshuffle8_sse2(const uint8_t *src, uint8_t *dst, Py_ssize_t n) {
        Py_ssize_t i, whole = n - n % 16;
        for (i = 0; i < whole; i += 16) {
            __m128i a0 = JOBLITE_LOAD(src + i), a1 = JOBLITE_LOAD(src + n + i);
            __m128i a2 = JOBLITE_LOAD(src + 2 * n + i), a3 = JOBLITE_LOAD(src + 3 * n + i);
            __m128i a4 = JOBLITE_LOAD(src + 4 * n + i), a5 = JOBLITE_LOAD(src + 5 * n + i);
            __m128i a6 = JOBLITE_LOAD(src + 6 * n + i), a7 = JOBLITE_LOAD(src + 7 * n + i);
            __m128i b0 = _mm_unpacklo_epi8(a0, a1), b1 = _mm_unpackhi_epi8(a0, a1);
            __m128i b2 = _mm_unpacklo_epi8(a2, a3), b3 = _mm_unpackhi_epi8(a2, a3);
            __m128i b4 = _mm_unpacklo_epi8(a4, a5), b5 = _mm_unpackhi_epi8(a4, a5);
            __m128i b6 = _mm_unpacklo_epi8(a6, a7), b7 = _mm_unpackhi_epi8(a6, a7);
            __m128i c0 = _mm_unpacklo_epi16(b0, b2), c1 = _mm_unpackhi_epi16(b0, b2);
            __m128i c2 = _mm_unpacklo_epi16(b1, b3), c3 = _mm_unpackhi_epi16(b1, b3);
            __m128i c4 = _mm_unpacklo_epi16(b4, b6), c5 = _mm_unpackhi_epi16(b4, b6);
            __m128i c6 = _mm_unpacklo_epi16(b5, b7), c7 = _mm_unpackhi_epi16(b5, b7);
            uint8_t *d = dst + 8 * i;
            JOBLITE_STORE(d, _mm_unpacklo_epi32(c0, c4));
            JOBLITE_STORE(d + 16, _mm_unpackhi_epi32(c0, c4));
            JOBLITE_STORE(d + 32, _mm_unpacklo_epi32(c1, c5));
            JOBLITE_STORE(d + 48, _mm_unpackhi_epi32(c1, c5));
            JOBLITE_STORE(d + 64, _mm_unpacklo_epi32(c2, c6));
            JOBLITE_STORE(d + 80, _mm_unpackhi_epi32(c2, c6));
            JOBLITE_STORE(d + 96, _mm_unpacklo_epi32(c3, c7));
            JOBLITE_STORE(d + 112, _mm_unpackhi_epi32(c3, c7));
        }
        return whole;
    }
    static Py_ssize_t joblite_unshuffle4_sse2(const uint8_t *src, uint8_t *dst, Py_ssize_t n) {
        Py_ssize_t i, whole = n - n % 16;
        for (i = 0; i < whole; i += 16) {
            __m128i a0 = JOBLITE_LOAD(src + i), a1 = JOBLITE_LOAD(src + n + i);
            __m128i a2 = JOBLITE_LOAD(src + 2 * n + i), a3 = JOBLITE_LOAD(src + 3 * n + i);
            __m128i b0 = _mm_unpacklo_epi8(a0, a1), b1 = _mm_unpackhi_epi8(a0, a1);
            __m128i b2 = _mm_unpacklo_epi8(a2, a3), b3 = _mm_unpackhi_epi8(a2, a3);
            uint8_t *d = dst + 4 * i;
            JOBLITE_STORE(d, _mm_unpacklo_epi16(b0, b2));
            JOBLITE_STORE(d + 16, _mm_unpackhi_epi16(b0, b2));
            JOBLITE_STORE(d + 32, _mm_unpacklo_epi16(b1, b3));
            JOBLITE_STORE(d + 48, _mm_unpackhi_epi16(b1, b3));
        }
        return whole;
    }
    #else
    static Py_ssize_t joblite_unshuffle8_sse2(const uint8_t *src, uint8_t *dst, Py_ssize_t n) { return 0; }
    static Py_ssize_t joblite_unshuffle4_sse2(const uint8_t *src, uint8_t *dst, Py_ssize_t n) { return 0; }
    #endif
    """
    Py_ssize_t unshuffle8_sse2 "joblite_unshuffle8_sse2"(const uint8_t *src, uint8_t *dst, Py_ssize_t n) noexcept nogil
    Py_ssize_t unshuffle4_sse2 "joblite_unshuffle4_sse2"(const uint8_t *src, uint8_t *dst, Py_ssize_t n) noexcept nogil


cdef inline void swap_bits(uint64_t *a, uint64_t *b, int shift, uint64_t mask) noexcept nogil:
    """Exchange the `mask` bits of `b` with the bits of `a` `shift` places above them."""
    cdef uint64_t t = ((a[0] >> shift) ^ b[0]) & mask
    a[0] ^= t << shift
    b[0] ^= t


cdef inline void transpose_8x8(uint64_t *x) noexcept nogil:
    """Transpose the 8x8 byte matrix whose row r is x[r] (byte c = bits 8c..8c+7)."""
    cdef int r
    for r in range(4):
        swap_bits(&x[r], &x[r + 4], 32, 0x00000000FFFFFFFFULL)
    for r in range(2):
        swap_bits(&x[r], &x[r + 2], 16, 0x0000FFFF0000FFFFULL)
        swap_bits(&x[r + 4], &x[r + 6], 16, 0x0000FFFF0000FFFFULL)
    for r in range(0, 8, 2):
        swap_bits(&x[r], &x[r + 1], 8, 0x00FF00FF00FF00FFULL)


cdef inline void transpose_4x4_twice(uint64_t *x) noexcept nogil:
    """Transpose two 4x4 byte matrices at once: the low and the high halves of x[0..3]."""
    swap_bits(&x[0], &x[2], 16, 0x0000FFFF0000FFFFULL)
    swap_bits(&x[1], &x[3], 16, 0x0000FFFF0000FFFFULL)
    swap_bits(&x[0], &x[1], 8, 0x00FF00FF00FF00FFULL)
    swap_bits(&x[2], &x[3], 8, 0x00FF00FF00FF00FFULL)


cdef inline uint64_t even_bytes(uint64_t v) noexcept nogil:
    """Bytes 0, 2, 4, 6 of `v` packed into its low 32 bits."""
    v &= 0x00FF00FF00FF00FFULL
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFFULL
    return (v | (v >> 16)) & 0x00000000FFFFFFFFULL


cdef inline uint64_t spread_bytes(uint64_t v) noexcept nogil:
    """The low 4 bytes of `v` moved to bytes 0, 2, 4, 6 (inverse of `even_bytes`)."""
    v &= 0x00000000FFFFFFFFULL
    v = (v | (v << 16)) & 0x0000FFFF0000FFFFULL
    return (v | (v << 8)) & 0x00FF00FF00FF00FFULL


cdef inline void tail(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t whole,
                      Py_ssize_t itemsize, bint forward) noexcept nogil:
    """Items [whole, n) that do not fill a group of eight, one byte at a time."""
    cdef Py_ssize_t i, j
    for j in range(itemsize):
        for i in range(whole, n):
            if forward:
                dst[j * n + i] = src[i * itemsize + j]
            else:
                dst[i * itemsize + j] = src[j * n + i]


cdef void shuffle_any(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """Shuffle `n` items of any size, by blocks of items that stay in L1 while each plane is filled."""
    cdef Py_ssize_t block = max(<Py_ssize_t>1, L1_BLOCK // itemsize)
    cdef Py_ssize_t start, stop, i, j
    cdef const uint8_t *s
    cdef uint8_t *d
    start = 0
    while start < n:
        stop = min(start + block, n)
        for j in range(itemsize):
            s = src + j
            d = dst + j * n
            for i in range(start, stop):
                d[i] = s[i * itemsize]
        start = stop


cdef void unshuffle_any(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef Py_ssize_t block = max(<Py_ssize_t>1, L1_BLOCK // itemsize)
    cdef Py_ssize_t start, stop, i, j
    cdef const uint8_t *s
    cdef uint8_t *d
    start = 0
    while start < n:
        stop = min(start + block, n)
        for j in range(itemsize):
            s = src + j * n
            d = dst + j
            for i in range(start, stop):
                d[i * itemsize] = s[i]
        start = stop


cdef void shuffle8(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef uint64_t x[8]
    cdef Py_ssize_t i, whole = n - n % 8
    cdef int r
    for i in range(0, whole, 8):
        for r in range(8):
            x[r] = load64(src + (i + r) * 8)
        transpose_8x8(x)
        for r in range(8):
            store64(dst + r * n + i, x[r])
    tail(src, dst, n, whole, 8, True)


cdef void unshuffle8(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef uint64_t x[8]
    cdef Py_ssize_t i, done = unshuffle8_sse2(src, dst, n), whole = n - n % 8
    cdef int r
    for i in range(done, whole, 8):
        for r in range(8):
            x[r] = load64(src + r * n + i)
        transpose_8x8(x)
        for r in range(8):
            store64(dst + (i + r) * 8, x[r])
    tail(src, dst, n, whole, 8, False)


cdef void shuffle4(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    # x[r] holds items i + r (low half) and i + 4 + r (high half)
    cdef uint64_t x[4]
    cdef Py_ssize_t i, whole = n - n % 8
    cdef int r
    for i in range(0, whole, 8):
        for r in range(4):
            x[r] = load32(src + (i + r) * 4) | load32(src + (i + 4 + r) * 4) << 32
        transpose_4x4_twice(x)
        for r in range(4):
            store64(dst + r * n + i, x[r])
    tail(src, dst, n, whole, 4, True)


cdef void unshuffle4(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef uint64_t x[4]
    cdef Py_ssize_t i, done = unshuffle4_sse2(src, dst, n), whole = n - n % 8
    cdef int r
    for i in range(done, whole, 8):
        for r in range(4):
            x[r] = load64(src + r * n + i)
        transpose_4x4_twice(x)
        for r in range(4):
            store32(dst + (i + r) * 4, x[r])
            store32(dst + (i + 4 + r) * 4, x[r] >> 32)
    tail(src, dst, n, whole, 4, False)


cdef void shuffle2(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef uint64_t a, b
    cdef Py_ssize_t i, whole = n - n % 8
    for i in range(0, whole, 8):
        a = load64(src + 2 * i)
        b = load64(src + 2 * i + 8)
        store64(dst + i, even_bytes(a) | even_bytes(b) << 32)
        store64(dst + n + i, even_bytes(a >> 8) | even_bytes(b >> 8) << 32)
    tail(src, dst, n, whole, 2, True)


cdef void unshuffle2(const uint8_t *src, uint8_t *dst, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef uint64_t lo, hi
    cdef Py_ssize_t i, whole = n - n % 8
    for i in range(0, whole, 8):
        lo = load64(src + i)
        hi = load64(src + n + i)
        store64(dst + 2 * i, spread_bytes(lo) | spread_bytes(hi) << 8)
        store64(dst + 2 * i + 8, spread_bytes(lo >> 32) | spread_bytes(hi >> 32) << 8)
    tail(src, dst, n, whole, 2, False)


cdef int get_bytes(object obj, Py_buffer *view, str name, bint writable) except -1:
    """Acquire `obj`'s memory as one run of bytes; the checks and messages of the pure twin."""
    mv = memoryview(obj)
    if not mv.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous buffer")
    if writable and mv.readonly:
        raise ValueError(f"{name} must be a writable buffer")
    PyObject_GetBuffer(mv, view, PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
    return 0


cdef int transpose(object src, object itemsize, object out, bint forward) except -1:
    cdef Py_buffer s, d
    cdef Py_ssize_t n, size, items
    cdef kernel_t kernel
    size_obj = _index(itemsize)
    if size_obj < 1:
        raise ValueError(f"itemsize must be >= 1, got {itemsize!r}")
    get_bytes(src, &s, "src", False)
    try:
        get_bytes(out, &d, "out", True)
        try:
            n = s.len
            if n != d.len:
                raise ValueError(f"src and out differ in length: {n} and {d.len} bytes")
            if n > 0 and <char *>s.buf < <char *>d.buf + n and <char *>d.buf < <char *>s.buf + n:
                raise ValueError("src and out overlap; they must be separate buffers")
            if n == 0:
                return 0
            # clamped to fit a Py_ssize_t: an item longer than the buffer moves no byte either
            size = n if size_obj > n else size_obj
            if size == 1:
                with nogil:
                    memcpy(d.buf, s.buf, n)
                return 0
            items = n // size
            if size == 8:
                kernel = shuffle8 if forward else unshuffle8
            elif size == 4:
                kernel = shuffle4 if forward else unshuffle4
            elif size == 2:
                kernel = shuffle2 if forward else unshuffle2
            else:
                kernel = shuffle_any if forward else unshuffle_any
            with nogil:
                kernel(<const uint8_t *>s.buf, <uint8_t *>d.buf, items, size)
                memcpy(<char *>d.buf + items * size, <char *>s.buf + items * size, n - items * size)
        finally:
            PyBuffer_Release(&d)
    finally:
        PyBuffer_Release(&s)
    return 0


def shuffle(src, itemsize, out):
    """Byte-shuffle `src` into `out`: byte ``j`` of every item goes to plane ``j``.

    With ``n = len(src) // itemsize`` whole items, ``out[j * n + i] =
    src[i * itemsize + j]``; the trailing ``len(src) % itemsize`` bytes are
    copied unchanged to the end of `out`.  ``itemsize=1`` is a copy.  Runs
    without the GIL.

    Parameters
    ----------
    src : bytes-like
        C-contiguous buffer to read, any length (bytes).
    itemsize : int
        Size of one item in bytes, >= 1.
    out : writable bytes-like
        C-contiguous buffer of the same length as `src`, not overlapping it.

    Raises
    ------
    TypeError
        If `itemsize` is not an integer, or `src` or `out` is not a buffer.
    ValueError
        If ``itemsize < 1``, a buffer is not C-contiguous, `out` is read-only,
        the lengths differ, or the buffers overlap.
    """
    transpose(src, itemsize, out, True)


def unshuffle(src, itemsize, out):
    """Invert `shuffle`: gather byte ``j`` of each item back from plane ``j``.

    ``out[i * itemsize + j] = src[j * n + i]`` with ``n = len(src) //
    itemsize``; the trailing ``len(src) % itemsize`` bytes are copied unchanged.
    Parameters and exceptions are those of `shuffle`.
    """
    transpose(src, itemsize, out, False)


def pack_chunks(sizes):
    """Frame header of a compressed block: ``u32 n_chunks`` then one ``u32`` size per chunk.

    Parameters
    ----------
    sizes : iterable of int
        Compressed size of each chunk, in order (bytes).

    Returns
    -------
    bytes
        ``4 + 4 * n_chunks`` bytes, little-endian; the chunks follow it.

    Raises
    ------
    TypeError
        If a size is not an integer.
    ValueError
        If a size or the number of chunks does not fit in a ``u32``.
    """
    cdef list values = [_index(size) for size in sizes]
    cdef Py_ssize_t count = len(values), i
    if count > U32_MAX:
        raise ValueError(f"{count} chunks do not fit the frame's u32 chunk count")
    for i in range(count):
        if not 0 <= values[i] <= U32_MAX:
            raise ValueError(f"chunk {i}: compressed size {values[i]} is outside the frame's u32 range")
    header = PyBytes_FromStringAndSize(NULL, 4 + 4 * count)
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(header)
    store32(p, <uint64_t>count)
    for i in range(count):
        store32(p + 4 + 4 * i, <uint64_t>values[i])
    return header


def unpack_chunks(data, raw_length, chunk_size):
    """Validate the frame of a compressed block; locate its chunks.

    Parameters
    ----------
    data : bytes-like
        The whole frame: header and chunks (C-contiguous).
    raw_length : int
        Length of the uncompressed block (bytes), >= 0.
    chunk_size : int
        Uncompressed length of every chunk but the last (bytes), >= 1.

    Returns
    -------
    list of (int, int)
        ``(offset, length)`` of each compressed chunk in `data` (bytes).

    Raises
    ------
    TypeError
        If `raw_length` or `chunk_size` is not an integer, or `data` is not a buffer.
    ValueError
        If ``raw_length < 0`` or ``chunk_size < 1``, `data` is not C-contiguous,
        or the frame is inconsistent: truncated, a chunk count other than
        ``ceil(raw_length / chunk_size)``, or chunk sizes that do not add up to
        the bytes that follow the header.
    """
    cdef Py_buffer view
    cdef const uint8_t *p
    cdef Py_ssize_t total, header, i, count
    cdef uint64_t declared, size_sum, offset, size
    raw = _index(raw_length)
    step = _index(chunk_size)
    if raw < 0:
        raise ValueError(f"raw_length must be >= 0, got {raw_length!r}")
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    get_bytes(data, &view, "data", False)
    try:
        p = <const uint8_t *>view.buf
        total = view.len
        if total < 4:
            raise ValueError(f"frame is truncated: {total} bytes, its chunk count needs 4")
        declared = load32(p)
        expected = -(-raw // step)
        if declared != expected:
            raise ValueError(
                f"frame declares {declared} chunks; {expected} expected for raw_length {raw} "
                f"in chunks of {step} bytes"
            )
        # the count checked against the length first, so the header size cannot overflow
        if declared > <uint64_t>((total - 4) // 4):
            raise ValueError(
                f"frame is truncated: {total} bytes, its header of {declared} chunk sizes "
                f"needs {4 + 4 * declared}"
            )
        count = <Py_ssize_t>declared
        header = 4 + 4 * count
        size_sum = 0
        for i in range(count):
            size_sum += load32(p + 4 + 4 * i)  # at most 2**32 sizes below 2**32: no overflow
        if size_sum != <uint64_t>(total - header):
            raise ValueError(
                f"frame chunk sizes add up to {size_sum} bytes, but {total - header} bytes "
                f"follow its {header}-byte header"
            )
        chunks = []
        offset = header
        for i in range(count):
            size = load32(p + 4 + 4 * i)
            chunks.append((offset, size))
            offset += size
        return chunks
    finally:
        PyBuffer_Release(&view)


# LZ4_decompress_safe of the library the lz4 package is built with: decodes a block into a
# buffer of the given capacity, returns the bytes written or a negative count on bad input.
ctypedef int (*lz4_decode_t)(const char *src, char *dst, int src_size, int dst_capacity) noexcept nogil

cdef lz4_decode_t _lz4_decode = NULL
cdef bint _lz4_looked_up = False


cdef lz4_decode_t lz4_decoder():
    """The address of ``LZ4_decompress_safe`` in the lz4 package's extension, or NULL."""
    global _lz4_decode, _lz4_looked_up
    if not _lz4_looked_up:
        try:
            import ctypes
            from lz4.block import _block
            address = ctypes.cast(ctypes.CDLL(_block.__file__).LZ4_decompress_safe, ctypes.c_void_p).value
        except (ImportError, OSError, AttributeError):
            address = None
        if address:
            _lz4_decode = <lz4_decode_t><size_t>address
        _lz4_looked_up = True   # after the address: a thread that comes meanwhile looks it up too
    return _lz4_decode


cdef kernel_t unshuffle_kernel(Py_ssize_t size) noexcept nogil:
    if size == 8:
        return unshuffle8
    if size == 4:
        return unshuffle4
    if size == 2:
        return unshuffle2
    return unshuffle_any


cdef Py_ssize_t decode_chunks(lz4_decode_t decode, const uint8_t *frame, Py_ssize_t frame_len,
                              const uint64_t *offsets, const uint64_t *lengths, Py_ssize_t first,
                              Py_ssize_t stop, Py_ssize_t step, Py_ssize_t itemsize, uint8_t *out,
                              Py_ssize_t out_len, uint8_t *scratch) noexcept nogil:
    """Decode chunks [first, stop) into their places in `out`; the first failing index, or -1."""
    cdef Py_ssize_t i, start, expected, size, items
    cdef uint8_t *target
    cdef int got
    for i in range(first, stop):
        if out_len == 0 or i > (out_len - 1) // step:   # checked before i * step can overflow
            return i
        start = i * step
        expected = min(step, out_len - start)
        if offsets[i - first] > <uint64_t>frame_len or lengths[i - first] > <uint64_t>frame_len - offsets[i - first] \
                or lengths[i - first] > 0x7FFFFFFF or expected > 0x7FFFFFFF:
            return i
        size = expected if itemsize > expected else itemsize
        target = out + start if size == 1 else scratch
        got = decode(<const char *>(frame + offsets[i - first]), <char *>target,
                     <int>lengths[i - first], <int>expected)
        if got != expected:
            return i
        if size > 1:
            items = expected // size
            unshuffle_kernel(size)(scratch, out + start, items, size)
            memcpy(out + start + items * size, scratch + items * size, expected - items * size)
    return -1


def lz4_unshuffle(data, chunks, first, stop, chunk_size, itemsize, out):
    """Decode lz4 chunks ``first`` to ``stop - 1`` of a frame and unshuffle each into its place in `out`.

    Chunk ``i`` holds ``out[i * chunk_size:(i + 1) * chunk_size]`` (the last
    one may be shorter), stored byte-shuffled by `itemsize` (1: not
    shuffled) and compressed with the lz4 block format.  Each chunk is
    decoded into a scratch buffer of one chunk (straight into `out` when not
    shuffled), then unshuffled into `out`; no per-chunk object is made, and
    the work runs without the GIL, so that threads decode disjoint ranges at
    once.  Every offset and length is checked against the buffers first.

    Parameters
    ----------
    data : bytes-like
        The frame (C-contiguous).
    chunks : list of (int, int)
        ``(offset, length)`` of every chunk in `data`, from `unpack_chunks`.
    first, stop : int
        The range of chunk indices to decode, ``0 <= first <= stop <= len(chunks)``.
    chunk_size : int
        Uncompressed length of every chunk but the last (bytes), >= 1.
    itemsize : int
        Shuffle item size (bytes), >= 1.
    out : writable bytes-like
        The whole destination, C-contiguous.

    Returns
    -------
    int
        -1 when every chunk decoded to its expected length; otherwise the
        index of the first chunk of the range that did not (corrupt data, a
        wrong length, or a chunk out of bounds), whose later chunks are left
        undecoded.  The caller reports it with the codec's own error.

    Raises
    ------
    TypeError
        If an argument is not an integer or not a buffer.
    ValueError
        If the range, `chunk_size` or `itemsize` is out of range, a buffer is
        not C-contiguous, or `out` is read-only.
    """
    cdef Py_buffer s, d
    cdef Py_ssize_t lo = _index(first), hi = _index(stop), step = _index(chunk_size)
    cdef Py_ssize_t size = _index(itemsize), i, failed = -1
    cdef uint64_t *offsets = NULL
    cdef uint8_t *scratch = NULL
    cdef lz4_decode_t decode
    if not 0 <= lo <= hi <= len(chunks):
        raise ValueError(f"chunk range {first!r} to {stop!r} is outside the {len(chunks)} chunks")
    if step < 1 or size < 1:
        raise ValueError(f"chunk_size and itemsize must be >= 1, got {chunk_size!r} and {itemsize!r}")
    if lo == hi:
        return -1
    decode = lz4_decoder()
    if decode == NULL:
        from .._pure._codec import lz4_unshuffle as by_lz4_package   # the same results, slower
        return by_lz4_package(data, chunks, lo, hi, step, size, out)
    get_bytes(data, &s, "data", False)
    try:
        get_bytes(out, &d, "out", True)
        try:
            offsets = <uint64_t *>PyMem_Malloc(2 * (hi - lo) * sizeof(uint64_t))
            if offsets == NULL:
                raise MemoryError()
            for i in range(lo, hi):
                offset, length = chunks[i]
                if not (0 <= offset <= s.len and 0 <= length <= s.len):
                    return i
                offsets[i - lo] = offset
                offsets[hi - lo + i - lo] = length
            if size > 1:
                scratch = <uint8_t *>PyMem_RawMalloc(min(step, d.len) if d.len else 1)
                if scratch == NULL:
                    raise MemoryError()
            with nogil:
                failed = decode_chunks(decode, <const uint8_t *>s.buf, s.len, offsets, offsets + (hi - lo),
                                       lo, hi, step, size, <uint8_t *>d.buf, d.len, scratch)
            return failed
        finally:
            PyMem_RawFree(scratch)
            PyMem_Free(offsets)
            PyBuffer_Release(&d)
    finally:
        PyBuffer_Release(&s)


cdef extern from "blosc.h" nogil:
    int blosc_decompress_ctx(const void *src, void *dest, size_t destsize, int numinternalthreads)
    int BLOSC_MAX_OVERHEAD

cdef extern from *:
    """
    #define XXH_INLINE_ALL
    #include "xxhash.h"
    #ifdef JOBLITE_XXH3_DISPATCH
    /* XXH3_64bits: the AVX2 or AVX-512 loop on CPUs that have them (the inline one is SSE2's);
       a chunk's checksum took 1.4 times as long with SSE2's as with AVX2's */
    #include "xxh_x86dispatch.h"
    #endif
    #include <errno.h>
    #include <unistd.h>

    /* Bytes read at `offset`: `len`, fewer at the end of the file, or -1 (errno set). */
    static long long joblite_pread_all(int fd, uint8_t *buf, long long len, long long offset) {
        long long done = 0;
        while (done < len) {
            ssize_t got = pread(fd, buf + done, (size_t)(len - done), (off_t)(offset + done));
            if (got < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            if (got == 0) break;
            done += got;
        }
        return done;
    }
    #define JOBLITE_TAKE(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)
    #define JOBLITE_READ(p) __atomic_load_n((p), __ATOMIC_RELAXED)
    #define JOBLITE_SET(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
    static void joblite_lower(long long *p, long long v) {
        long long seen = __atomic_load_n(p, __ATOMIC_RELAXED);
        while (v < seen && !__atomic_compare_exchange_n(p, &seen, v, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    }

    /* The kernels' own threads, as c-blosc has: a job runs `run(arg)` in up to `wanted` of them,
       without the GIL and without any Python step, so that a thread starts on a job as soon as it
       is woken and the caller waits for none of their Python (a pool thread of `concurrent.futures`
       takes the GIL after the loop, and the caller waits for it).  A thread that takes a job counts
       itself in `*active` under the pool's lock, and out (its last touch of the job) once done. */
    #include <pthread.h>
    #include <signal.h>

    typedef struct joblite_job {
        void (*run)(void *);
        void *arg;
        long long *active;
        int wanted;                   /* threads still to take it; > 0 while it is queued */
        int submitted;
        unsigned long generation;     /* joblite_pool_generation when it was queued */
        struct joblite_job *next;
    } joblite_job;

    static pthread_mutex_t joblite_pool_lock = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t joblite_pool_work = PTHREAD_COND_INITIALIZER;  /* a job was queued */
    static pthread_cond_t joblite_pool_done = PTHREAD_COND_INITIALIZER;  /* a thread left a job */
    static joblite_job *joblite_pool_head = NULL, *joblite_pool_tail = NULL;
    static int joblite_pool_threads = 0, joblite_pool_registered = 0;
    static unsigned long joblite_pool_generation = 0;  /* forks so far: a job of an earlier one has no thread here */
    static unsigned long joblite_pool_queued = 0;      /* jobs queued so far (read without the lock by waiting threads) */
    static struct timespec joblite_pool_wait_until;    /* idle threads spin, not sleep, until then (joblite_pool_wake) */
    /* A woken thread's wait for the job (ns).  This VM took 55 us to wake one; a 16 MiB load's job
       came 0.15 to 0.24 ms after the wake (10th to 90th percentile) when the machine was slow, and
       the 8% of loads past an earlier 0.25 ms paid a second wake. */
    #define JOBLITE_WAKE_NS 500000L

    #if defined(__x86_64__) || defined(__i386__)
    #define JOBLITE_RELAX() __builtin_ia32_pause()
    #else
    #define JOBLITE_RELAX() ((void)0)
    #endif
    #include <time.h>
    static int joblite_before(const struct timespec *deadline) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return now.tv_sec < deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec < deadline->tv_nsec);
    }

    static void joblite_pool_after_fork(void) {  /* the child has none of the threads, nor their jobs */
        pthread_mutex_init(&joblite_pool_lock, NULL);
        pthread_cond_init(&joblite_pool_work, NULL);
        pthread_cond_init(&joblite_pool_done, NULL);
        joblite_pool_head = joblite_pool_tail = NULL;
        joblite_pool_threads = 0;
        joblite_pool_generation++;
        joblite_pool_wait_until.tv_sec = joblite_pool_wait_until.tv_nsec = 0;
    }

    /* Under the pool's lock: no job is queued; wait for one, spinning (the lock released) while
       joblite_pool_wake asks for it, else sleeping. */
    static void joblite_pool_idle(void) {
        struct timespec deadline = joblite_pool_wait_until;
        unsigned long seen = joblite_pool_queued;
        int spins;
        if (!joblite_before(&deadline)) {
            pthread_cond_wait(&joblite_pool_work, &joblite_pool_lock);
            return;
        }
        pthread_mutex_unlock(&joblite_pool_lock);
        for (spins = 1; __atomic_load_n(&joblite_pool_queued, __ATOMIC_ACQUIRE) == seen; spins++) {
            JOBLITE_RELAX();
            if (spins % 64 == 0 && !joblite_before(&deadline)) break;
        }
        pthread_mutex_lock(&joblite_pool_lock);
    }

    static void *joblite_pool_thread(void *unused) {
        joblite_job *job;
        void (*run)(void *);
        void *arg;
        long long *active;
        (void)unused;
        pthread_mutex_lock(&joblite_pool_lock);
        for (;;) {
            while (!joblite_pool_head) joblite_pool_idle();
            job = joblite_pool_head;
            if (--job->wanted == 0) {
                joblite_pool_head = job->next;
                if (!joblite_pool_head) joblite_pool_tail = NULL;
            }
            run = job->run;
            arg = job->arg;
            active = job->active;
            __atomic_fetch_add(active, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&joblite_pool_lock);
            run(arg);
            pthread_mutex_lock(&joblite_pool_lock);
            __atomic_fetch_sub(active, 1, __ATOMIC_SEQ_CST);
            pthread_cond_broadcast(&joblite_pool_done);
        }
        return NULL;
    }

    /* Under the pool's lock: start threads up to `threads` (all signals blocked in them: Python's
       handlers run in its own threads); how many of them there are now, at most `threads`. */
    static int joblite_pool_grow(int threads) {
        pthread_t thread;
        pthread_attr_t attr;
        sigset_t all, old;
        if (!joblite_pool_registered && pthread_atfork(NULL, NULL, joblite_pool_after_fork) == 0)
            joblite_pool_registered = 1;
        if (joblite_pool_threads < threads && joblite_pool_registered && pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            while (joblite_pool_threads < threads
                   && pthread_create(&thread, &attr, joblite_pool_thread, NULL) == 0)
                joblite_pool_threads++;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            pthread_attr_destroy(&attr);
        }
        return threads < joblite_pool_threads ? threads : joblite_pool_threads;
    }

    /* Wake `threads` threads, starting them if needed, to wait a while for a job spinning: one
       queued meanwhile starts at once, not after the tens of microseconds a sleeping thread
       takes to wake. */
    static void joblite_pool_wake(int threads) {
        int k;
        pthread_mutex_lock(&joblite_pool_lock);
        threads = joblite_pool_grow(threads);
        clock_gettime(CLOCK_MONOTONIC, &joblite_pool_wait_until);
        joblite_pool_wait_until.tv_nsec += JOBLITE_WAKE_NS;
        if (joblite_pool_wait_until.tv_nsec >= 1000000000L) {
            joblite_pool_wait_until.tv_sec++;
            joblite_pool_wait_until.tv_nsec -= 1000000000L;
        }
        for (k = 0; k < threads; k++) pthread_cond_signal(&joblite_pool_work);
        pthread_mutex_unlock(&joblite_pool_lock);
    }

    /* Queue `job` for `threads` threads, starting threads up to that many.  Returns how many
       threads may take it; 0 when none could start.  At most once per job. */
    static int joblite_pool_submit(joblite_job *job, void (*run)(void *), void *arg, long long *active,
                                   int threads) {
        int k;
        pthread_mutex_lock(&joblite_pool_lock);
        threads = joblite_pool_grow(threads);
        job->run = run;
        job->arg = arg;
        job->active = active;
        job->submitted = 1;
        job->generation = joblite_pool_generation;
        job->wanted = threads > 0 ? threads : 0;
        job->next = NULL;
        if (threads > 0) {
            if (joblite_pool_tail) joblite_pool_tail->next = job;
            else joblite_pool_head = job;
            joblite_pool_tail = job;
            __atomic_store_n(&joblite_pool_queued, joblite_pool_queued + 1, __ATOMIC_RELEASE);
            for (k = 0; k < threads; k++) pthread_cond_signal(&joblite_pool_work);
        }
        pthread_mutex_unlock(&joblite_pool_lock);
        return threads;
    }

    #define JOBLITE_SPINS 4096  /* about 0.2 ms here: the other thread's last chunk, typically */

    /* Take `job` back from the queue if no thread took it yet, then wait until no thread runs it:
       spinning a little first (the caller's core has nothing else to do, and a sleeping caller
       takes tens of microseconds to wake), then sleeping. */
    static void joblite_pool_join(joblite_job *job) {
        joblite_job *previous = NULL, *current;
        int spins;
        if (!job->submitted) return;
        pthread_mutex_lock(&joblite_pool_lock);
        if (job->generation != joblite_pool_generation) {  /* queued before a fork: no thread of this process has it */
            pthread_mutex_unlock(&joblite_pool_lock);
            return;
        }
        if (job->wanted > 0) {
            for (current = joblite_pool_head; current != job; current = current->next) previous = current;
            if (previous) previous->next = job->next;
            else joblite_pool_head = job->next;
            if (joblite_pool_tail == job) joblite_pool_tail = previous;
            job->wanted = 0;
        }
        pthread_mutex_unlock(&joblite_pool_lock);
        for (spins = 0; spins < JOBLITE_SPINS && __atomic_load_n(job->active, __ATOMIC_SEQ_CST); spins++)
            JOBLITE_RELAX();
        if (!__atomic_load_n(job->active, __ATOMIC_SEQ_CST)) return;
        pthread_mutex_lock(&joblite_pool_lock);
        while (__atomic_load_n(job->active, __ATOMIC_SEQ_CST))
            pthread_cond_wait(&joblite_pool_done, &joblite_pool_lock);
        pthread_mutex_unlock(&joblite_pool_lock);
    }
    """
    uint64_t XXH3_64bits(const void *data, size_t length) noexcept nogil
    long long pread_all "joblite_pread_all"(int fd, uint8_t *buf, long long length, long long offset) noexcept nogil
    long long take "JOBLITE_TAKE"(long long *counter) noexcept nogil
    long long read_now "JOBLITE_READ"(long long *value) noexcept nogil
    void store "JOBLITE_SET"(long long *value, long long to) noexcept nogil
    void lower "joblite_lower"(long long *value, long long to) noexcept nogil
    ctypedef struct joblite_job:
        int submitted
    int pool_submit "joblite_pool_submit"(joblite_job *job, void (*run)(void *) noexcept nogil, void *arg,
                                          long long *active, int threads) noexcept nogil
    void pool_join "joblite_pool_join"(joblite_job *job) noexcept nogil
    void pool_wake "joblite_pool_wake"(int threads) noexcept nogil

# c-blosc 1.x buffer header (blosc.h): the top 3 bits of byte 2 name the codec (BLOSC_CODES).  The
# checks of the kernels' scalar arguments are the pure twin's, so that both raise alike.
from joblite._pure._codec import (
    BLOSC_CODES,
    _blosc_decoder_arguments,
    _blosc_encoder_arguments,
    _blosc_file_arguments,
    _pool_threads,
)

cdef enum:
    BLOSC_HEADER = 16


def wake_threads(threads):
    """Wake `threads` threads of the kernels' pool, starting them if needed, for a `start` coming soon.

    A woken thread waits for a job spinning, for at most 0.5 ms, instead
    of sleeping: a decoder or an encoder started meanwhile gets it at once,
    not after the tens of microseconds that a sleeping thread takes to
    wake (55 us on the machine of the persistence guide's figures).  Call
    it when a large ``'blosc-*'`` block is known to come, before the Python
    work that precedes its `start`.

    Parameters
    ----------
    threads : int
        0 to 63, as `BloscDecoder.start`.

    Raises
    ------
    TypeError
        If `threads` is not an integer.
    ValueError
        If `threads` is out of range.
    """
    cdef int wanted = _pool_threads(threads)
    with nogil:
        pool_wake(wanted)


cdef int start_job(joblite_job *job, void (*run)(void *) noexcept nogil, void *state, long long *active,
                   threads, what) except -1:
    """`start` of both kernels: `threads` of the pool on `run(state)`, once per `job`; how many may take part."""
    cdef int wanted = _pool_threads(threads)
    if job.submitted:
        raise ValueError(f"the {what} has started already")
    with nogil:
        wanted = pool_submit(job, run, state, active, wanted)
    return wanted


ctypedef struct decoder_state:
    uint8_t *frame
    uint8_t *out
    Py_ssize_t frame_len, out_len, count, step
    uint64_t *offsets
    uint64_t *lengths
    uint64_t *digests
    int fd, code
    long long base, next_chunk, failed, active


cdef long long decode_taken(decoder_state *d) noexcept nogil:
    """Decode the chunks not taken yet until none is left, or one fails: -1, or the chunk that failed."""
    cdef long long i, expected, failed = -1
    cdef uint8_t *src
    cdef uint8_t *scratch = NULL  # this thread's chunk read from the file, reused for the next
    cdef uint64_t capacity = 0
    while True:
        i = take(&d.next_chunk)
        if i >= d.count or i > read_now(&d.failed):
            break
        src = d.frame + d.offsets[i]
        if d.fd >= 0 and d.lengths[i] <= capacity:
            src = scratch
        elif d.fd >= 0:
            free(scratch)
            scratch = <uint8_t *>malloc(d.lengths[i] + 1)
            capacity = d.lengths[i] if scratch != NULL else 0
            src = scratch if scratch != NULL else src  # else read into the frame
        expected = min(d.step, d.out_len - i * d.step)
        if not (
            (d.fd < 0 or pread_all(d.fd, src, d.lengths[i], d.base + d.offsets[i]) == <long long>d.lengths[i])
            and (d.digests == NULL or XXH3_64bits(src, d.lengths[i]) == d.digests[i])
            and d.lengths[i] >= BLOSC_HEADER
            and load32(src + 12) == d.lengths[i]
            and load32(src + 4) == <uint64_t>expected
            and src[2] >> 5 == d.code
            and blosc_decompress_ctx(src, d.out + i * d.step, <size_t>expected, 1) == expected
        ):
            lower(&d.failed, i)
            failed = i
            break
    free(scratch)
    return failed


cdef void decode_job(void *state) noexcept nogil:
    decode_taken(<decoder_state *>state)


cdef class BloscDecoder:
    """Decodes the c-blosc chunks of a frame into their places in `out`: threads of the kernels' pool, then the caller.

    Chunk ``i`` holds ``out[i * chunk_size:(i + 1) * chunk_size]`` (the last
    one may be shorter) as one c-blosc 1.x buffer of codec `cname`.  The
    threads that `start` puts to work, and then the thread that calls
    `run`, each take the next chunk not taken (a shared counter, as
    c-blosc's own threads share a buffer's blocks), read it from `fd` when
    one is given, check it against its ``xxh3_64`` checksum, check its
    16-byte Blosc header against the frame (c-blosc trusts the lengths a
    header gives) and decode it with ``blosc_decompress_ctx``, all without
    the GIL.  The started threads are this module's own (POSIX threads
    that never run Python, as c-blosc's pool): they start as soon as they
    are woken, and `run` waits for them without the GIL.  A chunk read from
    `fd` goes to a buffer of the thread's, reused for its next chunks, not
    to `frame`: the memory of `frame` past its chunk table is not touched,
    so a frame allocated for the read costs no page faults.  Here through
    c-blosc compiled into this module (the sources of ``vendor/c-blosc``);
    the pure twin calls the ``blosc`` package, one chunk at a time, from
    Python threads.

    Parameters
    ----------
    frame : bytes-like
        The frame (C-contiguous), or with `fd` a writable buffer of its
        length that holds its chunk table (a chunk is read into its place
        there only when the thread's buffer cannot be allocated).
    chunks : list of (int, int)
        ``(offset, length)`` of each chunk in `frame` (bytes), from
        `unpack_chunks`.
    chunk_size : int
        Uncompressed length of every chunk but the last (bytes), >= 1.
    out : writable bytes-like
        The whole destination, C-contiguous: ``len(chunks)`` chunks.
    cname : {'lz4', 'zstd'}
        The codec every chunk's Blosc header must name.
    checksums : sequence of int, optional
        The ``xxh3_64`` digest of each compressed chunk; None: no check.
    fd : int, default -1
        A file descriptor to read each chunk from, just before it is
        checked, at ``offset + chunk offset``; -1: `frame` holds the chunks.
    offset : int, default 0
        Where the frame starts in the file of `fd` (bytes).

    Raises
    ------
    TypeError
        If an argument is not an integer, a buffer or a sequence.
    ValueError
        If `chunk_size` < 1, `cname` is not a Blosc codec of joblite, a
        buffer is not C-contiguous or must be writable and is not, the
        number of chunks does not fit `out`, a chunk lies outside `frame`,
        `checksums` does not hold one digest per chunk, or `offset` < 0.
    """

    cdef decoder_state st
    cdef joblite_job job
    cdef Py_buffer frame_view, out_view
    cdef bint have_frame, have_out

    def __cinit__(self, frame, chunks, chunk_size, out, cname, checksums=None, fd=-1, offset=0):
        cdef Py_ssize_t i, count
        self.st.step, self.st.code, self.st.fd, self.st.base = _blosc_decoder_arguments(chunk_size, cname, fd, offset)
        get_bytes(frame, &self.frame_view, "frame", self.st.fd >= 0)
        self.have_frame = True
        get_bytes(out, &self.out_view, "out", True)
        self.have_out = True
        self.st.frame, self.st.frame_len = <uint8_t *>self.frame_view.buf, self.frame_view.len
        self.st.out, self.st.out_len = <uint8_t *>self.out_view.buf, self.out_view.len
        count = len(chunks)
        if count != self.st.out_len // self.st.step + (self.st.out_len % self.st.step != 0):
            raise ValueError(f"{count} chunks of {self.st.step} bytes cannot fill out's {self.st.out_len} bytes")
        if checksums is not None and len(checksums) != count:
            raise ValueError(f"{len(checksums)} chunk checksums for {count} chunks")
        self.st.offsets = <uint64_t *>PyMem_Malloc(3 * max(count, 1) * sizeof(uint64_t))
        if self.st.offsets == NULL:
            raise MemoryError()
        self.st.lengths = self.st.offsets + count
        self.st.digests = self.st.lengths + count if checksums is not None else NULL
        for i in range(count):
            start, length = chunks[i]
            if not (0 <= start <= self.st.frame_len and 0 <= length <= self.st.frame_len - start):
                raise ValueError(f"chunk {i} of {count} lies outside the frame of {self.st.frame_len} bytes")
            self.st.offsets[i] = start
            self.st.lengths[i] = length
            if checksums is not None:
                self.st.digests[i] = checksums[i]
        self.st.count = count
        self.st.failed = count  # no chunk failed

    def __dealloc__(self):
        with nogil:  # no thread of the pool may be left on this decoder's memory
            store(&self.st.next_chunk, self.st.count)
            pool_join(&self.job)
        PyMem_Free(self.st.offsets)
        if self.have_out:
            PyBuffer_Release(&self.out_view)
        if self.have_frame:
            PyBuffer_Release(&self.frame_view)

    def start(self, threads):
        """Put `threads` threads of the kernels' pool to decoding now (at most once).

        Parameters
        ----------
        threads : int
            0 to 63.

        Returns
        -------
        int
            How many threads may take part: `threads`, fewer if the pool
            could not start that many.

        Raises
        ------
        ValueError
            If `threads` is out of range, or the decoder has started already.
        """
        return start_job(&self.job, decode_job, &self.st, &self.st.active, threads, "decoder")

    def run(self):
        """Decode the chunks not taken yet, then wait (without the GIL) until the started threads are done.

        Returns
        -------
        int
            -1, or the index of the first chunk that failed in any thread
            (not read whole, a checksum mismatch, a header that does not
            match the frame, or a chunk c-blosc cannot decode to its
            length).  No thread takes a chunk after one that failed, so
            every chunk before it is decoded.  The caller reports the
            failure with the error of the codec's own path.
        """
        with nogil:
            decode_taken(&self.st)
            pool_join(&self.job)
        return -1 if self.st.failed >= self.st.count else self.st.failed

    def cancel(self):
        """Stop the started threads (no chunk is taken after this; each finishes the one it holds) and wait for them."""
        with nogil:
            store(&self.st.next_chunk, self.st.count)
            pool_join(&self.job)


cdef extern from *:
    """
    #include <pthread.h>
    #include <stdlib.h>

    /* The state that the threads of one BloscEncoder share; every field under `lock`. */
    typedef struct {
        const uint8_t *src;
        long long nbytes, step, count, window, base;
        int typesize, clevel, doshuffle, fd, blocksize;
        const char *compressor;
        uint8_t **chunks;        /* compressed chunks not written yet (NULL: none) */
        long long *sizes;
        uint64_t *digests;
        pthread_mutex_t lock;
        pthread_cond_t room;     /* a chunk was written, or one failed */
        long long next;          /* the next chunk to take */
        long long placed;        /* chunks given a place (written, or being written) */
        long long position;      /* bytes of the chunks placed */
        long long written;       /* chunks written */
        int writing;             /* a thread is writing placed chunks */
        long long failed;        /* the first chunk that failed; count: none */
        int error;               /* its errno; 0: c-blosc could not compress it */
        int ready;               /* the lock and the condition are initialized */
        long long active;        /* threads of the pool on this encoder (joblite_pool_thread) */
    } joblite_encoder;

    static int joblite_encoder_init(joblite_encoder *e) {
        long long n = e->count > 0 ? e->count : 1;
        e->chunks = (uint8_t **)calloc((size_t)n, sizeof(uint8_t *));
        e->sizes = (long long *)calloc((size_t)n, sizeof(long long));
        e->digests = (uint64_t *)calloc((size_t)n, sizeof(uint64_t));
        if (!e->chunks || !e->sizes || !e->digests) return -1;
        if (pthread_mutex_init(&e->lock, NULL)) return -1;
        if (pthread_cond_init(&e->room, NULL)) { pthread_mutex_destroy(&e->lock); return -1; }
        e->failed = e->count;
        e->ready = 1;
        return 0;
    }

    static void joblite_encoder_free(joblite_encoder *e) {
        long long i;
        if (e->chunks) for (i = 0; i < e->count; i++) free(e->chunks[i]);
        free(e->chunks);
        free(e->sizes);
        free(e->digests);
        if (e->ready) {
            pthread_cond_destroy(&e->room);
            pthread_mutex_destroy(&e->lock);
        }
    }

    static int joblite_pwrite_all(int fd, const uint8_t *buf, long long len, long long offset) {
        long long done = 0;
        while (done < len) {
            ssize_t put = pwrite(fd, buf + done, (size_t)(len - done), (off_t)(offset + done));
            if (put < 0) {
                if (errno == EINTR) continue;
                return errno;
            }
            if (put == 0) return EIO;
            done += put;
        }
        return 0;
    }

    /* Under the lock: record chunk `i` as failed with `error` if it is the first. */
    static void joblite_encoder_fail(joblite_encoder *e, long long i, int error) {
        if (i < e->failed) {
            e->failed = i;
            e->error = error;
        }
        pthread_cond_broadcast(&e->room);
    }

    /* Under the lock: whether a thread may write the next chunk to place (the file is known). */
    static int joblite_encoder_can_write(joblite_encoder *e) {
        return !e->writing && e->fd >= 0 && e->failed == e->count && e->placed < e->count && e->chunks[e->placed];
    }

    /* Compress the chunks not taken yet; the thread that finds the next chunks to place compressed
       (and the file known) writes them at their places.  Returns -1, or the chunk this thread
       failed on. */
    static long long joblite_encode(joblite_encoder *e) {
        long long mine = -1, i, k, start, length, at;
        int size, error;
        uint64_t digest;
        uint8_t *chunk;
        pthread_mutex_lock(&e->lock);
        for (;;) {
            while (!joblite_encoder_can_write(e) && e->next < e->count && e->failed == e->count
                   && e->next >= e->written + e->window)
                pthread_cond_wait(&e->room, &e->lock);
            if (joblite_encoder_can_write(e)) {
                e->writing = 1;
                while (e->placed < e->count && e->chunks[e->placed] && e->failed == e->count) {
                    k = e->placed++;
                    at = e->base + e->position;
                    e->position += e->sizes[k];
                    pthread_mutex_unlock(&e->lock);
                    error = joblite_pwrite_all(e->fd, e->chunks[k], e->sizes[k], at);
                    pthread_mutex_lock(&e->lock);
                    free(e->chunks[k]);
                    e->chunks[k] = NULL;
                    if (error) {
                        joblite_encoder_fail(e, k, error);
                        mine = k;
                        break;
                    }
                    e->written = k + 1;
                    pthread_cond_broadcast(&e->room);
                }
                e->writing = 0;
                if (mine >= 0) break;
                continue;
            }
            if (e->next >= e->count || e->failed < e->count) break;
            i = e->next++;
            pthread_mutex_unlock(&e->lock);
            start = i * e->step;
            length = e->nbytes - start < e->step ? e->nbytes - start : e->step;
            chunk = (uint8_t *)malloc((size_t)length + BLOSC_MAX_OVERHEAD);
            size = chunk ? blosc_compress_ctx(e->clevel, e->doshuffle, (size_t)e->typesize, (size_t)length,
                                              e->src + start, chunk, (size_t)length + BLOSC_MAX_OVERHEAD,
                                              e->compressor, (size_t)e->blocksize, 1) : -1;
            digest = size > 0 ? XXH3_64bits(chunk, (size_t)size) : 0;  /* while it is in this thread's cache */
            pthread_mutex_lock(&e->lock);
            if (size <= 0) {
                free(chunk);
                joblite_encoder_fail(e, i, chunk ? 0 : ENOMEM);
                mine = i;
                break;
            }
            e->chunks[i] = chunk;
            e->sizes[i] = size;
            e->digests[i] = digest;
        }
        pthread_mutex_unlock(&e->lock);
        return mine;
    }

    static void joblite_encode_job(void *e) {
        joblite_encode((joblite_encoder *)e);
    }

    /* Give the file of an encoder made without one; 0, or -1 if it had one. */
    static int joblite_encoder_set_file(joblite_encoder *e, int fd, long long base) {
        int had;
        pthread_mutex_lock(&e->lock);
        had = e->fd >= 0;
        if (!had) {
            e->fd = fd;
            e->base = base;
            pthread_cond_broadcast(&e->room);
        }
        pthread_mutex_unlock(&e->lock);
        return had ? -1 : 0;
    }

    /* Stop the threads taking chunks: a failure (chunk 0, ECANCELED) unless one is recorded. */
    static void joblite_encoder_cancel(joblite_encoder *e) {
        pthread_mutex_lock(&e->lock);
        if (e->failed == e->count && e->count > 0) {
            e->failed = 0;
            e->error = ECANCELED;
        }
        pthread_cond_broadcast(&e->room);
        pthread_mutex_unlock(&e->lock);
    }
    """
    ctypedef struct joblite_encoder:
        const uint8_t *src
        long long nbytes, step, count, window, base
        int typesize, clevel, doshuffle, fd, blocksize
        const char *compressor
        long long *sizes
        uint64_t *digests
        long long written
        long long failed
        int error
        long long active
    int encoder_init "joblite_encoder_init"(joblite_encoder *e) noexcept nogil
    void encode_job "joblite_encode_job"(void *e) noexcept nogil
    void encoder_free "joblite_encoder_free"(joblite_encoder *e) noexcept nogil
    long long encode "joblite_encode"(joblite_encoder *e) noexcept nogil
    int encoder_set_file "joblite_encoder_set_file"(joblite_encoder *e, int fd, long long base) noexcept nogil
    void encoder_cancel "joblite_encoder_cancel"(joblite_encoder *e) noexcept nogil


cdef class BloscEncoder:
    """Compresses a block into c-blosc chunks and writes them to a file: threads of the kernels' pool, then the caller.

    Chunk ``i`` is ``data[i * chunk_size:(i + 1) * chunk_size]`` (the last one
    may be shorter), compressed as one c-blosc 1.x buffer: Blosc's shuffle
    (byte, or bit with `bitshuffle`) by `itemsize`, then `cname` at `level`,
    in blocks of `blocksize` bytes, one thread per buffer.  Each thread
    (those that `start` puts to work, threads of this module's own pool that
    never run Python, then the one that calls `run`) takes the next chunk
    not taken (a shared counter),
    compresses it and computes its ``xxh3_64`` digest; once every chunk
    before it is compressed, a chunk's place is known, and a thread that
    finds chunks placed but not written writes them with ``pwrite``, the
    first at `offset` of `fd` and each after the one before.  No thread
    takes a chunk `window` chunks or more past the first one not written,
    which bounds the compressed chunks held.  An encoder made without a file
    (``fd=-1``) compresses and holds its first `window` chunks until
    `set_file` gives one, so that compression can start before the file is
    open.  Here through c-blosc compiled into this module, without the GIL;
    the pure twin calls the ``blosc`` package and gives the same bytes when
    the package carries the same c-blosc (``vendor/README.md``).

    Parameters
    ----------
    data : bytes-like
        The block, C-contiguous; it must not change while `run` works.
    chunk_size : int
        Uncompressed length of every chunk but the last (bytes), >= 1.
    itemsize : int
        Blosc's type size (bytes), 1 to 255.
    cname : {'lz4', 'zstd'}
        Blosc's codec.
    bitshuffle : bool
        Bit shuffle instead of byte shuffle.
    level : int
        Blosc's ``clevel``, 0 to 9.
    fd : int, default -1
        A file descriptor open for writing, or -1: given later by `set_file`.
    offset : int, default 0
        Where the first chunk goes in the file (bytes).
    window : int, default 1
        The bound above (chunks), >= 1.
    blocksize : int, default 0
        c-blosc's ``blocksize`` argument (bytes), 0 to 2**31 - 1: 0 lets
        c-blosc choose (``joblite.compressors._Blosc.blocksize`` gives
        joblite's).

    Raises
    ------
    TypeError
        If an argument is not an integer or `data` is not a buffer.
    ValueError
        If an argument is out of range, or `data` is not C-contiguous.
    MemoryError
        If the chunk table cannot be allocated.
    """

    cdef joblite_encoder state
    cdef joblite_job job
    cdef Py_buffer data_view
    cdef bint have_data
    cdef bytes compressor

    def __cinit__(self, data, chunk_size, itemsize, cname, bitshuffle, level, fd=-1, offset=0, window=1, blocksize=0):
        cdef Py_ssize_t step, size, clevel, descriptor, base, ahead, block
        step, size, clevel, descriptor, base, ahead, block = _blosc_encoder_arguments(
            chunk_size, itemsize, cname, level, fd, offset, window, blocksize
        )
        get_bytes(data, &self.data_view, "data", False)
        self.have_data = True
        self.compressor = cname.encode("ascii")
        self.state.src = <const uint8_t *>self.data_view.buf
        self.state.nbytes = self.data_view.len
        self.state.step = step
        self.state.count = self.data_view.len // step + (self.data_view.len % step != 0)
        self.state.window = ahead
        self.state.base = base
        self.state.typesize = <int>size
        self.state.clevel = <int>clevel
        self.state.doshuffle = 2 if bitshuffle else 1  # BLOSC_BITSHUFFLE, BLOSC_SHUFFLE
        self.state.fd = <int>descriptor
        self.state.blocksize = <int>block
        self.state.compressor = self.compressor
        if encoder_init(&self.state) != 0:
            raise MemoryError()

    def __dealloc__(self):
        if self.job.submitted:  # no thread of the pool may be left on this encoder's memory
            with nogil:
                encoder_cancel(&self.state)
                pool_join(&self.job)
        encoder_free(&self.state)
        if self.have_data:
            PyBuffer_Release(&self.data_view)

    def start(self, threads):
        """Put `threads` threads of the kernels' pool to compressing now (at most once), as `BloscDecoder.start`.

        Without a file, they hold what they compress (see the class); with
        one, they write it.
        """
        return start_job(&self.job, encode_job, &self.state, &self.state.active, threads, "encoder")

    def run(self):
        """Compress the chunks not taken yet and write those placed, then wait (without the GIL) for the started threads.

        Without a file, the calling thread too holds what it compresses, and
        waits for a file (`set_file` from another thread) or a cancel once
        the window is full.

        Returns
        -------
        int
            -1, or the index of the first chunk that failed in any thread
            (c-blosc could not compress it, or its write failed: see
            `failure`).  No thread takes a chunk after one failed.
        """
        with nogil:
            encode(&self.state)
            pool_join(&self.job)
        return -1 if self.state.failed >= self.state.count else self.state.failed

    def set_file(self, fd, offset):
        """Give the file of an encoder made with ``fd=-1``: the threads waiting for it go on.

        Parameters
        ----------
        fd : int
            A file descriptor open for writing.
        offset : int
            Where the first chunk goes in it (bytes).

        Raises
        ------
        TypeError
            If an argument is not an integer.
        ValueError
            If `fd` or `offset` is negative, or the encoder has a file.
        """
        cdef Py_ssize_t descriptor, base
        cdef int had
        descriptor, base = _blosc_file_arguments(fd, offset)
        with nogil:
            had = encoder_set_file(&self.state, <int>descriptor, base)
        if had:
            raise ValueError("the encoder has a file already")

    def cancel(self):
        """Stop every thread taking chunks and wait for the started ones (`failure` gives ``(0, errno.ECANCELED)`` if nothing failed before)."""
        with nogil:
            encoder_cancel(&self.state)
            pool_join(&self.job)

    def failure(self):
        """``(index, errno)`` of the first chunk that failed (errno 0: not compressed), or None."""
        if self.state.failed == self.state.count:
            return None
        return self.state.failed, self.state.error

    def result(self):
        """The compressed size (bytes) and the ``xxh3_64`` digest of each chunk, once every chunk is written.

        Raises
        ------
        ValueError
            If a chunk failed, or chunks are not written yet.
        """
        cdef long long i
        if self.failure() is not None:
            raise ValueError(f"chunk {self.state.failed} of {self.state.count} failed")
        if self.state.written < self.state.count:
            raise ValueError(f"{self.state.count - self.state.written} of {self.state.count} chunks are not written")
        return (
            [self.state.sizes[i] for i in range(self.state.count)],
            [self.state.digests[i] for i in range(self.state.count)],
        )
