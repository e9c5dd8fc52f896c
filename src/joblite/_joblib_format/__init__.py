"""Reading files written by ``joblib.dump`` (joblib >= 0.10), without importing joblib.

File format (as written by joblib 0.10 up to 1.6; facts, not code, taken from
joblib's ``numpy_pickle.py`` and ``compressor.py``):

* The file is one pickle stream, either as is (it starts with the PROTO
  opcode ``0x80`` for protocols >= 2) or compressed as a whole into one
  stream of zlib (``78``), gzip (``1f 8b``), bz2 (``BZh``), lzma "alone"
  (``5d 00``), xz (``fd 37 7a 58 5a 00``) or lz4 frame format
  (``04 22 4d 18``).  Files starting with ``ZF0x`` come from joblib < 0.10.
* Every ``numpy.ndarray``, ``numpy.matrix`` and ``numpy.memmap`` is pickled
  as an instance of ``joblib.numpy_pickle.NumpyArrayWrapper`` whose state
  dict holds ``subclass``, ``shape``, ``order`` ('C' or 'F'), ``dtype``,
  ``allow_mmap`` and, since joblib 1.2, ``numpy_array_alignment_bytes``
  (16).  Right after the BUILD opcode of the wrapper (and after the end of
  the current protocol-4 frame, which joblib forces there) come the array
  bytes, outside the pickle grammar:

  - object dtypes: a complete nested pickle stream (protocol 5) of the array;
  - other dtypes: when the alignment is set, one byte ``p`` (1..16) and ``p``
    bytes ``0xff`` so that the data starts at a multiple of the alignment in
    the (uncompressed) stream; then ``prod(shape) * itemsize`` raw bytes in
    the array's order ('F' for Fortran-contiguous arrays, else 'C'), in the
    dtype's byte order.

* joblib's loader converts arrays to the native byte order when no
  ``mmap_mode`` is given (``ensure_native_byte_order='auto'``); memmaps keep
  the file's byte order.  Memmapping is done only for uncompressed files
  and only for wrappers with ``allow_mmap``; ``'w+'`` is treated as ``'r+'``.

Safety: the unpickler (:mod:`.unpickler`) subclasses
:class:`joblite._safe_unpickle.SafeUnpickler`, the one both readers share (the
loading policy of ``allowed=``, numpy's unpickling made memory-safe); it first
maps joblib's wrapper names to an inert placeholder (joblib is never imported
for them).  Reads are bounded by the data really present (:mod:`.streams`), so
a corrupt length cannot allocate terabytes.
"""

import os
import warnings

from .. import _validate
from .._safe_unpickle import UnsafeLoadError
from .errors import JoblibFormatError, JoblibLegacyFormatError
from .streams import COMPAT, COMPRESSIONS, DETECT_BYTES, PROTOCOL_0_1_STARTS, Source, detect, open_source
from .unpickler import JoblibUnpickler

__all__ = [
    "DETECT_BYTES",
    "JoblibFormatError",
    "JoblibLegacyFormatError",
    "COMPRESSIONS",
    "Source",
    "detect",
    "load_joblib",
    "open_source",
]


