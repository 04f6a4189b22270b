"""Entry point: `python -m brrt_actors ...` and the `brrt` console script."""
from brrt_actors.entrypoints.patching import patch_all

# NOTE: first, before anything imports socket, ssl or threading: a module imported earlier
# keeps the blocking ones (the only other patch_all is in tests/conftest.py).
patch_all()

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

# The exit code when the reader of our output went away (`brrt routes SPEC | head -1`): the
# shell's code for a process ended by SIGPIPE, as `cat` or `ls` would give.
READER_GONE_EXIT = 128 + signal.SIGPIPE


def main() -> None:
    """Run the brrt command line; exit quietly when the reader of its output goes away."""
    from brrt_actors.entrypoints.cli import run

    try:
        try:
            code = run(sys.argv[1:])
        finally:
            # NOTE: flushed here, not at exit, where a reader gone away would print
            # "Exception ignored ... BrokenPipeError" whatever the command did.
            sys.stdout.flush()
    except BrokenPipeError:
        # NOTE: what is left in stdout's buffer goes nowhere; stderr still tells of errors.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = READER_GONE_EXIT
    sys.exit(code)


if __name__ == "__main__":
    main()
