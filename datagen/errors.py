"""The one error type for bad input, which always says where the problem is.

>>> str(DataError("not a date", path="reviews.json.gz", line=12, field="date"))
"reviews.json.gz:12: field 'date': not a date"
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Bad or missing input, located by file, line (or key) and field where known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}" if isinstance(self.line, int) else f" [key {self.line!r}]"
        text = f"field {self.field!r}: {self.message}" if self.field else self.message
        text = f"{where}: {text}" if where else text
        return f"{text}\n  {self.hint}" if self.hint else text

    def naming(self, old: str, new: str) -> DataError:
        """The same error with the path `old` written as `new` in its path, message and hint (a staged copy's
        folder as the build it stands for)."""
        swap = lambda text: None if text is None else text.replace(old, new)
        return type(self)(swap(self.message), path=swap(self.path), line=self.line, field=self.field, hint=swap(self.hint))

    def __reduce__(self):
        # Whole through pickle, as a worker process's error reaches its driver (an exception pickles only its
        # args, here the formatted text, which would lose the path and the hint as fields).
        return _rebuilt, (type(self), self.message, self.path, self.line, self.field, self.hint)


def _rebuilt(error_class: type, message: str, path: str | None, line: int | str | None, field: str | None, hint: str | None) -> DataError:
    return error_class(message, path=path, line=line, field=field, hint=hint)
