"""Shared helpers of the Python comparison scripts (the Python alf 0.7.1 against the Rust
load server started with `load-server --serve`)."""

import logging
import math
import platform

import requests
from requests.adapters import HTTPAdapter

from alf.client import Client

CLIENT_ID = "alf-bench"
CLIENT_SECRET = "bench-secret"

# urllib3 warns each time its pool of 10 connections is full ("discarding connection"): noise
# for 1000 threads.
logging.getLogger("urllib3").setLevel(logging.ERROR)

_admin = requests.Session()


def admin(base, **knobs):
    """Change the server's knobs: lifetime, token_delay_ms, unauthorized_ppm, reset."""
    r = _admin.post(f"{base}/admin", params=knobs, timeout=10)
    r.raise_for_status()


def stats(base):
    """The server's counters and token log (`token_log_unix_us`: [arrival, end] pairs)."""
    r = _admin.get(f"{base}/stats", timeout=10)
    r.raise_for_status()
    return r.json()


def new_client(base, pool=1000):
    """A Python alf Client for the load server; its resource session gets a pool as large as
    the number of threads (the token manager's own session keeps requests' default)."""
    client = Client(
        token_endpoint=f"{base}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool)
    client.mount("http://", adapter)
    return client


def percentiles(samples):
    """Nearest-rank p50/p90/p99/p99.9/max of latencies in seconds, as the Rust side prints."""
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return dict(n=0, p50=0, p90=0, p99=0, p999=0, max=0)

    def at(q):
        return s[min(max(math.ceil(q * n), 1), n) - 1]

    return dict(n=n, p50=at(0.5), p90=at(0.9), p99=at(0.99), p999=at(0.999), max=s[-1])


def fmt(p):
    def ms(x):
        return f"{x * 1e3:.3f}ms"

    return (
        f"n={p['n']:>7}  p50={ms(p['p50']):>8}  p90={ms(p['p90']):>8}  "
        f"p99={ms(p['p99']):>8}  p99.9={ms(p['p999']):>8}  max={ms(p['max']):>8}"
    )


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
