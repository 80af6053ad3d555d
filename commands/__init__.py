"""Thin Typer sub-apps, one per method; installed as `wisecli.commands`."""

if __name__ == "commands":  # pragma: no cover - guard against the source folder on sys.path
    raise ImportError("import 'wisecli.commands', not the top-level 'commands' folder")
