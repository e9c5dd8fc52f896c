"""Helpers shared by the persistence tests: the container layout, read and built from the spec.

Everything here follows ``docs/format_persistence.rst`` (format version 2, and
version 1 where a test builds one) and is written independently of ``joblite.persistence``, so that the tests check the
documented format rather than the implementation against itself.
"""

import pickle
import struct

import numpy as np
import xxhash

MAGIC = b"\x89JOBLITE"
FOOTER_MAGIC = b"JLBLOCKS"
ALIGNMENT = 64
HEADER = struct.Struct("<8sHHIQQQB7xQQ")  # magic, version, flags, hints, pickle_length,
#                                            pickle_raw_length, pickle_checksum, pickle_codec,
#                                            chunk_size, header_checksum
ENTRY = struct.Struct("<QQQBB6xQQ")  # offset, length, raw_length, codec, itemsize, checksum, reserved
FOOTER = struct.Struct("<8sQQQQQ8xQ")  # magic, table_offset, table_length, n_blocks,
#                                            table_checksum, file_length, footer_checksum


def checksum(data):
    return xxhash.xxh3_64_intdigest(bytes(data))


def part_checksum(stored, version, compressed):
    """The checksum that the header or the block table stores for a part.

    Version 2 checksums a compressed part's frame header and the list of
    its chunk checksums after its frame; anything else is checksummed whole.
    """
    stored = bytes(stored)
    if version < 2 or not compressed:
        return checksum(stored)
    count = int.from_bytes(stored[:4], "little")
    return checksum(stored[: 4 + 4 * count] + stored[len(stored) - 8 * count :])


def with_checksums(frame):
    """A version-2 compressed part: the frame, then the ``u64`` checksum of each of its chunks."""
    frame = bytes(frame)
    count = int.from_bytes(frame[:4], "little")
    sizes = struct.unpack_from(f"<{count}I", frame, 4)
    position, sums = 4 + 4 * count, []
    for size in sizes:
        sums.append(checksum(frame[position : position + size]))
        position += size
    return frame + struct.pack(f"<{count}Q", *sums)


def _reseal_chunks(data, offset, length):
    """Recompute in place the chunk checksums of the version-2 compressed part at `offset`, where it can."""
    count = int.from_bytes(data[offset : offset + 4], "little")
    if length < 4 + 12 * count:
        return
    frame_end = offset + length - 8 * count
    position = offset + 4 + 4 * count
    for index, size in enumerate(struct.unpack_from(f"<{count}I", data, offset + 4)):
        if position + size > frame_end:
            return
        struct.pack_into("<Q", data, frame_end + 8 * index, checksum(data[position : position + size]))
        position += size


def parse(data):
    """The layout of a valid container: a dict of fields and byte ranges ``(start, stop)``."""
    data = bytes(data)
    header = HEADER.unpack_from(data, 0)
    footer = FOOTER.unpack_from(data, len(data) - ALIGNMENT)
    table_offset, table_length, n_blocks = footer[1], footer[2], footer[3]
    table = data[table_offset : table_offset + table_length]
    blocks = []
    for index in range(n_blocks):
        offset, length, raw_length, codec, itemsize, block_checksum, _ = ENTRY.unpack_from(table, index * ENTRY.size)
        blocks.append(
            {
                "offset": offset,
                "length": length,
                "raw_length": raw_length,
                "codec": codec,
                "itemsize": itemsize,
                "checksum": block_checksum,
                "range": (offset, offset + length),
            }
        )
    position = n_blocks * ENTRY.size
    (count,) = struct.unpack_from("<H", table, position)
    position += 2
    codecs = []
    for _ in range(count):
        length = table[position]
        codecs.append(table[position + 1 : position + 1 + length].decode("ascii"))
        position += 1 + length
    pickle_range = (ALIGNMENT, ALIGNMENT + header[4])
    used = (
        [(0, ALIGNMENT), pickle_range]
        + [block["range"] for block in blocks]
        + [(table_offset, table_offset + table_length), (len(data) - ALIGNMENT, len(data))]
    )
    padding = []
    for (_, stop), (start, _) in zip(sorted(used), sorted(used)[1:]):
        if start > stop:
            padding.append((stop, start))
    return {
        "version": header[1],
        "flags": header[2],
        "hints": header[3],
        "pickle_length": header[4],
        "pickle_raw_length": header[5],
        "pickle_codec": header[7],
        "chunk_size": header[8],
        "header": (0, ALIGNMENT),
        "pickle": pickle_range,
        "blocks": blocks,
        "codecs": codecs,
        "table": (table_offset, table_offset + table_length),
        "footer": (len(data) - ALIGNMENT, len(data)),
        "padding": padding,
        "size": len(data),
    }


