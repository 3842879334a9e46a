"""Entry point: `fbrec data|llm|train|evaluate|export|retrieve|serve|demo`. User errors print one line + a hint, exit 2."""

from __future__ import annotations

import os
import sys

import typer

from fbrec.cli import data as data_cli
from fbrec.cli import llm as llm_cli
from fbrec.cli import runs as runs_cli
from fbrec.cli import serve as serve_cli

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="fbrec: train, evaluate and export implicit-feedback recommenders.")
app.add_typer(runs_cli.app)    # train, evaluate, export, retrieve, simulate, demo
app.add_typer(serve_cli.app)   # serve
app.add_typer(data_cli.app, name="data")
app.add_typer(llm_cli.app, name="llm")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show tracebacks for errors"),
          verbose: bool = typer.Option(False, "--verbose", help="show third-party warnings and log lines (silenced "
                                       "by default)")) -> None:
    if debug:
        os.environ["FBREC_DEBUG"] = "1"
    if verbose:
        os.environ["FBREC_VERBOSE"] = "1"


def main(argv: list[str] | None = None) -> None:
    from fbrec.errors import FbrecError

    argv = sys.argv[1:] if argv is None else argv
    if "--debug" in argv:
        os.environ["FBREC_DEBUG"] = "1"
    if "--verbose" in argv[:1]:
        os.environ["FBREC_VERBOSE"] = "1"
    try:
        app(args=argv, prog_name="fbrec", standalone_mode=False)
    except FbrecError as exc:
        if os.environ.get("FBREC_DEBUG"):
            raise
        typer.secho(f"error: {exc.problem}" + (f" ({exc.rule})" if exc.rule else ""), err=True, fg="red")
        if exc.fix:
            typer.echo(f"hint: {exc.fix}", err=True)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors (typer vendors click) come here with standalone_mode=False
        if hasattr(exc, "format_message") and getattr(exc, "exit_code", 0) == 2:
            typer.secho(f"error: {exc.format_message()}", err=True, fg="red")
            typer.echo("hint: run the command with --help for its options", err=True)
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    main()
