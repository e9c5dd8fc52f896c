"""Type stubs of ``joblite._ext._codec``, the compiled twin of ``joblite._pure._codec``.

Both twins have these names and signatures; ``tests/test_stubs.py`` checks them.
"""

from collections.abc import Iterable, Sequence
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

BLOSC_CODES: Final[dict[str, int]]

def wake_threads(threads: int) -> None: ...

class BloscDecoder:
    def __init__(
        self,
        frame: Buffer,
        chunks: list[tuple[int, int]],
        chunk_size: int,
        out: Buffer,
        cname: str,
        checksums: Sequence[int] | None = None,
        fd: int = -1,
        offset: int = 0,
    ) -> None: ...
    def start(self, threads: int) -> int: ...
    def run(self) -> int: ...
    def cancel(self) -> None: ...

class BloscEncoder:
    def __init__(
        self,
        data: Buffer,
        chunk_size: int,
        itemsize: int,
        cname: str,
        bitshuffle: bool,
        level: int,
        fd: int = -1,
        offset: int = 0,
        window: int = 1,
        blocksize: int = 0,
    ) -> None: ...
    def start(self, threads: int) -> int: ...
    def run(self) -> int: ...
    def set_file(self, fd: int, offset: int) -> None: ...
    def cancel(self) -> None: ...
    def failure(self) -> tuple[int, int] | None: ...
    def result(self) -> tuple[list[int], list[int]]: ...
