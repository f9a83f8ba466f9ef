"""The `tcpdiag` command group: the only place that knows argv, environment, consoles, exit codes.

Exit codes (contract): 0 ok; 1 `check` found findings at/above the threshold; 2 usage error or an
input that cannot be read at all (one line on stderr); 3 internal error (a bug: short message,
traceback only with --debug); 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from tcpdiag import __version__
from tcpdiag.errors import TcpdiagError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, then exit."""
    from tcpdiag.cli.common import say

    say("error", message)
    raise SystemExit(code)


class TcpdiagGroup(click.Group):
    """Turns every failure into the contract's exit codes, never a traceback (unless --debug)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            module = importlib.import_module(COMMANDS[cmd_name])
            command = getattr(module, cmd_name)
            assert isinstance(command, click.Command)
            self.add_command(command)
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", True)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug")) or os.environ.get("TCPDIAG_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except TcpdiagError as exc:
            if debug:
                traceback.print_exc()
            fail(str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("tcpdiag: interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _silence_broken_pipe()
            raise SystemExit(EXIT_OK) from None
        except Exception as exc:
            if debug:
                traceback.print_exc()
            else:
                from tcpdiag.cli.common import say

                say(
                    "internal error",
                    f"{type(exc).__name__}: {exc} "
                    "(this is a bug; run with --debug for the traceback)",
                )
            raise SystemExit(EXIT_INTERNAL) from None


def _silence_broken_pipe() -> None:
    # The reader went away (`| head`): point stdout at devnull so the interpreter's final flush
    # does not raise again at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


@click.group(cls=TcpdiagGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tcpdiag")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
def cli(debug: bool) -> None:
    """tcpdiag: why did that TCP connection or TLS handshake fail?

    Reads pcap/pcapng captures (optionally gzip/zstd), follows every TCP flow and TLS handshake,
    and explains each failure in plain words with the frames that prove it.
    """


# Subcommand -> module defining it, imported only when that command runs (or help lists it):
# `tcpdiag check` in CI starts once per capture, and need not load `explain`'s Markdown
# renderer or `live`'s capture code.
COMMANDS: dict[str, str] = {
    "analyze": "tcpdiag.cli.analyze",
    "check": "tcpdiag.cli.check",
    "explain": "tcpdiag.cli.explain",
    "live": "tcpdiag.cli.live",
    "lab": "tcpdiag.cli.lab",
}


def main() -> None:
    cli(prog_name="tcpdiag")
