"""Compression codecs: the registry, the built-in codecs, and joblib's ``compress=`` argument.

A codec (`CompressorBase`) compresses one chunk of bytes into one
self-contained stream; the chunked, byte-shuffled block format that frames
the chunks lives in :mod:`joblite._blocks`.  Codecs are looked up by name in a
registry (`register_compressor`), the name that files record; their modules
(blosc, lz4, bz2, lzma, zstandard) are imported on first use.  `parse_compress` reads
``compress=`` as joblib's ``dump`` takes it.

The default codec, ``'blosc-lz4'``, and the other ``'blosc-*'`` codecs are
c-blosc 1.x (the ``blosc`` package): each chunk is one Blosc buffer, shuffled
by Blosc's own SIMD byte or bit shuffle and compressed by lz4 or zstd.
joblite stands on it rather than on kernels of its own because it is the
codec that numeric-data users already measure against, and its shuffles and
codecs are SIMD code that joblite's twins would have to equal twice.

Each codec states the most bytes one stored byte can decompress to
(``max_ratio``), so that a reader can refuse a block claiming more before it
allocates memory for it.  The built-in bounds and their sources:

======  =========  ==============================================================
codec   max_ratio  source
======  =========  ==============================================================
lz4     255        lz4 block format: past the first 15, each byte of a match
                   length adds at most 255 output bytes
zlib    1032       zlib's technical details (zlib.net/zlib_tech.html): a 258-byte
gzip               match coded in 2 bits is deflate's best case
lzma    7100       LZMA range coder: a probability adapts by 1/32 and never
xz                 exceeds 2017/2048, so a coded bit costs at least 0.022 bits,
                   and a 273-byte match (the longest) takes 14 coded bits:
                   at most 7091 bytes out per byte in (16 MiB of zeros: 6837)
zstd    32768      RFC 8878: a 4-byte RLE block (3-byte header, 1 byte) decodes
                   to at most 128 KiB, the largest block
blosc-  255        its lz4 streams (above); Blosc's 16-byte header and 4-byte
lz4*               block and stream sizes only lower the ratio
blosc-  32768      its zstd streams (above), likewise
zstd*
bz2     none       its run-length stages hold 16 MiB of zeros in 45 bytes;
                   only the chunk length bounds it
======  =========  ==============================================================
"""

from __future__ import annotations

import importlib.util
import struct

from ._validate import as_int

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_COMPRESSOR",
    "CompressorBase",
    "compressor_and_level",
    "compressor_names",
    "get_compressor",
    "parse_compress",
    "register_compressor",
]

DEFAULT_COMPRESSOR = "blosc-lz4"


# -- codecs -----------------------------------------------------------------------------
class CompressorBase:
    """A block codec: compresses one chunk of bytes into one self-contained stream.

    Subclass it, set the class attributes, implement `compress` and
    `decompress`, and register an instance with `register_compressor`.  Both
    methods are called from several threads at once (each call with its own
    data), so they must not share mutable state; they should release the GIL
    while they work, or the second thread brings no speed.

    Attributes
    ----------
    name : str
        Registry name, recorded in files; must equal the name it is
        registered under.
    default_level : int
        Level used when only the name is given (``compress='name'``).
    levels : range
        Valid levels; 0 is never one of them (``compress`` level 0 means no
        compression, as in joblib).
    max_ratio : int or None
        The most bytes that one stored byte of a stream can decompress to,
        at worst (not on typical data).  Readers refuse a block that claims
        more than this times its stored bytes before they allocate memory
        for it (`joblite._blocks.max_raw_length`); a bound that is too small makes valid
        files unreadable.  None (the default): no bound but the chunk length.
    """

    # None in the base class only: a subclass sets name and default_level.
    name: str | None = None
    default_level: int | None = None
    levels: range = range(1, 10)
    max_ratio: int | None = None

    def compress(self, data: Buffer, level: int) -> bytes:
        """Compress one chunk.

        Parameters
        ----------
        data : bytes-like
            The (shuffled) chunk, C-contiguous; not to be kept after returning.
        level : int
            A level in `levels`.

        Returns
        -------
        bytes
            The compressed stream; it must not depend on anything but `data`
            and `level` (no time stamps), so that files are reproducible.
        """
        raise NotImplementedError(f"{type(self).__name__}.compress")

    def decompress(self, data: Buffer, raw_length: int) -> Buffer:
        """Decompress one chunk.

        Parameters
        ----------
        data : bytes-like
            A stream made by `compress`, or corrupted bytes.
        raw_length : int
            Length the chunk had before compression (bytes).

        Returns
        -------
        bytes-like
            The chunk; on corrupted input, raise any exception (it is
            reported as a ``ValueError``) or return the wrong length.  To
            bound memory on hostile input, do not produce much more than
            `raw_length` bytes.
        """
        raise NotImplementedError(f"{type(self).__name__}.decompress")


