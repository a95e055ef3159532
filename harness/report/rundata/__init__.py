"""The report's reading layer: a run directory's files read back (``load``), the request log as sorted arrays
(``requests``) or, where it is sampled, the HDR histograms' figures (``hdr_requests``), the sampler's tables on its
ticks (``resources``), the Prometheus series (``prometheus``), all on one time axis (``view``: ``RunView``), and
the findings read from that view (``analysis``, with ``outage`` for a stretch where the service was unreachable).

Nothing here renders: the report's pages (``harness.report``) and the live web UI (``harness.locust_side.live``)
stand on this layer, and it imports nothing of the report above it."""
