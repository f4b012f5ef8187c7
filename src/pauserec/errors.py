"""Error types. Every error a user can cause says what is wrong and where (file, line, key)."""

from __future__ import annotations


class PauseRecError(Exception):
    """Base class for all errors raised on purpose by pauserec."""


class DataError(PauseRecError):
    """Malformed or inconsistent input data.

    Args:
        message: what is wrong.
        path: the file (or directory) concerned.
        line: 1-based line number, when the format is line-oriented.
        key: the JSON key / column / field concerned.
    """

    def __init__(self, message: str, *, path: object = None, line: int | None = None, key: str | None = None):
        self.path, self.line, self.key = path, line, key
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class ConfigError(PauseRecError):
    """An invalid configuration value or combination."""


class ArtifactMismatchError(PauseRecError):
    """An artifact (SID catalogue, checkpoint, run directory) does not belong to the data or model it is used with."""


class DivergedError(PauseRecError):
    """A model produced non-finite numbers (NaN/inf gradients in training, NaN scores in decoding)."""
