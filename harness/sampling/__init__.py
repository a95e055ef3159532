"""Resource sampling on the run's clock: the sampler process (``python -m harness.sampling.sampler``), its readers
of processes (``proc``), the host (``host``) and the GPU (``gpu``: NVML, GPUtil, none, fake), read together per tick
(``readers``), and the Locust side that starts it and merges workers' samples (``monitoring``). Across hosts: an
agent per host (``python -m harness.sampling.agent``) streams the same rows to the hub of the process writing the
run directory (``hub``; messages in ``wire``), whose clocks are estimated from round trips (``clock``; Locust
workers' through Locust's own messages, ``worker_clock``)."""
