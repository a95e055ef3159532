"""Everything that measures and reports. Its rooms, from what users type down to the files a run leaves:

- ``__main__``: ``python -m harness`` (report, campaign, baseline, compare, ab, noise, criteria);
- flat, because locustfiles and installed start-up hooks name them: ``plugin`` (the event wiring every locustfile
  imports), ``users`` (the base user, the catalog's ids, the response checks), ``_help_hook`` (lists the options
  in ``locust --help``) and ``_locust_hook`` (installs it as a .pth);
- ``locust_side/``: the harness inside the Locust processes: ``session`` (what lives across runs), ``run`` (one
  run), ``worker``, ``options`` (every option, declared once), ``preflight``, ``runcontrol``, ``progress``,
  ``webui`` and ``live`` (a run read while it goes on);
- ``timing/``: latency and the open model: ``arrivals`` (the schedule), ``lean_http`` (its transport),
  ``latency`` (each request's figures), ``hdr`` and ``hdr_log`` (histograms in memory and on disk);
- ``verdict/``: ``thresholds`` and ``hdr_thresholds``, a run judged against its declared thresholds;
- ``target/``: the service under test: ``embedded``, ``reaper``, ``faults`` and ``_http``;
- ``profiling/``: ``cpu_profile``, ``profile_summary`` and ``gpu_profile``;
- ``suites/``: the seed's suites: ``scaling``, ``scaling_run``, ``locust_step``, ``criteria`` (judging what
  ``_criteria_checks`` measures) and ``perf_report``;
- ``gate/``: the regression gate: its runners ``cli``, ``campaign``, ``conditions``, ``baselines`` and ``ab``, and
  its data and statistics ``campaign_data``, ``fingerprint``, ``metrics_table``, ``stats``, ``paired`` and
  ``compare``;
- ``report/``: the pages: ``build`` (a run's report) with ``summary``, ``html``, ``tables``, ``charts``,
  ``distribution``, ``open_model``, ``profile``, ``prometheus``, ``verdict``, ``stress`` and ``assets``; the gate's
  ``comparison`` and ``ab_page``; under them ``report/rundata/``, the reading layer: ``load``, ``view``,
  ``requests``, ``resources``, ``hdr_requests``, ``prometheus``, and the findings ``analysis`` and ``outage``;
- ``sampling/``: the ``sampler`` process (``args``; ``readers`` of ``proc``, ``host`` and ``gpu``), which
  ``monitoring`` starts; across hosts an ``agent`` per host, the ``hub``, their messages (``wire``) and clocks
  (``clock``, ``worker_clock``);
- ``recording/``: what a run records: ``rundir``, ``recorder``, ``redact``, ``_columns`` and ``prometheus``.

The floors (tests/test_architecture.py, README.md "Architecture") cut across three folders: ``recording/`` with
``timing.hdr``, ``timing.hdr_log``, ``verdict.thresholds``, ``target.faults``, ``target.reaper`` and
``target._http`` is the harness base, which every other room may import and which imports nothing else of harness.
"""
