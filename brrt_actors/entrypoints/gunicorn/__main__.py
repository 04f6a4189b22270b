"""`python -m brrt_actors.entrypoints.gunicorn`: serve a spec with gunicorn's arbiter."""
from brrt_actors.entrypoints.gunicorn import main

if __name__ == "__main__":
    main()
