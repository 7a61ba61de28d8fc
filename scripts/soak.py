"""Soak: mixed signed load with boto3 for a fixed time, recording latency and the server's memory.

Started by scripts/soak.sh (which builds the binary and provides the virtual environment).
Starts its own server on a fresh SQLite database (or PostgreSQL with MARKETMETER_TEST_DB=postgres)
with the e2e seed plus SOAK_CUSTOMERS generated buyers, runs SOAK_THREADS client threads for
SOAK_SECONDS, and prints a Markdown report: per operation count, errors and latency percentiles,
and the server's RSS every SOAK_SAMPLE seconds. Exits non-zero on any unexpected error or when
RSS in the last quarter exceeds the first quarter's by more than SOAK_MAX_GROWTH_MIB.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))

from botocore.exceptions import ClientError  # noqa: E402

import conftest  # noqa: E402  (the e2e harness: server process, clients, the seed world)

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
THREADS = int(os.environ.get("SOAK_THREADS", "4"))
CUSTOMERS = int(os.environ.get("SOAK_CUSTOMERS", "200"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE", "10"))
MAX_GROWTH_MIB = float(os.environ.get("SOAK_MAX_GROWTH_MIB", "64"))
DIMENSIONS = [f"d{i:02}" for i in range(20)]


def account(c: int) -> str:
    return f"6{c:011}"


def license_arn(c: int) -> str:
    return f"arn:aws:license-manager::111122223333:license/l-soak{c:05}"


def write_seed(path: Path) -> None:
    dims = ", ".join(f'{{ name = "{d}" }}' for d in DIMENSIONS)
    out = [f'[[accounts]]\nid = "111122223333"\n\n[[products]]\ncode = "soak-saas"\nseller = "111122223333"\n'
           f'kind = "saas"\ndimensions = [{dims}]\n']
    for c in range(CUSTOMERS):
        out.append(f'[[accounts]]\nid = "{account(c)}"\n\n[[agreements]]\nproduct = "soak-saas"\n'
                   f'customer_account = "{account(c)}"\nlicense_arn = "{license_arn(c)}"\n')
    path.write_text("\n".join(out))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}

    def record(self, op: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latency.setdefault(op, []).append(seconds)
            if error:
                self.errors.setdefault(op, []).append(error)


def worker(srv, stats: Stats, stop: threading.Event, index: int) -> None:
    rng = random.Random(index)
    seller = conftest.make_client(srv, "seller")
    ec2 = conftest.make_client(srv, "buyer_ec2")
    ecs = conftest.make_client(srv, "buyer_ecs")
    sent: list[list[dict]] = []
    n = 0
    while not stop.is_set():
        n += 1
        roll = rng.random()
        started = time.perf_counter()
        try:
            if roll < 0.55 or not sent:
                op = "BatchMeterUsage"
                # 25 records of random (customer, dimension, hour): new ones, and some retries.
                now = int(time.time())
                records = [{
                    "Timestamp": now - rng.randrange(1, 20) * 3600,
                    "CustomerAWSAccountId": account(c),
                    "LicenseArn": license_arn(c),
                    "Dimension": rng.choice(DIMENSIONS),
                    "Quantity": c % 5 + 1,
                } for c in (rng.randrange(CUSTOMERS) for _ in range(25))]
                records = list({(r["CustomerAWSAccountId"], r["Dimension"], r["Timestamp"] // 3600): r
                                for r in records}.values())
                out = seller.batch_meter_usage(UsageRecords=records)
                bad = [r["Status"] for r in out["Results"] if r["Status"] not in ("Success", "DuplicateRecord")]
                if bad or out.get("UnprocessedRecords"):
                    raise AssertionError(f"statuses {bad}, unprocessed {len(out.get('UnprocessedRecords', []))}")
                sent.append(records)
            elif roll < 0.70:
                op = "BatchMeterUsage retry"
                out = seller.batch_meter_usage(UsageRecords=rng.choice(sent))
                if any(r["Status"] == "CustomerNotSubscribed" for r in out["Results"]):
                    raise AssertionError("a retry changed status")
            elif roll < 0.85:
                op = "MeterUsage"
                try:
                    ec2.meter_usage(ProductCode=conftest.AMI, Timestamp=conftest.hours_ago(5),
                                    UsageDimension="hosts", UsageQuantity=1, DryRun=True)
                except ClientError as e:
                    if e.response["Error"]["Code"] != "DryRunOperation":
                        raise
            elif roll < 0.95:
                op = "ResolveCustomer"
                token = srv.registration_token("soak-saas", account(rng.randrange(CUSTOMERS)))
                seller.resolve_customer(RegistrationToken=token)
            else:
                op = "RegisterUsage"
                ecs.register_usage(ProductCode=conftest.CONTAINER, PublicKeyVersion=1, Nonce=f"soak-{index}-{n}")
            stats.record(op, time.perf_counter() - started)
        except Exception as e:  # every failure is a finding: count it, keep going
            stats.record(op, time.perf_counter() - started, f"{type(e).__name__}: {e}"[:300])


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and its parts: RssAnon (the heap: allocations), RssFile and RssShmem (mapped files,
    e.g. SQLite's WAL index), in MiB."""
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(rest.split()[0]) / 1024
    return out