def _finish_stream(decompressor, data, raw_length):
    """Run a stdlib-style streaming decompressor; at most ``raw_length + 1`` bytes come out."""
    # one spare byte lets the decoder move past its end marker, or shows the stream is longer
    raw = decompressor.decompress(data, raw_length + 1)
    if not decompressor.eof:
        if len(raw) > raw_length:
            raise ValueError(f"the stream holds more than {raw_length} bytes")
        raise ValueError("the stream is truncated")
    if decompressor.unused_data:
        raise ValueError(f"{len(decompressor.unused_data)} bytes follow the end of the stream")
    return raw


class _LZ4(CompressorBase):
    """lz4 block format (``lz4.block``, sizes not stored: the frame knows them).

    Levels 1 to 3 use lz4's fast mode (``mode='default'``, the same output for
    all three: joblib's "fast" levels); 4 to 12 use lz4-HC at that level.
    After the byte shuffle HC gains little: on 256 MiB of small int64 and of
    image-like float32 it wrote 2.5 to 20 times slower for output 0.1 to 7 %
    smaller.
    """

    name = "lz4"
    default_level = 1
    levels = range(1, 13)
    max_ratio = 255

    def compress(self, data, level):
        from lz4 import block

        if level <= 3:
            return block.compress(data, mode="default", store_size=False)
        return block.compress(data, mode="high_compression", compression=level, store_size=False)

    def decompress(self, data, raw_length):
        from lz4 import block

        return block.decompress(data, uncompressed_size=raw_length)


class _Zlib(CompressorBase):
    """zlib stream (RFC 1950), ``zlib`` levels 1 to 9."""

    name = "zlib"
    default_level = 3
    wbits = 15
    max_ratio = 1032

    def compress(self, data, level):
        import zlib

        compressor = zlib.compressobj(level, zlib.DEFLATED, self.wbits)
        return compressor.compress(data) + compressor.flush()

    def decompress(self, data, raw_length):
        import zlib

        return _finish_stream(zlib.decompressobj(self.wbits), data, raw_length)


class _Gzip(_Zlib):
    """gzip member (RFC 1952) written by zlib: modification time 0, so reproducible."""

    name = "gzip"
    wbits = 31


class _BZ2(CompressorBase):
    """bzip2 stream, block sizes 100k to 900k for levels 1 to 9."""

    name = "bz2"
    default_level = 3

    def compress(self, data, level):
        import bz2

        return bz2.compress(data, level)

    def decompress(self, data, raw_length):
        import bz2

        return _finish_stream(bz2.BZ2Decompressor(), data, raw_length)


class _LZMA(CompressorBase):
    """LZMA "alone" format (``lzma.FORMAT_ALONE``), as joblib's ``'lzma'``; presets 1 to 9."""

    name = "lzma"
    default_level = 3
    format_name = "FORMAT_ALONE"
    max_ratio = 7100
    # preset 9 decodes in about 65 MiB; a corrupted header asking for more is refused
    memlimit = 1 << 27

    def compress(self, data, level):
        import lzma

        return lzma.compress(data, format=getattr(lzma, self.format_name), preset=level)

    def decompress(self, data, raw_length):
        import lzma

        decompressor = lzma.LZMADecompressor(format=getattr(lzma, self.format_name), memlimit=self.memlimit)
        return _finish_stream(decompressor, data, raw_length)


