"""Anthropic Messages — placeholder, replaced by the Messages adapter being written now."""

from emulator.protocols.base import Adapter


class MessagesAdapter(Adapter):
    protocol = "messages"