def build(
    stream,
    blocks=(),
    codecs=("none",),
    pickle_codec=0,
    pickle_raw_length=None,
    chunk_size=1 << 20,
    version=1,
    flags=0,
    hints=0,
):
    """A container from its parts, as the spec lays it out.

    `blocks` is a list of ``(stored_bytes, raw_length, codec_index, itemsize)``;
    with ``version=2``, a compressed part's stored bytes end with its chunk
    checksums (`with_checksums`).  `hints` is the header's hint field.
    """
    stream = bytes(stream)
    raw = len(stream) if pickle_raw_length is None else pickle_raw_length
    stream_checksum = part_checksum(stream, version, pickle_codec)
    head = struct.pack(
        "<8sHHIQQQB7xQ", MAGIC, version, flags, hints, len(stream), raw, stream_checksum, pickle_codec, chunk_size
    )
    out = bytearray(head + struct.pack("<Q", checksum(head)) + stream)
    table = bytearray()
    for stored, raw_length, codec, itemsize in blocks:
        out += bytes(-len(out) % ALIGNMENT)
        stored_checksum = part_checksum(stored, version, codec)
        table += ENTRY.pack(len(out), len(stored), raw_length, codec, itemsize, stored_checksum, 0)
        out += stored
    table += struct.pack("<H", len(codecs))
    for name in codecs:
        table += bytes([len(name)]) + name.encode("ascii")
    out += bytes(-len(out) % ALIGNMENT)
    table_offset = len(out)
    out += table
    foot = struct.pack(
        "<8sQQQQQ8x", FOOTER_MAGIC, table_offset, len(table), len(blocks), checksum(table), len(out) + ALIGNMENT
    )
    out += foot + struct.pack("<Q", checksum(foot))
    return bytes(out)


def with_stream(stream):
    """A valid container (no blocks) whose pickle stream is `stream`: to test what the unpickler admits."""
    return build(stream)


