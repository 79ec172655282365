"""CLI sub-command modules, one per feature area, registered in rci/cli_commands.py."""
