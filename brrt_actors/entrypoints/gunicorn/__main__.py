"""`python -m brrt_actors.entrypoints.gunicorn`: serve a spec with gunicorn's arbiter."""
from __future__ import annotations

# NOTE: define nothing here. gunicorn loads the worker class by its name,
# `brrt_actors.entrypoints.gunicorn.Worker`, from the package; a class defined in this
# `__main__` module would be a second copy, distinct from the one gunicorn runs.
from brrt_actors.entrypoints.gunicorn import main

if __name__ == "__main__":
    main()
