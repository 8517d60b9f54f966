"""The command line: `tokenhub-emulator serve | validate | init | journal | record | report`."""
