"""The regression gate: campaigns of repeated runs under recorded conditions (``campaign``, ``conditions``,
``fingerprint``), their per-run metrics (``metrics_table``), baselines (``baselines``), the statistics (``stats``)
and the verdict "did this build get slower?" (``compare``); ``cli`` registers the commands."""
