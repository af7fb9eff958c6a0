"""300 reviewers open and save their reviews at once against `python -m grader review serve`.

    python benchmarks/review_load.py [--students 300] [--threads 8] [--connections N] [--clients 300] [--procs 10]

A round of ``--students`` authors (k = 2, the reference ``attention.py`` with a comment each,
``results.json`` written here, no grading) is planned with ``review plan`` and served by the
real command (waitress, ``--threads``).  Then ``--clients`` reviewers start together (one
thread each, spread over ``--procs`` client processes so that no one interpreter's lock
paces 300 browsers, all released by one barrier) and do what a reviewer does: open their page, open
solution 1, add a line comment (which saves the levels and summary typed with it), submit,
and reload the page.  Every request is timed; the report gives, per step, the median, the
95th percentile and the slowest, and every error (a status other than 200 after redirects,
or an exception).  The database is read at the end: each client's review must be there,
submitted, with its comment.  The clients and the server share the machine: on 2 cores the
times are an upper bound of the server's.
"""

import argparse
import csv
import http.cookiejar
import json
import multiprocessing
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.review import form, rounds
from grader.review.store import Store

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
STEPS = ("home", "task", "comment", "submit", "reload")


def _result(ident: str) -> dict:
    """A results.json like `grader batch` writes, attention.sdpa passed."""
    record = {"property": "weights = softmax(q k^T / sqrt(d_k)) over the keys", "status": "passed", "message": ""}
    return {
        "score": 10.0,
        "max_score": 10.0,
        "tests": [
            {
                "name": "attention.sdpa: Scaled dot-product attention",
                "score": 10.0,
                "max_score": 10.0,
                "status": "passed",
                "output": "status: passed",
                "tags": ["attention", "attention.sdpa"],
                "extra_data": {"outcome": "passed", "tests": [record]},
            }
        ],
        "extra_data": {"source": {"name": ident, "kind": "folder"}, "status": "graded"},
    }


def build(base: Path, students: int) -> Path:
    """A planned round of ``students`` authors in ``base/round``."""
    subs, out = base / "subs", base / "out"
    for n in range(students):
        ident = f"s{n:03d}"
        (subs / ident).mkdir(parents=True)
        (subs / ident / "attention.py").write_text(f"# solution {n}\n{REFERENCE}")
        (out / ident).mkdir(parents=True)
        (out / ident / "results.json").write_text(json.dumps(_result(ident)))
    folder = base / "round"
    rounds.make_round(out, subs, folder, unit="attention.sdpa", k=2, seed="load")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Reviewer:
    """One student's browser: a cookie jar and the timings of its requests."""

    def __init__(self, link: str, items: list[str]) -> None:
        self.link = link
        self.items = items
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.times: dict[str, float] = {}
        self.errors: list[str] = []

    def _request(self, step: str, url: str, data: dict[str, str] | None = None) -> str:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        started = time.perf_counter()
        try:
            with self.opener.open(urllib.request.Request(url, data=body), timeout=120) as reply:
                text = reply.read().decode()
                status = reply.status
        except urllib.error.HTTPError as exc:
            text, status = "", exc.code
        except OSError as exc:
            self.errors.append(f"{step}: {type(exc).__name__}: {exc}")
            return ""
        finally:
            self.times[step] = time.perf_counter() - started
        if status != 200:
            self.errors.append(f"{step}: HTTP {status}")
        return text

    def run(self, barrier: Any) -> None:
        barrier.wait()
        self._request("home", self.link)
        page = self._request("task", f"{self.link}/task/1")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if match is None:
            self.errors.append("task: no CSRF token on the page")
            return
        levels = {f"item-{item}": "1" for item in self.items}
        fields = {"csrf_token": match.group(1), "summary": "Clear shapes; see my line comment.", **levels}
        comment = {"action": "comment", "start": "3", "end": "4", "text": "Why scale here and not after?"}
        self._request("comment", f"{self.link}/task/1", fields | comment)
        self._request("submit", f"{self.link}/task/1", fields | {"action": "submit"})
        self._request("reload", f"{self.link}/task/1")


