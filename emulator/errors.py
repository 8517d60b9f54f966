"""The one exception every layer raises to answer with an error instead of a reply."""

from __future__ import annotations

from collections.abc import Mapping

from emulator.exchange import Failure


class ApiError(Exception):
    """Raised anywhere below the protocol adapter; the adapter renders it in its own envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = Failure(
            status=status, message=message, type=type, code=code, param=param, headers=dict(headers or {})
        )

    @classmethod
    def invalid(cls, message: str, param: str | None = None) -> ApiError:
        return cls(400, message, param=param)
