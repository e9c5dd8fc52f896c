"""The container reader that the cache store uses: ``Container``, ``checksum``, ``verify_file``.

The cache store reads its entries' pickle streams and checks entries through
these names without unpickling them; layouts are compared with the spec
(``_persistence_helpers``), not with the writer.  Compressed containers run
on the active twin (run again with ``JOBLITE_PUREPYTHON=1``).
"""

import io
import pickle
import struct

import numpy as np
import pytest

import _persistence_helpers as H
from joblite import _container
from joblite.persistence import CorruptFileError, dump, dumps, load

VALUE = {"a": np.arange(1000, dtype=np.int32), "f": np.asfortranarray(np.ones((30, 7))), "text": "x" * 300}


@pytest.mark.parametrize("compress", [0, "lz4", "zlib"])
def test_container_fields_follow_the_spec(compress):
    data = dumps(VALUE, compress=compress)
    layout = H.parse(data)
    container = _container.Container(io.BytesIO(data), "<bytes>")
    assert container.codecs == tuple(layout["codecs"])
    assert (container.pickle_length, container.pickle_raw_length, container.pickle_codec) == (
        layout["pickle_length"],
        layout["pickle_raw_length"],
        layout["pickle_codec"],
    )
    assert [tuple(entry) for entry in container.blocks] == [
        (b["offset"], b["length"], b["raw_length"], b["codec"], b["itemsize"], b["checksum"]) for b in layout["blocks"]
    ]
    assert [entry.offset for entry in container.blocks] == [b["offset"] for b in layout["blocks"]]
    assert _container.checksum(data[:56]) == H.checksum(data[:56])


@pytest.mark.parametrize("compress", [0, "lz4", "zlib"])
@pytest.mark.parametrize("head, tail", [(16, 3), (1, 1), (0, 0), (10_000, 10_000)])
def test_pickle_ends_are_the_ends_of_the_pickle_stream(compress, head, tail):
    data = dumps(VALUE, compress=compress)
    container = _container.Container(io.BytesIO(data), "<bytes>")
    stream = bytes(container.pickle_stream())
    assert len(stream) == container.pickle_raw_length
    got_head, got_tail = container.pickle_ends(head, tail)
    assert got_head == stream[:head]
    assert got_tail == stream[max(len(stream) - tail, 0) :]
    assert got_tail[-1:] == (pickle.STOP if tail else b"")


def test_pickle_ends_of_an_uncompressed_stream_read_only_the_ends():
    """The cache store looks at both ends of large entries: the middle is not read (nor checksummed)."""
    data = bytearray(dumps(list(range(5000))))
    middle = H.ALIGNMENT + H.parse(data)["pickle_length"] // 2
    data[middle] ^= 0xFF
    container = _container.Container(io.BytesIO(bytes(data)), "damaged")
    head, tail = container.pickle_ends(16, 3)
    assert head.startswith(b"\x80\x05") and tail.endswith(pickle.STOP)
    with pytest.raises(CorruptFileError, match="damaged: pickle stream: checksum mismatch"):
        container.pickle_stream()


def test_container_refuses_a_foreign_file():
    with pytest.raises(CorruptFileError, match=r"where: header: bad magic bytes"):
        _container.Container(io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(200)), "where")


def test_verify_file_checks_every_block(tmp_path):
    path = tmp_path / "entry.jl"
    dump({"arrays": [np.arange(100_000), np.ones(10)]}, path)
    assert _container.verify_file(path) == path.stat().st_size
    data = bytearray(path.read_bytes())
    second = H.parse(data)["blocks"][1]
    data[second["offset"] + 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=rf"{path}: block 1: checksum mismatch"):
        _container.verify_file(path)


@pytest.mark.parametrize("codec", ["blosc-lz4", "zlib"])
def test_verify_file_checks_each_chunk_of_a_compressed_block(tmp_path, codec):
    path = tmp_path / "entry.jl"
    value = {"arrays": [np.arange(600_000) % 977, np.ones(10)]}
    dump(value, path, compress=codec)
    good = path.read_bytes()
    assert _container.verify_file(path) == len(good)
    block = H.parse(good)["blocks"][0]
    count = int.from_bytes(good[block["offset"] : block["offset"] + 4], "little")
    assert count >= 2
    sizes = struct.unpack_from(f"<{count}I", good, block["offset"] + 4)
    second_chunk = block["offset"] + 4 + 4 * count + sizes[0]
    for target, message in [
        (second_chunk + 7, f"block 0: chunk 1 of {count}: checksum mismatch"),
        (block["offset"] + block["length"] - 1, "block 0: checksum mismatch"),  # the checksum list
        (block["offset"] + 4, "block 0: checksum mismatch"),  # the frame header
    ]:
        data = bytearray(good)
        data[target] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptFileError, match=rf"{path}: {message}"):
            _container.verify_file(path)
    # the same blocks in a version 1 file, without their checksum lists: one checksum over the stored bytes
    layout = H.parse(good)
    blocks = []
    for entry in layout["blocks"]:
        part = good[slice(*entry["range"])]
        frame = part[: len(part) - 8 * int.from_bytes(part[:4], "little")]
        blocks.append((frame, entry["raw_length"], 1, entry["itemsize"]))
    old = H.build(good[slice(*layout["pickle"])], blocks, ("none", codec), chunk_size=layout["chunk_size"])
    path.write_bytes(old)
    assert _container.verify_file(path) == len(old)
    H.assert_same(load(path), value)


def test_verify_file_imports_nothing_the_stream_names(tmp_path):
    path = tmp_path / "entry.jl"
    path.write_bytes(H.with_stream(H.program(H.call("joblite_no_such_module", "f", 1))))
    assert _container.verify_file(path) == path.stat().st_size


def test_verify_file_reports_a_stream_with_bytes_after_stop(tmp_path):
    path = tmp_path / "entry.jl"
    path.write_bytes(H.with_stream(pickle.dumps([1, 2], protocol=5) + b"junk"))
    with pytest.raises(CorruptFileError, match="pickle stream: 4 bytes after its STOP opcode"):
        _container.verify_file(path)


def test_verify_file_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        _container.verify_file(tmp_path / "missing.jl")
