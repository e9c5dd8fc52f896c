"""The unpickler of joblib files: the shared checked unpickler, expanding joblib's array wrappers.

joblib pickles each array as a ``NumpyArrayWrapper`` whose state gives its
subclass, shape, order, dtype and alignment; the array's bytes follow the
wrapper's BUILD opcode outside the pickle grammar (see the docstring of
:mod:`joblite._joblib_format`).  :class:`JoblibUnpickler` maps the wrapper to
the inert :class:`_ArrayWrapper` (joblib is never imported), checks its
state, and reads, or memory-maps, the bytes that follow.
"""

import math
import pickle
import reprlib
import warnings

from .._safe_unpickle import NON_NATIVE, SafeUnpickler
from .errors import JoblibFormatError, JoblibLegacyFormatError

__all__ = ["JoblibUnpickler"]

_DEFAULT_ALIGNMENT = 16  # joblib's NUMPY_ARRAY_ALIGNMENT_BYTES

# Module paths under which joblib (or the copy vendored by scikit-learn < 0.23)
# pickled its array wrappers.
_JOBLIB_MODULES = (
    "joblib.numpy_pickle",
    "joblib.numpy_pickle_compat",
    "sklearn.externals.joblib.numpy_pickle",
    "sklearn.externals.joblib.numpy_pickle_compat",
)
_LEGACY_WRAPPERS = ("NDArrayWrapper", "ZNDArrayWrapper")


class _ArrayWrapper:
    """Stands in for joblib's ``NumpyArrayWrapper`` during unpickling: it only holds the state.

    It has no behaviour that the file can trigger: BUILD stores the state
    dict, and the unpickler turns the instance into the array right away.
    """

    __slots__ = ("state",)

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return "<joblib NumpyArrayWrapper placeholder>"


def _wrapper_global(module, name, where):
    """joblib's array wrapper as the inert :class:`_ArrayWrapper`; None for any other name."""
    if module in _JOBLIB_MODULES:
        if name == "NumpyArrayWrapper":
            return _ArrayWrapper
        if name in _LEGACY_WRAPPERS:
            raise JoblibLegacyFormatError(where)
    return None


class _InnerUnpickler(SafeUnpickler):
    """Reads the nested pickle stream of an object-dtype array, with the outer rules for globals."""

    def __init__(self, source, outer):
        super().__init__(source, admitted=outer.admitted, where=outer.where)

    def resolve(self, module, name):
        return _wrapper_global(module, name, self.where) or super().resolve(module, name)


