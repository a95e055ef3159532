"""The seed's suites, run outside a Locust session: scalability (``scaling``: growth exponents and the Universal
Scalability Law; ``scaling_run``: a scalability run directory; ``locust_step``: one headless Locust run as a
subprocess, the unit of the user-scaling steps), seed 002's criteria (``criteria`` judges what
``_criteria_checks`` measures: ``python -m harness criteria``) and seed 000's performance report
(``perf_report``)."""
