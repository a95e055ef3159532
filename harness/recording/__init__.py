"""Recording a run: the run directory and its files (``rundir``, the one contract between measuring and
reporting), every request as columns streamed to it (``recorder``), the one redaction rule applied to whatever is
recorded (``redact``), Python lists to Arrow columns without pandas (``_columns``), and the service's own metrics
pulled from a Prometheus over the run's window (``prometheus``)."""
