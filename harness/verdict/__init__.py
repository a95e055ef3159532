"""The verdict: pass/fail thresholds declared once (``--threshold``, profile files) and judged on a run, on its
request log and resource samples (``thresholds``) or on its HDR histograms in bounded memory
(``hdr_thresholds``). The report's page of the verdict is ``harness.report.verdict``."""