def _describe(fileobj, filename):
    if filename is not None:
        return os.fspath(filename)
    name = getattr(fileobj, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.fsdecode(name)
    return f"<{type(fileobj).__name__}>"


def _peek_head(fileobj, where):
    try:
        if fileobj.seekable():
            start = fileobj.tell()
            head = fileobj.read(DETECT_BYTES)
            fileobj.seek(start)
            return head
    except (AttributeError, OSError):
        pass
    peek = getattr(fileobj, "peek", None)
    if peek is not None:
        return peek(DETECT_BYTES)[:DETECT_BYTES]
    raise ValueError(f"{where}: a joblib file must be read from a seekable or peekable file object")


def load_joblib(fileobj, filename=None, mmap_mode=None, admitted=None, *, ensure_native_byte_order="auto", where=None):
    """Read an object written by ``joblib.dump`` (joblib >= 0.10) from a binary file object.

    Parameters
    ----------
    fileobj : binary file object or Source
        Open for reading and positioned at the start of the joblib dump
        (an open file, ``io.BytesIO``...); or the :class:`~.streams.Source`
        that :func:`open_source` made of one, when the caller has already
        detected its kind and looked at its decompressed start.
    filename : str or os.PathLike, optional
        The path of that file, to name it in messages.
    mmap_mode : {None, 'r', 'r+', 'w+', 'c'}, optional
        As in ``joblib.load``: arrays of an uncompressed file come back as
        ``np.memmap`` views into the file (``'w+'`` is treated as ``'r+'``
        so that the file is never truncated).  They are mapped from
        `fileobj` itself (its file descriptor; for ``'r+'`` it must be open
        for writing), so that they come from the file the pickle stream
        was read from even if its path is replaced meanwhile.  Compressed
        files and file objects without a file descriptor (``io.BytesIO``)
        cannot be mapped: a ``UserWarning`` says so and the arrays are read
        into memory.  Object arrays are always read into memory.
    admitted : frozenset of str, optional
        The result of :func:`joblite._safe_unpickle.resolve_allowed`; None (the
        default) is full pickle.  joblib's array wrappers are always
        admitted, as inert placeholders of this module.
    ensure_native_byte_order : bool or 'auto', optional
        As in ``joblib.load``: convert arrays read into memory to the native
        byte order.  ``'auto'`` (default) means "when `mmap_mode` is None";
        memmaps always keep the file's byte order.
    where : str, optional
        How messages name the file; by default `filename`, else the name of
        `fileobj`, else its type.

    Returns
    -------
    object
        The object that was dumped, with its arrays (``numpy.matrix`` ones as
        ``numpy.matrix``, ``numpy.memmap`` ones as plain arrays unless
        memmapped).

    Raises
    ------
    JoblibFormatError
        (a ``ValueError``) if the file is truncated or corrupt, if it is not
        a joblib file, or if an object in it cannot be rebuilt (the original
        exception is chained as ``__cause__``).
    JoblibLegacyFormatError
        (a ``ValueError``) for files of joblib < 0.10.
    UnsafeLoadError
        If the file names a global that `admitted` does not admit; nothing
        named by it has been imported or run.
    ValueError
        For a bad `mmap_mode`, or an lz4 file without the ``lz4`` package.

    Notes
    -----
    Differences from ``joblib.load`` (1.6): ``numpy.matrix`` arrays come back
    as matrices (joblib under numpy 2 returns plain arrays); a compressed
    stream is read to its end, so that its checksum and end marker are
    verified; numpy dtypes are rebuilt through numpy's constructors and
    array states are checked before numpy sees them, which refuses crafted
    streams (a state applied twice, an object array with too few items)
    that would crash numpy, and could refuse a dtype of a third-party
    package whose pickled form is not numpy's.  Protocol 0 and 1 dumps are
    read too, although :func:`detect` does not recognise them.
    """
    mmap_mode = _validate.check_mmap_mode(mmap_mode)
    if ensure_native_byte_order == "auto":
        ensure_native_byte_order = mmap_mode is None
    elif ensure_native_byte_order and mmap_mode is not None:
        raise ValueError(
            "ensure_native_byte_order=True cannot be used with mmap_mode="
            f"{mmap_mode!r}: memmaps keep the byte order of the file"
        )
    if isinstance(fileobj, Source):
        source = fileobj
        where = source.where if where is None else where
        kind = source.compressed.codec if source.compressed is not None else None
    else:
        source = None
        if where is None:
            where = _describe(fileobj, filename)
        head = _peek_head(fileobj, where)
        kind = detect(head)
        if kind == COMPAT:
            raise JoblibLegacyFormatError(where)
        if kind is None and (not head or head[0] not in PROTOCOL_0_1_STARTS):
            # Not a compression signature and not a protocol >= 2 pickle.  A protocol 0/1
            # pickle (no signature, but an opcode that can start a pickle) is still tried.
            raise JoblibFormatError(where, f"not a joblib file (it starts with {bytes(head)!r})")

    if kind in COMPRESSIONS and mmap_mode is not None:
        warnings.warn(
            f'mmap_mode "{mmap_mode}" is not compatible with compressed file {where}. '
            f'"{mmap_mode}" flag will be ignored.',
            UserWarning,
            stacklevel=2,
        )
        mmap_mode = None
    if source is None:
        source = open_source(fileobj, kind, where)
    if mmap_mode is not None and not source.mappable():
        warnings.warn(
            f'In memory persistence is not compatible with mmap_mode "{mmap_mode}" flag '
            f"passed ({where}). mmap_mode option will be ignored.",
            UserWarning,
            stacklevel=2,
        )
        mmap_mode = None

    unpickler = JoblibUnpickler(
        source,
        mapfile=source.file if mmap_mode is not None else None,
        mmap_mode=mmap_mode,
        ensure_native=bool(ensure_native_byte_order),
        admitted=admitted,
    )
    try:
        value = unpickler.load()
        # The check of a compressed stream (adler32, CRC, xxh32 of lz4 when present) and
        # its end marker: a file cut in its last bytes is reported, not silently accepted.
        source.drain()
        return value
    except (JoblibFormatError, JoblibLegacyFormatError, UnsafeLoadError):
        raise
    except OSError:
        # Not the file's content (decompression errors are JoblibFormatError already):
        # reading the file failed, or memory-mapping it was not permitted (mmap_mode='r+'
        # on a read-only file) -- as joblib, let the system error through.
        raise
    except Exception as exc:
        try:
            at = f" near {'decompressed ' if source.compressed else ''}byte {source.tell()}"
        except Exception:  # pragma: no cover - tell() of a broken stream
            at = ""
        if isinstance(exc, EOFError):
            problem = f"the pickle stream ends before its STOP opcode{at}: the file is truncated"
        elif isinstance(exc, UnicodeDecodeError):
            problem = (
                f"cannot decode a string{at} (a corrupt file, or a pickle written by Python 2, which is not supported)"
            )
        else:
            detail = str(exc)
            if len(detail) > 300:
                detail = detail[:300] + "..."
            problem = (
                f"cannot be unpickled{at} (truncated or corrupt file, or an object in it "
                f"failed to rebuild): {type(exc).__name__}: {detail}"
            )
        raise JoblibFormatError(where, problem) from exc
