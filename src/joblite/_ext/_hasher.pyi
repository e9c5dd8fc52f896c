"""Type stubs of ``joblite._ext._hasher``, the compiled twin of ``joblite._pure._hasher``.

Both twins have these names and signatures; ``tests/test_stubs.py`` checks them.
"""

from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

import numpy as np
from typing_extensions import Buffer

FORMAT_VERSION: Final = 1
HEADER: Final = b"JLH\x01"
BUFFER_SIZE: Final = 65536
CHUNK_SIZE: Final = 1048576

RECORD: Final = 0
ARRAY: Final = 1
DATA_BUFFER: Final = 0
DATA_STRIDED: Final = 1
DATA_CAST: Final = 2
DATA_MASKED: Final = 3

MAX_DEPTH: Final = 100000
MAX_REDUCTIONS: Final = 10000000

class _Digest(Protocol):
    """What ``new_digest()`` returns: a hashlib-like digest object."""

    @property
    def digest_size(self) -> int: ...
    def update(self, data: Buffer, /) -> object: ...
    def copy(self) -> _Digest: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...

def check_masked(values: np.ndarray, mask: np.ndarray) -> int: ...
def zero_masked(values: np.ndarray, mask: np.ndarray) -> np.ndarray: ...

class HashLimitError(RecursionError):
    path: str | None
    limit: Literal["max_depth", "max_reductions"] | None
    value: int | None
    def __init__(
        self,
        message: str,
        path: str | None = None,
        limit: Literal["max_depth", "max_reductions"] | None = None,
        value: int | None = None,
    ) -> None: ...

class StreamHasher:
    def __init__(
        self,
        new_digest: Callable[[], _Digest],
        reduce_object: Callable[[Any], Any],
        max_depth: int = MAX_DEPTH,
        max_reductions: int = MAX_REDUCTIONS,
    ) -> None: ...
    def update(self, obj: object, root: str = "obj") -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...
