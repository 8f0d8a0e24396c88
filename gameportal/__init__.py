import os

__version__ = "0.1.0"

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any of our metrics exist: their values then ask a cached process id, not
    # os.getpid() (a system call) on every increment, three times per request.
    from gameportal.kit.metrics_storage import use_cached_process_id

    use_cached_process_id()