class _XZ(_LZMA):
    """xz container (``lzma.FORMAT_XZ``, CRC64 check), as joblib's ``'xz'``; presets 1 to 9."""

    name = "xz"
    format_name = "FORMAT_XZ"


class _Zstd(CompressorBase):
    """Zstandard frame (``zstandard`` package), levels 1 to 22, content size recorded."""

    name = "zstd"
    default_level = 3
    levels = range(1, 23)
    max_ratio = 32768

    def compress(self, data, level):
        import zstandard

        # a compressor object serves one call at a time: one per call
        return zstandard.ZstdCompressor(level=level).compress(data)

    def decompress(self, data, raw_length):
        import zstandard

        declared = zstandard.frame_content_size(data)
        if declared == -1:
            raise ValueError("the zstd frame does not declare its content size")
        if declared != raw_length:  # checked first: the decoder allocates what the frame declares
            raise ValueError(f"the zstd frame declares {declared} bytes")
        return zstandard.ZstdDecompressor().decompress(data, allow_extra_data=False)


# c-blosc 1.x buffer header (blosc.h, "Blosc header format"): version, versionlz, flags,
# typesize, nbytes, blocksize, cbytes; the top 3 bits of flags name the codec
_BLOSC_HEADER = struct.Struct("<BBBBIII")
_BLOSC_CODES = {"lz4": 1, "zstd": 4}


#: The largest c-blosc block (bytes) of the ``'blosc-*'`` codecs' chunks: see `_Blosc.blocksize`.
BLOSC_MAX_BLOCK = 1 << 19


def _blosc(blocksize=0):
    """The ``blosc`` package, set for joblite's calls: one thread per call, GIL released, `blocksize`.

    The settings are process-wide in the package, so they are set before
    every call.  ``releasegil`` also makes the package use c-blosc's
    ``*_ctx`` functions, which ignore the ``BLOSC_*`` environment variables
    that would otherwise change the bytes written, and take the block size
    set here (`_Blosc.blocksize`, as joblite's compiled kernels are given),
    whatever a user set with ``blosc.set_blocksize``.  Threads that compress
    at once with different block sizes (two dumps of different item sizes)
    may each compress with the other's: their chunks are valid, but may not
    be the bytes that the compiled kernels write.
    """
    import blosc

    blosc.set_releasegil(True)
    blosc.set_nthreads(1)
    blosc.set_blocksize(blocksize)
    return blosc


def _blosc_splits(cname, itemsize, blocksize):
    """Whether c-blosc 1.21 splits blocks of `blocksize` bytes into one stream per byte of the items.

    ``split_block`` in its ``blosc.c``, in its default mode
    (``BLOSC_FORWARD_COMPAT_SPLIT``): for every codec but zstd, items of 16
    bytes or less, and blocks of 128 items or more.
    """
    return cname != "zstd" and itemsize <= 16 and blocksize // itemsize >= 128


def _blosc_default_blocksize(cname, level, itemsize):
    """The block size (bytes) that c-blosc 1.21 chooses for a buffer of 1 MiB or more.

    ``compute_blocksize`` in its ``blosc.c``: 32 KiB, twice that for zstd
    (a codec for high ratios), times 1/2, 1, 2, 4, 4, 8, 8, 8 or 8 for
    levels 1 to 9 (twice more at 9 for zstd); a split block (`_blosc_splits`)
    of at most 256 KiB times the item size, from 64 KiB to 1 MiB; a
    multiple of the item size.
    """
    blocksize = 32 << 10
    if cname == "zstd":
        blocksize *= 2
    blocksize = blocksize * (1, 2, 4, 8, 8, 16, 16, 16, 16)[level - 1] // 2
    if level == 9 and cname == "zstd":
        blocksize *= 2
    if _blosc_splits(cname, itemsize, blocksize):
        blocksize = min(max(min(blocksize, 1 << 18) * itemsize, 1 << 16), 1 << 20)
    return blocksize // itemsize * itemsize


