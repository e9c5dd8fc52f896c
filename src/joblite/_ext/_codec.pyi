"""Type stubs of ``joblite._ext._codec``, the compiled twin of ``joblite._pure._codec``.

Both twins have these names and signatures; ``tests/test_stubs.py`` checks them.
"""

from collections.abc import Iterable
from typing import Final

from typing_extensions import Buffer

U32_MAX: Final = 0xFFFFFFFF

def shuffle(src: Buffer, itemsize: int, out: Buffer) -> None: ...
def unshuffle(src: Buffer, itemsize: int, out: Buffer) -> None: ...
def pack_chunks(sizes: Iterable[int]) -> bytes: ...
def unpack_chunks(data: Buffer, raw_length: int, chunk_size: int) -> list[tuple[int, int]]: ...
def lz4_unshuffle(
    data: Buffer,
    chunks: list[tuple[int, int]],
    first: int,
    stop: int,
    chunk_size: int,
    itemsize: int,
    out: Buffer,
) -> int: ...
