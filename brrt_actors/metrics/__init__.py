"""Prometheus figures of an app: per operation, per actor, per connection pool (`figures`),
and their multi-process form for ``brrt serve --workers N`` (`multiprocess`)."""
