"""One stack per concern; ``infra/app.py`` wires them in dependency order."""