def db_mib(path: str) -> float:
    """The SQLite database with its WAL, in MiB (0 on PostgreSQL)."""
    return sum(os.path.getsize(p) / 2**20 for p in (path, path + "-wal") if os.path.exists(p))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


def main() -> int:
    binary = Path(os.environ.get("MARKETMETER_BIN", conftest.REPO_ROOT / "target" / "release" / "marketmeter"))
    with tempfile.TemporaryDirectory(prefix="marketmeter-soak-") as tmp:
        seed = Path(tmp) / "soak-seed.toml"
        write_seed(seed)
        srv = conftest.Server(binary, Path(tmp), ["--seed", str(seed)], "soak")
        try:
            stats, stop = Stats(), threading.Event()
            threads = [threading.Thread(target=worker, args=(srv, stats, stop, i), daemon=True) for i in range(THREADS)]
            started = time.monotonic()
            for t in threads:
                t.start()
            samples: list[tuple[float, float, int]] = []
            parts: list[tuple[dict[str, float], float]] = []  # per sample: RSS parts, database size
            while time.monotonic() - started < SECONDS:
                time.sleep(min(SAMPLE, max(0.0, SECONDS - (time.monotonic() - started))))
                done = sum(len(v) for v in stats.latency.values())
                mem = memory_mib(srv.proc.pid)
                samples.append((time.monotonic() - started, mem["VmRSS"], done))
                parts.append((mem, db_mib(srv.database.arg)))
            stop.set()
            for t in threads:
                t.join(timeout=30)
            alive = srv.proc.poll() is None
        finally:
            srv.stop()

    elapsed = samples[-1][0]
    total = sum(len(v) for v in stats.latency.values())
    print(f"## Soak: {elapsed:.0f} s, {THREADS} client threads (boto3, SigV4), {binary.name} "
          f"at {binary}\n")
    print(f"{total} requests, {total / elapsed:.1f} per second; errors: "
          f"{sum(len(v) for v in stats.errors.values())}\n")
    print("| operation | requests | errors | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for op, lat in sorted(stats.latency.items()):
        print(f"| {op} | {len(lat)} | {len(stats.errors.get(op, []))} | {pct(lat, 50):.1f} | {pct(lat, 95):.1f} | "
              f"{pct(lat, 99):.1f} | {max(lat) * 1000:.1f} |")
    print("\n| t (s) | RSS MiB | of it anon (heap) | file + shmem | database + WAL MiB | requests so far |")
    print("|---|---|---|---|---|---|")
    every = max(1, round(60 / SAMPLE))  # about one row a minute, and the last sample
    for i, ((t, rss, done), (mem, db)) in enumerate(zip(samples, parts)):
        if i % every == 0 or i == len(samples) - 1:
            print(f"| {t:.0f} | {rss:.1f} | {mem['RssAnon']:.1f} | {mem['RssFile'] + mem['RssShmem']:.1f} | "
                  f"{db:.1f} | {done} |")
    quarter = max(1, len(samples) // 4)
    first = statistics.mean(r for _, r, _ in samples[:quarter])
    last = statistics.mean(r for _, r, _ in samples[-quarter:])
    print(f"\nRSS first quarter {first:.1f} MiB, last quarter {last:.1f} MiB (growth {last - first:+.1f} MiB)")
    for op, errs in stats.errors.items():
        print(f"\nerrors of {op} (first 3): {errs[:3]}")
    failed = bool(stats.errors) or not alive or last - first > MAX_GROWTH_MIB
    print("\nRESULT:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
