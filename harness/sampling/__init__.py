"""Resource sampling on the run's clock: the sampler process (``python -m harness.sampling.sampler``), its readers
of processes (``proc``), the host (``host``) and the GPU (``gpu``: NVML, GPUtil, none, fake), and the Locust side
that starts it and merges workers' samples (``monitoring``)."""
