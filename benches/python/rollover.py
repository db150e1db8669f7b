"""Rollover with the Python alf 0.7.1 (issue 6, item 5), as `rollover` does with alf-reqwest.

python rollover.py --base http://127.0.0.1:PORT [--quick] [--seconds 20] [--lifetime 2]
                   [--token-delay-ms 20] [--concurrency 8] [--pace-ms 4]

Python alf has no early or proactive refresh: a token is renewed when it has expired, by every
thread that finds it expired. Variants: steady (tokens live 3600 s) and on-demand.
"""

import argparse
import sys
import threading
import time

from common import admin, fmt, machine, new_client, percentiles, stats


def drive(client, url, seconds, concurrency, pace):
    until = time.monotonic() + seconds
    out = []
    failed = [0]
    lock = threading.Lock()

    def worker():
        mine = []
        bad = 0
        while time.monotonic() < until:
            start_unix = time.time()
            t0 = time.perf_counter()
            try:
                r = client.get(url, timeout=30)
                ok = r.status_code == 200
            except Exception:  # noqa: BLE001 - counted as a failure
                ok = False
            lat = time.perf_counter() - t0
            if ok:
                mine.append((start_unix * 1e6, lat))
            else:
                bad += 1
            time.sleep(pace)
        with lock:
            out.extend(mine)
            failed[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, failed[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--lifetime", type=int, default=2)
    ap.add_argument("--token-delay-ms", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--pace-ms", type=float, default=4)
    a = ap.parse_args()
    seconds = a.seconds or (3.0 if a.quick else 20.0)
    base, url = a.base, f"{a.base}/api"
    delay = a.token_delay_ms / 1e3

    print("== rollover (Python alf 0.7.1): latency across token renewals")
    print(f"machine: {machine()}")
    print(
        f"{seconds} s per variant, token lifetime {a.lifetime} s, token endpoint delay "
        f"{a.token_delay_ms}.000ms, {a.concurrency} request threads, one request every "
        f"{a.pace_ms:g} ms each"
    )
    admin(base, token_delay_ms=a.token_delay_ms, unauthorized_ppm=0)
    results = {}
    for name, life in (("steady", 3600), ("on-demand", a.lifetime)):
        admin(base, lifetime=life)
        client = new_client(base, pool=a.concurrency)
        drive(client, url, 0.3, a.concurrency, a.pace_ms / 1e3)
        admin(base, reset=1)
        samples, failed = drive(client, url, seconds, a.concurrency, a.pace_ms / 1e3)
        client.close()
        log = stats(base)["token_log_unix_us"]
        win, out, every = [], [], []
        for start, lat in samples:
            end = start + lat * 1e6
            every.append(lat)
            if any(start <= b and end >= a_ for a_, b in log):
                win.append(lat)
            else:
                out.append(lat)
        waited = sum(1 for x in every if x >= delay)
        print(
            f"{name:<10} renewals={len(log):<3} failed={failed} requests >= token delay: {waited}"
        )
        p_all, p_win, p_out = percentiles(every), percentiles(win), percentiles(out)
        print(f"  all requests      {fmt(p_all)}")
        print(f"  renewal windows   {fmt(p_win)}")
        print(f"  outside windows   {fmt(p_out)}")
        results[name] = (p_all, p_win)
    print("proactive  not available in Python alf 0.7.1 (no background or early refresh)")
    print()
    steady = results["steady"][0]
    print(f"steady state: p50 {steady['p50'] * 1e3:.3f}ms p99 {steady['p99'] * 1e3:.3f}ms")
    w = results["on-demand"][1]
    ratio = w["p99"] / steady["p99"] if steady["p99"] else 0
    print(
        f"on-demand : renewal windows p50 {w['p50'] * 1e3:.3f}ms p99 {w['p99'] * 1e3:.3f}ms "
        f"= {ratio:.2f}x steady p99"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
