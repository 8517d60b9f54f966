"""Run-time faults and the resilience report under /_emulator/ — placeholder, being written now."""

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
