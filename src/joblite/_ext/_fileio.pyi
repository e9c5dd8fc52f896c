"""Type stubs of ``joblite._ext._fileio``, the compiled twin of ``joblite._pure._fileio``.

Both twins have these names and signatures; ``tests/test_stubs.py`` checks them.
"""

def preallocate(fd: int, length: int) -> bool: ...
