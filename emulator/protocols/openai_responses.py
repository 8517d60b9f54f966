"""OpenAI Responses — placeholder, replaced by the Responses adapter being written now."""

from emulator.protocols.base import Adapter


class ResponsesAdapter(Adapter):
    protocol = "responses"
