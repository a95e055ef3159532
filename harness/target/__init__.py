"""The target: the service under test as the harness reaches it. ``embedded`` starts the service itself when no
host is given, ``reaper`` removes it (and its directory) whatever way the Locust process ends, ``faults`` reads
the faults a service injects on purpose, and ``_http`` is the harness's own HTTP calls to it (catalog, cache
stats) with its tokens."""
