"""The /_emulator/ control API — placeholder, replaced by the control API being written now."""

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
