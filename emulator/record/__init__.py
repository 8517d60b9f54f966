"""Recording: the proxy in front of a real gateway, and what turns its answers into a scenario.

The modes and bounds below are shared by the `record` command's flags (emulator/cli/record.py) and the proxy.
"""

MODES = ("once", "new", "replay")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # an upstream answer larger than this (inflated) is not recorded
DEFAULT_MAX_S = 600.0  # an upstream answer that takes longer is cut off, not recorded
