"""tokenhub-emulator: an offline emulator of LLM gateway HTTP APIs."""

__version__ = "0.1.0"
