"""Entry point: `python -m brrt_actors ...` and the `brrt` console script."""
from brrt_actors.entrypoints.patching import patch_all

# NOTE: first, before anything imports socket, ssl or threading (DESIGN.md, gevent discipline).
patch_all()

import sys  # noqa: E402


def main() -> None:
    """Run the brrt command line."""
    from brrt_actors.entrypoints.cli import run

    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
