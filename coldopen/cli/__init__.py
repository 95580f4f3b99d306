"""The `coldopen` command: parser, commands, rendering, the demo (main.py has the entry points)."""