def reseal(data, fix_length=True):
    """Recompute every checksum (and the footer's file length) of a mutated container, best effort.

    Lets a mutation get past the checksums and reach the deeper checks: the
    block table, the compressed frames, the decompressors, the unpickler.  In
    a version-2 file, the chunk checksums of compressed parts are recomputed
    too.  Fields that point out of the file are left as they are (the
    checksums they guard then stay wrong).
    """
    data = bytearray(data)
    size = len(data)
    if size < 2 * ALIGNMENT:
        return bytes(data)
    version = struct.unpack_from("<H", data, 8)[0]

    def reseal_part(offset, length, compressed):
        if compressed and version >= 2:
            _reseal_chunks(data, offset, length)
        return part_checksum(data[offset : offset + length], version, compressed)

    # header
    pickle_length = struct.unpack_from("<Q", data, 16)[0]
    if ALIGNMENT + pickle_length <= size:
        struct.pack_into("<Q", data, 32, reseal_part(ALIGNMENT, pickle_length, data[40]))
    struct.pack_into("<Q", data, 56, checksum(data[:56]))
    # blocks and table
    footer_start = size - ALIGNMENT
    table_offset, table_length, n_blocks = struct.unpack_from("<QQQ", data, footer_start + 8)
    if table_offset + table_length <= footer_start:
        table = data[table_offset : table_offset + table_length]
        for index in range(min(n_blocks, table_length // ENTRY.size)):
            base = table_offset + index * ENTRY.size
            offset, length = struct.unpack_from("<QQ", data, base)
            if offset + length <= size:
                struct.pack_into("<Q", data, base + 32, reseal_part(offset, length, data[base + 24]))
        table = data[table_offset : table_offset + table_length]
        struct.pack_into("<Q", data, footer_start + 32, checksum(table))
    if fix_length:
        struct.pack_into("<Q", data, footer_start + 40, size)
    struct.pack_into("<Q", data, footer_start + 56, checksum(data[footer_start : footer_start + 56]))
    return bytes(data)


def assert_same(got, expected, path="value"):
    """Deep equality with exact types, dtypes, shapes and bytes (NaN and NaT compare equal)."""
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), f"{path}: {type(got)} is not an ndarray"
        assert got.dtype == expected.dtype, f"{path}: dtype {got.dtype} != {expected.dtype}"
        assert got.shape == expected.shape, f"{path}: shape {got.shape} != {expected.shape}"
        if expected.dtype.hasobject:
            for index in np.ndindex(expected.shape):
                assert_same(got[index], expected[index], f"{path}[{index}]")
        else:
            assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes(), (
                f"{path}: values differ"
            )
        return
    assert type(got) is type(expected), f"{path}: {type(got)} is not {type(expected)}"
    if isinstance(expected, dict):
        assert list(got) == list(expected), f"{path}: keys differ"
        for key in expected:
            assert_same(got[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{path}: lengths differ"
        for index, (a, b) in enumerate(zip(got, expected)):
            assert_same(a, b, f"{path}[{index}]")
    elif isinstance(expected, float) and expected != expected:
        assert got != got
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


# -- hand-written pickle streams ------------------------------------------------------------
def unicode(text):
    encoded = text.encode("utf-8")
    return pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded


def stack_global(module, name):
    """Protocol-4 ``STACK_GLOBAL``: pushes ``module.name`` (dotted names are attribute paths)."""
    return unicode(module) + unicode(name) + pickle.STACK_GLOBAL


def call(module, name, *args):
    """``module.name(*args)`` with str/int arguments, as a pickle fragment (no PROTO, no STOP)."""
    out = stack_global(module, name) + pickle.MARK
    for arg in args:
        if isinstance(arg, str):
            out += unicode(arg)
        elif isinstance(arg, int):
            out += pickle.LONG1 + bytes([8]) + struct.pack("<q", arg)
        elif isinstance(arg, tuple) and all(isinstance(item, int) for item in arg):
            out += pickle.MARK + b"".join(pickle.LONG1 + bytes([8]) + struct.pack("<q", item) for item in arg)
            out += pickle.TUPLE
        else:
            raise TypeError(arg)
    return out + pickle.TUPLE + pickle.REDUCE


def program(*fragments):
    """A whole protocol-5 pickle stream; every fragment's result but the last is popped."""
    body = b""
    for index, fragment in enumerate(fragments):
        body += fragment
        if index < len(fragments) - 1:
            body += pickle.POP
    return pickle.PROTO + bytes([5]) + body + pickle.STOP


# -- a value whose pickle stream and array bytes both tell which version it is ------------------
VERSION = [0]


def versioned_value(n):
    """``{'version': k, 'a': np.full(n, k)}`` for the `k` in ``VERSION[0]``: a cached function.

    A process that writes it while another reads it (``Memory(mmap_mode='r')``)
    sees a torn read as an array whose bytes disagree with the version in the
    pickle stream.
    """
    return {"version": VERSION[0], "a": np.full(n, VERSION[0], dtype=np.int64)}


def limit_address_space(nbytes):
    """Cap this process's address space at `nbytes` bytes, so that a claim fails here, not the machine.

    Not under AddressSanitizer (the debug build, as ``.ci/sanitize`` runs it):
    its shadow memory takes terabytes of address space when the process
    starts, so any cap would refuse every later allocation.  There each
    allocation is capped instead (``ASAN_OPTIONS=max_allocation_size_mb``,
    with ``allocator_may_return_null=1``: a ``MemoryError``, as under the cap).
    """
    import ctypes
    import resource

    if hasattr(ctypes.CDLL(None), "__asan_init"):  # the ASan runtime is loaded
        return
    resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
