from __future__ import annotations

from gridhive.errors import FieldError, PayloadTooLarge


class BatchTooLarge(PayloadTooLarge):
    """More items than a batch may hold: nothing of the batch is stored."""

    @classmethod
    def field(cls, path: str, message: str) -> BatchTooLarge:
        return cls(message, errors=[FieldError(message=message, path=path)])