class _Blosc(CompressorBase):
    """A c-blosc 1.x buffer (the ``blosc`` package) per chunk: Blosc's shuffle, then `cname`.

    Blosc shuffles by the item size itself (byte shuffle, or bit shuffle
    with ``bitshuffle``), so `joblite._blocks` hands it unshuffled chunks
    and the item size.  Levels are Blosc's ``clevel`` 1 to 9.  Every chunk's
    16-byte header is checked against the frame before c-blosc reads it
    (`check`): the package trusts a header's lengths.
    """

    default_level = 5
    cname = "lz4"
    bitshuffle = False

    def compress(self, data, level, itemsize=1):
        """Compress one unshuffled chunk, shuffled by Blosc by `itemsize` (bytes, 1 to 255)."""
        blosc = _blosc(self.blocksize(level, itemsize))
        shuffle = blosc.BITSHUFFLE if self.bitshuffle else blosc.SHUFFLE
        return blosc.compress(data, typesize=itemsize, clevel=level, shuffle=shuffle, cname=self.cname)

    def blocksize(self, level, itemsize):
        """The block size (bytes) to give c-blosc for chunks of this codec at `level`: 0 lets c-blosc choose.

        c-blosc splits each buffer into blocks that it compresses apart; for
        item sizes of 5 to 16 bytes its own choice at level 5 is lz4 blocks
        of 640 KiB to 1 MiB (1 MiB for 8-byte items: ``compute_blocksize``
        in c-blosc 1.21's ``blosc.c``, see `_blosc_default_blocksize`), whose
        shuffled copy and output do not both stay in the 2 MiB second-level
        cache of a core.  So blocks are
        c-blosc's choice up to `BLOSC_MAX_BLOCK` (512 KiB), and 512 KiB
        where c-blosc would take more: 16 MiB of small int64 dumped 1.06 to
        1.13 times as fast as with 1 MiB blocks, and loaded 1.07 to 1.09
        times with a third process taking turns, 1.00 without (float64 1.05
        to 1.09 and 1.05 to 1.06), and float32, whose blocks c-blosc
        makes 512 KiB, loaded 0.96 times as fast with 256 KiB ones (paired
        runs, each version in a process of its own).  The compression ratio
        changes by 0.2% or less; readers take any block size from each
        chunk's header.

        Parameters
        ----------
        level : int
            Blosc's ``clevel``, 1 to 9.
        itemsize : int
            The item size that Blosc shuffles by (bytes), 1 to 255.

        Returns
        -------
        int
            c-blosc's ``blocksize`` argument: 0, or the value that makes
            its blocks `BLOSC_MAX_BLOCK` bytes or just under (c-blosc
            multiplies a given block size by the item size when it splits
            blocks into one stream per byte of the items, as it does for
            lz4 and items of 16 bytes or less).
        """
        if _blosc_default_blocksize(self.cname, level, itemsize) <= BLOSC_MAX_BLOCK:
            return 0
        return BLOSC_MAX_BLOCK // itemsize if _blosc_splits(self.cname, itemsize, BLOSC_MAX_BLOCK) else BLOSC_MAX_BLOCK

    def check(self, data, raw_length):
        """Raise ValueError unless `data` is one whole Blosc buffer of this codec holding `raw_length` bytes."""
        view = memoryview(data)
        if view.nbytes < _BLOSC_HEADER.size:
            raise ValueError(f"{view.nbytes} bytes are shorter than a Blosc header ({_BLOSC_HEADER.size})")
        _, _, flags, _, nbytes, _, cbytes = _BLOSC_HEADER.unpack_from(view)
        if cbytes != view.nbytes:
            raise ValueError(f"the Blosc header says {cbytes} compressed bytes, the chunk has {view.nbytes}")
        if nbytes != raw_length:
            raise ValueError(f"the Blosc header says {nbytes} raw bytes, expected {raw_length}")
        if flags >> 5 != _BLOSC_CODES[self.cname]:
            raise ValueError(f"the Blosc header names codec number {flags >> 5}, not {self.cname}")

    def decompress(self, data, raw_length):
        self.check(data, raw_length)
        return _blosc().decompress(data)

    def decompress_into(self, data, address, raw_length):
        """Decompress one chunk to the `raw_length` writable bytes at `address`, after `check`."""
        self.check(data, raw_length)
        _blosc().decompress_ptr(data, address)


