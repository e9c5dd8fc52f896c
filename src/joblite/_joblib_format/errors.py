"""The two errors of the joblib reader: a damaged file, and a file of joblib < 0.10."""

from .._safe_unpickle import CorruptFileError

__all__ = ["JoblibFormatError", "JoblibLegacyFormatError"]


class JoblibFormatError(CorruptFileError):
    """A joblib file is truncated, corrupted, or not what its first bytes say.

    Attributes
    ----------
    where : str
        The file (its name, or a description of the file object).
    problem : str
        What is wrong, with the byte offset where it is known.
    """

    def __init__(self, where, problem):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        return type(self), (self.where, self.problem)


class JoblibLegacyFormatError(CorruptFileError):
    """The file was written by joblib < 0.10 (arrays in separate files); not supported."""

    def __init__(self, where):
        self.where = where
        super().__init__(
            f"{where}: written by joblib < 0.10, which stores arrays in separate .npy/.z files "
            "next to the pickle; this older format is not supported: load it with joblib and "
            "dump it again"
        )

    def __reduce__(self):
        return type(self), (self.where,)