class JoblibUnpickler(SafeUnpickler):
    """The shared checked unpickler (the C one cannot intercept BUILD), expanding array wrappers.

    `source` is the :class:`~joblite._joblib_format.streams.Source` of the
    stream.  With `mmap_mode` (already checked: ``'w+'`` is ``'r+'``),
    arrays that joblib allows to map are mapped from the open file
    `mapfile`; `ensure_native` swaps the others to the native byte order.
    `admitted` is the result of :func:`joblite._safe_unpickle.resolve_allowed`.
    """

    dispatch = SafeUnpickler.dispatch.copy()

    def __init__(self, source, *, mapfile, mmap_mode, ensure_native, admitted):
        super().__init__(source, admitted=admitted, where=source.where)
        self.source = source
        self.mapfile = mapfile
        self.mmap_mode = mmap_mode
        self.ensure_native = ensure_native

    def resolve(self, module, name):
        return _wrapper_global(module, name, self.where) or super().resolve(module, name)

    # -- BUILD: a finished wrapper becomes its array -----------------------------------------

    def load_build(self):
        SafeUnpickler.load_build(self)
        if type(self.stack[-1]) is _ArrayWrapper:
            self.stack[-1] = self._read_array(self.stack[-1])

    dispatch[pickle.BUILD[0]] = load_build

    def _fail(self, problem):
        raise JoblibFormatError(self.where, problem)

    def _wrapper_fields(self, wrapper):
        np = self.np
        state = getattr(wrapper, "state", None)
        if not isinstance(state, dict):
            self._fail(f"array wrapper near byte {self.source.tell()} has no state dict")
        try:
            subclass = state["subclass"]
            shape = state["shape"]
            order = state["order"]
            dtype = state["dtype"]
        except KeyError as exc:
            self._fail(f"array wrapper near byte {self.source.tell()} lacks the field {exc}")
        if not (isinstance(subclass, type) and issubclass(subclass, np.ndarray)):
            self._fail(f"array wrapper: subclass {reprlib.repr(subclass)} is not a numpy.ndarray subclass")
        if not isinstance(dtype, np.dtype):
            self._fail(f"array wrapper: dtype is a {type(dtype).__name__}, not a numpy.dtype")
        if type(shape) is not tuple or not all(
            type(n) is int and n >= 0 or isinstance(n, np.integer) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            self._fail(f"array wrapper: shape {reprlib.repr(shape)} is not a tuple of non-negative integers")
        if order != "C" and order != "F":
            self._fail(f"array wrapper: order {reprlib.repr(order)} is neither 'C' nor 'F'")
        shape = tuple(map(int, shape))
        allow_mmap = bool(state.get("allow_mmap", False))
        alignment = state.get("numpy_array_alignment_bytes")  # absent before joblib 1.2
        if alignment is not None and (
            not isinstance(alignment, int) or isinstance(alignment, bool) or not 1 <= alignment <= 255
        ):
            self._fail(f"array wrapper: alignment {reprlib.repr(alignment)} is not an integer in 1..255")
        return subclass, shape, order, dtype, allow_mmap, alignment

    def _at_frame_end(self):
        # joblib ends the protocol-4 frame right after the wrapper; the array data follow
        # outside any frame, so read from the file once the frame is used up.
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        if frame is not None:
            if frame.read(1):
                self._fail(
                    f"array data near byte {self.source.tell()} do not start at the end of a "
                    "pickle frame: the file is corrupt or was not written by joblib"
                )
            self._unframer.current_frame = None

    def _skip_padding(self, alignment):
        pad = self.source.read_exact(1, "the padding before an array")[0]
        if pad > alignment:
            self._fail(
                f"array padding of {pad} bytes near byte {self.source.tell()} exceeds the alignment of {alignment}"
            )
        if pad and self.source.read_exact(pad, "the padding before an array") != b"\xff" * pad:
            self._fail(f"array padding before byte {self.source.tell()} is not 0xff bytes")
        return 1 + pad

    def _read_array(self, wrapper):
        np = self.np
        subclass, shape, order, dtype, allow_mmap, alignment = self._wrapper_fields(wrapper)
        self._at_frame_end()
        memmapped = False
        if dtype.hasobject:
            array = self._read_object_array(shape)
        elif self.mmap_mode is not None and allow_mmap:
            array = self._map_array(shape, order, dtype, alignment)
            memmapped = True
        else:
            array = self._read_into(shape, order, dtype, alignment)
        if self.ensure_native and not memmapped and not dtype.hasobject and _byte_order_mismatch(dtype):
            # joblib's _ensure_native_byte_order, in place: the array is ours alone.
            array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
        if subclass is not np.ndarray and subclass is not np.memmap and type(array) is not subclass:
            array = array.view(subclass)
        return array

    def _read_object_array(self, shape):
        np = self.np
        inner = _InnerUnpickler(self.source, self)
        array = inner.load()
        if not isinstance(array, np.ndarray) or not array.dtype.hasobject:
            self._fail(
                f"the nested pickle of an object array ending near byte {self.source.tell()} "
                f"holds a {type(array).__name__}, not an object array"
            )
        if array.shape != shape:
            self._fail(
                f"the object array ending near byte {self.source.tell()} has shape "
                f"{array.shape}, its wrapper says {shape}"
            )
        return array

    def _read_into(self, shape, order, dtype, alignment):
        np = self.np
        source = self.source
        if alignment is not None:
            self._skip_padding(alignment)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        most = source.most_remaining()
        if most is not None and nbytes > most:
            if source.compressed is None:
                left = f"only {most} remain (truncated or corrupt file)"
            else:
                left = (
                    f"the rest of the {source.compressed.codec} stream can decompress to at most {most} (corrupt file)"
                )
            self._fail(
                f"an array of shape {shape} and dtype {dtype} needs {nbytes} bytes at "
                f"{'decompressed ' if source.compressed else ''}byte {source.tell()}, but {left}"
            )
        try:
            flat = np.empty(count, dtype=dtype)
        except MemoryError:
            # Within what the stream can hold (bz2 has no tighter bound): a stream without
            # those bytes is corrupt; a valid one really needs more memory than there is
            # (reported as a JoblibFormatError caused by this MemoryError).
            source.skip_exact(nbytes, f"an array of {nbytes} bytes")
            raise
        except ValueError as exc:
            self._fail(f"cannot make an array of shape {shape} and dtype {dtype}: {exc}")
        if nbytes:
            with memoryview(flat.view(np.uint8).reshape(-1)) as view:
                source.readinto_exact(view, f"an array of {nbytes} bytes")
        if order == "F":
            return flat.reshape(shape[::-1]).transpose()
        return flat.reshape(shape)

    def _map_array(self, shape, order, dtype, alignment):
        np = self.np
        source = self.source
        start = source.tell()
        offset = start + (self._skip_padding(alignment) if alignment is not None else 0)
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes > source.size:
            self._fail(
                f"an array of shape {shape} and dtype {dtype} needs {nbytes} bytes at byte "
                f"{offset}, but the file has {source.size} bytes (truncated or corrupt file)"
            )
        # Mapped from the open file the stream is read from, never from its path:
        # a file replaced meanwhile (temporary + rename) cannot mix two versions.
        array = np.memmap(self.mapfile, dtype=dtype, mode=self.mmap_mode, offset=offset, shape=shape, order=order)
        source.seek(offset + nbytes)
        if alignment is None and start % _DEFAULT_ALIGNMENT:
            warnings.warn(
                f"the memmapped array at byte {offset} of {self.where} is not aligned to "
                f"{_DEFAULT_ALIGNMENT} bytes (file written by joblib < 1.2); some libraries "
                "(BLAS, PyTorch) may crash on it: dump it again to align it",
                UserWarning,
                stacklevel=2,
            )
        return array


def _byte_order_mismatch(dtype):
    """joblib's rule: swap when the dtype, or every field of a structured dtype, is non-native."""
    if dtype.byteorder == NON_NATIVE:
        return True
    return bool(
        dtype.byteorder == "|"
        and dtype.fields
        and all(field[0].byteorder == NON_NATIVE for field in dtype.fields.values())
    )