class _BloscLZ4(_Blosc):
    """Blosc: byte shuffle, then lz4 (Blosc's clevel picks lz4's acceleration and the block size)."""

    name = "blosc-lz4"
    max_ratio = 255


class _BloscLZ4Bit(_BloscLZ4):
    """Blosc: bit shuffle, then lz4: for integers with few significant bits, and bytes."""

    name = "blosc-lz4-bitshuffle"
    bitshuffle = True


class _BloscZstd(_Blosc):
    """Blosc: byte shuffle, then zstd at Blosc's clevel: smaller, slower to write."""

    name = "blosc-zstd"
    cname = "zstd"
    max_ratio = 32768


class _BloscZstdBit(_BloscZstd):
    """Blosc: bit shuffle, then zstd: the smallest files of smooth floats."""

    name = "blosc-zstd-bitshuffle"
    bitshuffle = True


_COMPRESSORS: dict[str, CompressorBase] = {}


def _builtins():
    codecs: list[CompressorBase] = [_BloscLZ4(), _BloscLZ4Bit(), _BloscZstd(), _BloscZstdBit()]
    codecs += [_LZ4(), _Zlib(), _Gzip(), _BZ2(), _LZMA(), _XZ()]
    if importlib.util.find_spec("zstandard") is not None:  # found, not imported
        codecs.append(_Zstd())
    return codecs


def register_compressor(name: str, compressor: CompressorBase, force: bool = False) -> None:
    """Add a codec to the registry, under `name`.

    Parameters
    ----------
    name : str
        Registry name; equals ``compressor.name``.  Files record it, so a
        reader needs the same codec registered under the same name.
    compressor : CompressorBase
        The codec instance.
    force : bool, default False
        Replace a codec already registered under `name`.

    Raises
    ------
    TypeError
        If `compressor` is not a `CompressorBase` instance.
    ValueError
        If `name` is not a non-empty str equal to ``compressor.name``, if
        `compressor` has no valid ``default_level`` in its ``levels``, if its
        ``max_ratio`` is neither None nor an int >= 1, or if `name` is taken
        and `force` is false.
    """
    if not isinstance(compressor, CompressorBase):
        raise TypeError(
            f"compressor must be an instance of joblite.compressors.CompressorBase, got {type(compressor).__qualname__}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(f"Compressor name should be a string, '{name}' given: a non-empty str is needed")
    if compressor.name != name:
        raise ValueError(f"compressor.name is {compressor.name!r}; it must equal the registered name {name!r}")
    if not isinstance(compressor.levels, range) or 0 in compressor.levels:
        raise ValueError(f"compressor {name!r}: levels must be a range without 0, got {compressor.levels!r}")
    if compressor.default_level not in compressor.levels:
        raise ValueError(
            f"compressor {name!r}: default_level {compressor.default_level!r} is not in its levels "
            f"{compressor.levels!r}"
        )
    ratio = compressor.max_ratio
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1):
        raise ValueError(f"compressor {name!r}: max_ratio must be None or an int >= 1, got {ratio!r}")
    if name in _COMPRESSORS and not force:
        raise ValueError(f"Compressor {name!r} already registered; pass force=True to replace it")
    _COMPRESSORS[name] = compressor


for _compressor in _builtins():
    register_compressor(_compressor.name, _compressor)
del _compressor


def compressor_names():
    """Names of the registered codecs, sorted."""
    return sorted(_COMPRESSORS)


def get_compressor(name):
    """The codec registered under `name`.

    Raises
    ------
    ValueError
        If no codec is registered under `name`; the message lists those that are.
    """
    try:
        return _COMPRESSORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown compressor {name!r}; registered: {', '.join(compressor_names())}") from None


def compressor_and_level(name, level):
    """The codec registered under `name`, and `level` checked against its levels.

    Parameters
    ----------
    name : str
        Registered codec name.
    level : int
        A level of that codec (numpy integers too; never 0, which means no
        compression where a ``compress=`` argument is read).

    Returns
    -------
    (CompressorBase, int)
        The codec and the level as an int.

    Raises
    ------
    ValueError
        If no codec is registered under `name`, or `level` is not one of its
        ``levels``; the message names the value.
    """
    codec = get_compressor(name)
    number = as_int(level)
    if number not in codec.levels:
        raise ValueError(
            f"level must be an int from {codec.levels.start} to {codec.levels.stop - 1} "
            f"for compressor {name!r}, got {level!r}"
        )
    return codec, number


