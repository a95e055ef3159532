"""The Locust side: the harness inside the Locust processes, wired to Locust's events by ``harness.plugin``.

``session`` is what lives across runs in the master (or the only) process (the embedded service, the profile,
signals) and makes one ``run`` per run (its directory, request log, sampler, thresholds verdict, report);
``worker`` is a forked or distributed worker's part. Around them: ``options`` (every option the harness adds to
Locust, declared once), ``preflight`` (checks before any user spawns), ``runcontrol`` (why a run stopped, its exit
code), ``progress`` (the console), ``webui`` (the Harness tab and pages in Locust's web UI) and ``live`` (a run
read from its directory while it goes on). The users themselves are ``harness.users``; the start-up hook that
lists ``options`` in ``locust --help`` is ``harness._help_hook``."""
