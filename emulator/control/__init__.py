"""The /_emulator/ control API: scenarios, state, the journal, faults and the report, its OpenAPI document."""
