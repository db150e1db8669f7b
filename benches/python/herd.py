"""Herds with the Python alf 0.7.1 (issue 6, item 3), as `herd` does with alf-reqwest.

python herd.py --base http://127.0.0.1:PORT [--quick] [--tasks 1000] [--rounds 10]
               [--lifetime 2] [--tasks-401 50]
"""

import argparse
import sys
import threading
import time
from collections import Counter

from common import admin, machine, new_client, stats


def burst(client, url, n):
    """n threads wait on a barrier, then each sends one GET."""
    barrier = threading.Barrier(n + 1)
    results = [None] * n
    done = [None] * n

    def worker(i):
        barrier.wait()
        try:
            r = client.get(url, timeout=30)
            results[i] = r.status_code
        except Exception as e:  # noqa: BLE001 - reported, not raised
            results[i] = repr(e)
        done[i] = time.monotonic()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    return results, min(done), elapsed


def summary(results, elapsed):
    c = Counter(results)
    return " ".join(f"{v}x{k}" for k, v in sorted(c.items(), key=str)) + f" in {elapsed * 1e3:.1f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--tasks-401", type=int, default=50)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--lifetime", type=int)
    a = ap.parse_args()
    rounds = a.rounds or (2 if a.quick else 10)
    lifetime = a.lifetime or (1 if a.quick else 2)
    base, url = a.base, f"{a.base}/api"

    print("== herd (Python alf 0.7.1): token requests caused by concurrent callers")
    print(f"machine: {machine()}")
    print(
        f"tasks={a.tasks} threads (cold start, at expiry), tasks-401={a.tasks_401}, "
        f"rounds={rounds}, token lifetime={lifetime}s (Python alf renews at expiry)"
    )
    admin(base, lifetime=lifetime, unauthorized_ppm=0, token_delay_ms=0)
    cold_n, exp_n, unauth_n = [], [], []
    for rnd in range(1, rounds + 1):
        client = new_client(base, pool=a.tasks)
        admin(base, reset=1)
        cold, first_done, el1 = burst(client, url, a.tasks)
        cold_tokens = stats(base)["token_requests"]
        # Python alf's token expires `expires_in` s after its response was received.
        time.sleep(max(0.0, first_done + lifetime + 0.01 - time.monotonic()))
        before = stats(base)["token_requests"]
        at_exp, _, el2 = burst(client, url, a.tasks)
        exp_tokens = stats(base)["token_requests"] - before
        client.close()

        client = new_client(base, pool=a.tasks_401)
        client.get(url, timeout=30)
        admin(base, unauthorized_ppm=1_000_000)
        before = stats(base)["token_requests"]
        unauth, _, el3 = burst(client, url, a.tasks_401)
        unauth_tokens = stats(base)["token_requests"] - before
        admin(base, unauthorized_ppm=0)
        client.close()
        print(
            f"round {rnd:>2}: cold start {a.tasks} tasks -> {cold_tokens} token request(s) "
            f"[{summary(cold, el1)}]; at expiry -> {exp_tokens} [{summary(at_exp, el2)}]; "
            f"{a.tasks_401} x 401 -> {unauth_tokens} [{summary(unauth, el3)}]"
        )
        cold_n.append(cold_tokens)
        exp_n.append(exp_tokens)
        unauth_n.append(unauth_tokens)

    def stat(v):
        return f"min {min(v)} max {max(v)} total {sum(v)} over {len(v)} rounds"

    print()
    print("token requests per herd (goal 1):")
    print(f"  cold start, {a.tasks} tasks:  {stat(cold_n)}")
    print(f"  at expiry, {a.tasks} tasks:   {stat(exp_n)}")
    print(f"  {a.tasks_401} concurrent 401s:     {stat(unauth_n)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
