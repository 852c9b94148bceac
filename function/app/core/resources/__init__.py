"""The machine: usable CPUs, memory limits and the per-request budget, heap trimming, and work split into row bands."""