# -- joblib's compress= ------------------------------------------------------------------
def _bad_compress(compress, first, why):
    """The ValueError for a bad ``compress=``: joblib's words `first`, then what joblite accepts."""
    return ValueError(
        f"{first} In compress={compress!r}, {why}; expected False/True, an int 0 to 9, a compressor "
        f"name ({', '.join(repr(n) for n in compressor_names())}), or a (name, level) tuple"
    )


def _bad_level(compress, level, why):
    return _bad_compress(compress, f'Non valid compress level given: "{level}".', why)


def _bad_name(compress, name):
    return _bad_compress(
        compress, f'Non valid compression method given: "{name}".', f"{name!r} is not a registered compressor name"
    )


def parse_compress(compress):
    """Interpret joblib's ``compress=`` argument.

    ==========================  ==================================================
    `compress`                  result
    ==========================  ==================================================
    ``False``, ``0``, ``None``  ``('', 0)``: no compression
    ``True``                    ``('blosc-lz4', 5)``: Blosc's byte shuffle + lz4
    int 1 to 9                  ``('blosc-lz4', compress)``; see below
    ``'name'``                  ``('name', default level of that codec)``
    ``('name', level)``         ``('name', level)``; level 0 means no compression
                                (``('', 0)``), level None the codec's default
    ==========================  ==================================================

    joblib compresses with zlib when given an int; joblite uses its default
    codec, ``'blosc-lz4'``, at that level as Blosc's ``clevel``: higher levels
    use larger blocks and a slower lz4 mode, and write smaller files more
    slowly.  Pass ``('zlib', level)`` for joblib's choice.  Unlike joblib's ``dump``, this does not look at file
    name extensions.

    Parameters
    ----------
    compress : bool, int, str, tuple or None
        The argument as given to ``dump``.

    Returns
    -------
    (str, int)
        Codec name (``''`` for none) and level.

    Raises
    ------
    ValueError
        For anything else: negative or larger ints, floats, unknown names,
        tuples that are not ``(registered name, valid level)``, bool levels.
        The message starts with joblib's words for the same mistake
        (``Non valid compress level given: "10".``, ``Non valid compression
        method given: "snappy".``, ``Compress argument tuple should contain
        exactly 2 elements``), then names the value and lists the valid codec
        names.
    """
    if compress is None or compress is False:
        return "", 0
    if compress is True:
        return DEFAULT_COMPRESSOR, get_compressor(DEFAULT_COMPRESSOR).default_level
    if isinstance(compress, str):
        if compress not in _COMPRESSORS:
            raise _bad_name(compress, compress)
        return compress, _COMPRESSORS[compress].default_level
    if isinstance(compress, tuple):
        if len(compress) != 2:
            first = (
                "Compress argument tuple should contain exactly 2 elements: (compress method, "
                f"compress level), you passed {compress}."
            )
            raise _bad_compress(compress, first, "a tuple must be (name, level)")
        name, level = compress
        number = None if level is None else as_int(level)
        codec = _COMPRESSORS.get(name) if isinstance(name, str) else None
        if codec is None:
            # joblib checks the level first: a level it refuses is reported before the name
            if level is not None and (number is None or not 0 <= number <= 9):
                raise _bad_level(compress, level, "a level must be an int 0 to 9")
            raise _bad_name(compress, name)
        if level is None:
            return name, codec.default_level
        if number == 0:
            return "", 0
        if number not in codec.levels:
            raise _bad_level(
                compress,
                level,
                f"level must be an int {codec.levels.start} to "
                f"{codec.levels.stop - 1} for {name!r} (or 0: no compression)",
            )
        return name, number
    number = as_int(compress)
    if number is None or not 0 <= number <= 9:
        raise _bad_level(compress, compress, "an int level must be 0 to 9")
    if number == 0:
        return "", 0
    return DEFAULT_COMPRESSOR, number
