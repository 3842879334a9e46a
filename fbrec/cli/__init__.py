"""The `fbrec` command line (typer). Nothing imports this package."""
