"""CLI sub-command modules, one per feature area, registered in rci/cli/main.py."""
