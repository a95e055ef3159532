"""Latency and the open model: when each request leaves and how long it took. ``arrivals`` plans requests at a
rate whatever the answers (the open model), ``lean_http`` is the lean transport that keeps up with it,
``latency`` is what a Locust process does with each request besides Locust's own statistics, and ``hdr`` and
``hdr_log`` hold latency in bounded memory and on disk (``latency.hdr.arrows``)."""
