"""The command groups of mimctl beyond the core ones in cli.py."""
