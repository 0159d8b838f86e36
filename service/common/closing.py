"""`with obj:` closes `obj`: the context-manager half of every client that owns a connection or a file."""

from __future__ import annotations

from typing import Self


class Closing:
    """Base for classes with a `close()`; `with X(...) as x:` closes x on the way out, error or not."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