def _client_process(links: list[str], items: list[str], barrier: Any, out: Any) -> None:
    """One client process: a thread per reviewer; their timings and errors go to ``out``."""
    reviewers = [Reviewer(link, items) for link in links]
    with ThreadPoolExecutor(max_workers=len(reviewers)) as pool:
        list(pool.map(lambda r: r.run(barrier), reviewers))
    out.put([(r.link, r.times, r.errors) for r in reviewers])


def main() -> int:
    """Build, serve, load, report; exit 1 on any error or lost review."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--connections", type=int, default=0, help="serve --connections (0: its default)")
    parser.add_argument("--procs", type=int, default=10, help="client processes the reviewers are spread over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="review-load-") as tmp:
        started = time.perf_counter()
        folder = build(Path(tmp), args.students)
        planned = time.perf_counter() - started
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "grader", "review", "serve", str(folder), "--port", str(port)]
        log = (Path(tmp) / "serve.log").open("w")  # a pipe nobody reads would fill up and stop the server
        command += ["--threads", str(args.threads), "--connections", str(args.connections)]
        server = subprocess.Popen(command, cwd=ROOT, stderr=log)
        try:
            for _ in range(600):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            with (folder / "links.csv").open() as handle:
                links = [row["link"] for row in csv.DictReader(handle) if row["role"] == "student"]
            items = [item.id for item in form.load(folder / "rubric.toml").items]
            links = [link.replace("http://127.0.0.1:8000", base) for link in links][: args.clients]
            barrier = multiprocessing.Barrier(len(links) + 1)
            out: Any = multiprocessing.Queue()
            slices = [links[i :: args.procs] for i in range(args.procs) if links[i :: args.procs]]
            procs = [
                multiprocessing.Process(target=_client_process, args=(part, items, barrier, out)) for part in slices
            ]
            for proc in procs:
                proc.start()
            barrier.wait()
            started = time.perf_counter()
            reviewers = []
            for _ in procs:
                for link, times, errors in out.get(timeout=600):
                    reviewer = Reviewer(link, items)
                    reviewer.times, reviewer.errors = times, errors
                    reviewers.append(reviewer)
            for proc in procs:
                proc.join()
            wall = time.perf_counter() - started
            cpu = psutil.Process(server.pid).cpu_times()
            server_cpu = cpu.user + cpu.system
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        queue_warnings = (Path(tmp) / "serve.log").read_text().count("Task queue depth")
        store = Store.open(folder / "review.db")
        try:
            tokens = {p.token: p.id for p in store.people()}
            lost = 0
            for reviewer in reviewers:
                task = store.task(tokens[reviewer.link.rsplit("/", 1)[1]], 1)
                version = store.submitted(task.id) if task else None
                lost += version is None or len(version.comments) != 1
        finally:
            store.close()
    errors = [e for r in reviewers for e in r.errors]
    print(f"round of {args.students} planned in {planned:.1f} s; {len(reviewers)} reviewers at once, {wall:.1f} s wall")
    print(f"server CPU {server_cpu:.1f} s (start-up included) over {wall:.1f} s of load")
    print(f"{'step':<8} {'median':>8} {'p95':>8} {'max':>8}  (seconds per request)")
    for step in STEPS:
        times = sorted(r.times[step] for r in reviewers if step in r.times)
        if times:
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            print(f"{step:<8} {statistics.median(times):8.3f} {p95:8.3f} {times[-1]:8.3f}")
    every = sorted(t for r in reviewers for t in r.times.values())
    print(f"all      p95 {every[min(len(every) - 1, int(0.95 * len(every)))]:.3f} s over {len(every)} requests")
    print(f"errors: {len(errors)}; reviews lost or without their comment: {lost}")
    print(f"waitress queue-depth warnings: {queue_warnings} (requests that waited for a free thread)")
    for error in errors[:10]:
        print(f"  {error}")
    return 1 if errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
