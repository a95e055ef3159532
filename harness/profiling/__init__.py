"""Profiling: where the service's time goes and what its GPU does. ``cpu_profile`` runs a py-spy (or cProfile)
window during a run (``--profile-cpu``), ``profile_summary`` turns the profiles into one summary, a speedscope
file and a flame graph, and ``gpu_profile`` samples the GPU at a high rate (seed 000's profiling suite)."""
