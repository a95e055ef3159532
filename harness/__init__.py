"""Everything that measures and reports. Its rooms:

- the Locust side: ``plugin`` (event wiring every locustfile imports), ``session`` (what lives across runs: the
  embedded service, the profile, signals) and ``run`` (one run: its directory, request log, thresholds, verdict),
  ``users``, ``options``, ``preflight``, ``progress``, ``runcontrol``, ``webui`` and ``live``;
- the open model and latency: ``arrivals``, ``latency``, ``hdr``, ``hdr_log``, ``hdr_thresholds``;
- ``sampling/``: the sampler process and its readers of processes, host and GPU;
- ``report/``: a run's combined report and the comparison report;
- ``gate/``: campaigns, baselines, statistics and ``compare`` (the regression gate);
- profiling and the seed's suites: ``cpu_profile``, ``profile_summary``, ``gpu_profile``, ``scaling``,
  ``criteria``, ``perf_report``.
"""
