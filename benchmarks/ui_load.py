"""Load and soak of a served dashboard on loopback, in real browsers (issue 15).

**Load**: for each N of ``--sessions`` (default 1, 5, 10, 20), a fresh server; one more
session trains a model meanwhile (the Train tab's defaults, 10⁶ steps, in its own process);
N pages, each in its own headless Chromium driven from its own thread (opened 1.5 s apart),
drag the first μ slider ``--moves`` times as ``benchmarks/ui_speed.py`` does and time each move from the
release of the handle to the first visible update and to the full view. A move that does
not settle within 60 s, or a page that fails, counts as an error. Meanwhile the CPU time of
every process is sampled from ``/proc`` (:class:`CpuShares`) and split into the server, its
training process, the browsers this benchmark started (with their Playwright drivers) and
everything else on the machine (other users' work included).

**Soak**: ``--soak`` pages opened (until the first prediction is drawn) and closed one after
the other on one server; the server's resident memory and thread count are read from
``/proc`` every 10 sessions, once the closed sessions are gone. Target: memory within 10 % of
its level after the first 10 sessions, and no thread growth. Bokeh keeps a closed page's
session until it has been unused for ``--unused-session-lifetime`` (15 s by default, looked
for every 17 s), so a reading taken a few seconds after a close counts between none and a
dozen of the last sessions as still held, which made earlier soaks swing by ±40 MB from one
reading to the next. The soak's server therefore forgets closed sessions after
:data:`SOAK_SESSION_LIFETIME_MS` (checked as often), and each reading waits
:data:`SOAK_SETTLE_S`: the session check, Panel's collection and the server's allocator trim
(``app/state/memory.py``, 7 s after the last close) have all run by then. What is measured
is what the closed sessions leave behind, not how many are still held.

Usage:
    python benchmarks/ui_load.py                       # ~10 min on a 2-core CPU
    python benchmarks/ui_load.py --sessions 1,5 --moves 5 --soak 20   # a quick look
    python benchmarks/ui_load.py --browser-nice 10     # browsers yield the CPU to the server

``--browser-nice N`` starts every Chromium at niceness N. On loopback the pages' browsers
take most of the two cores (161 of 268 busy CPU seconds at N = 10, the server 56), which a
class's browsers, each on its own laptop, never take from the server; with a niceness they
still render every update, with a small share of the CPU while the server is busy.
The report says which niceness was used. Tried once (2026-12-07,
``results/ui_load_cpu_browser_nice10.md``, renamed from this script's output so that the
default run stays the reference): no better: the browsers still took 219 of 359 CPU
seconds at N = 10 (first update p95 1.94 s, full view 11.65 s), and at N = 20 the two
cores could not load every page (14 page loads timed out after 120 s). Why: run as root,
Chromium sets its main and IO threads to niceness -8 whatever it was started at.

``--browser-boost drop`` (the default) starts the browsers without ``CAP_SYS_NICE``
(``setpriv``), so that they run at the priority they were started with, as an unprivileged
user's browser does, instead of ahead of the server (:func:`browser_launcher`); the report
says which was used.

Two page-side loops asked for an animation frame 60 times a second on every page and were
removed (2026-12-07): FilePond's, in the product (``app/views/idle_painter.py``), and the
move recorder's own in ``benchmarks/ui_speed.py``, which now asks for a frame only after a
change or a paint.

Writes ``benchmarks/results/ui_load_cpu.json`` and ``.md``. Needs Panel, Playwright and
Chromium (``/usr/bin/chromium`` or ``$SROM_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "ui"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from browser import serve_dashboard  # noqa: E402
from ui_speed import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    allow_long_trainings,
    log,
    slider_moves,
    training_elsewhere,
)

#: issue 15's targets at N = 10 sessions
TARGET_SESSIONS, TARGET_P95_S = 10, 1.5


def _server_stats(pid: int) -> dict:
    """Resident memory (MB) and threads of the server process, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"])}


class CpuShares:
    """CPU seconds used while it runs, from ``/proc`` sampled every ``period_s``: the
    server (``server_pid``), its descendants (the training process), the descendants of this
    benchmark process (browsers and Playwright drivers) and the rest of the machine.

    A process that ends between two samples loses its last ``period_s`` of CPU time; the
    machine's total comes from ``/proc/stat``, so that loss lands in ``other``.
    """

    def __init__(self, server_pid: int, period_s: float = 0.5):
        self.server_pid, self.period_s = server_pid, period_s
        self._tick = os.sysconf("SC_CLK_TCK")
        self._first: dict[int, float] = {}  # pid -> CPU seconds at its first sample
        self._last: dict[int, tuple[str, float]] = {}  # pid -> (group, CPU seconds)
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return float(sum(values) - values[3] - values[4])  # all but idle and iowait

    def _sample(self) -> None:
        parents, cpu = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields[1])
            cpu[pid] = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime

        def group(pid: int) -> str | None:
            seen = 0
            while pid > 1 and seen < 64:
                if pid == self.server_pid:
                    return "server" if seen == 0 else "training"
                if pid == os.getpid():
                    return "browsers" if seen else None  # this process: the driver's own work
                pid, seen = parents.get(pid, 0), seen + 1
            return None

        for pid, seconds in cpu.items():
            g = group(pid)
            if g is None:
                continue
            # a process born while it runs counts from 0
            self._first.setdefault(pid, 0.0 if self._started else seconds)
            self._last[pid] = (g, seconds)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> CpuShares:
        self._started = False
        self._sample()
        self._started = True
        self._busy0, self._wall0 = self._machine_busy(), time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        busy = (self._machine_busy() - self._busy0) / self._tick
        out = {"server": 0.0, "training": 0.0, "browsers": 0.0}
        for pid, (g, seconds) in self._last.items():
            out[g] += seconds - self._first.get(pid, 0.0)
        self.result = {**{k: round(v, 1) for k, v in out.items()},
                       "other": round(max(0.0, busy - sum(out.values())), 1),
                       "machine_busy": round(busy, 1),
                       "wall": round(time.perf_counter() - self._wall0, 1)}


#: the Chromium the benchmark starts (a wrapper: see :func:`browser_launcher`)
BROWSER = CHROMIUM


def can_drop_priority_boost() -> bool:
    """Whether the browsers would run with the right to raise their own priority (as root,
    with ``setpriv`` to take it away)."""
    import shutil

    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv") is not None


def browser_launcher(niceness: int, unprivileged: bool, folder: Path) -> str:
    """A launcher of :data:`CHROMIUM` (written into ``folder``) at ``niceness`` and, when
    ``unprivileged``, without the capability to raise its threads' priority.

    Run as root, Chromium sets its main and IO threads to niceness −8 (it does so whenever it
    may: ``CAP_SYS_NICE``); a user's browser, unprivileged, cannot, and runs at the
    priority it was started with. Without the capability the benchmark's browsers compete
    for the CPU with the server as a user's would, instead of ahead of it.
    """
    parts = ["exec"]
    if unprivileged:
        parts += ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice"]
    if niceness:
        parts += ["nice", "-n", str(int(niceness))]
    wrapper = folder / "chromium-launcher"
    wrapper.write_text("#!/bin/sh\n" + " ".join(parts) + f' "{CHROMIUM}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _one_page(url: str, moves: int, out: list, errors: list, delay_s: float = 0.0,
              think_s: float = 0.0, seed: int = 0) -> None:
    from playwright.sync_api import sync_playwright

    time.sleep(delay_s)  # a class opens its pages over a few seconds, not at one instant
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=BROWSER, args=CHROMIUM_ARGS)
            try:
                samples, _ = slider_moves(browser, url, moves, warmup=1, quiet_ms=300, paths=None,
                                          think_s=think_s, seed=seed)
                out.extend(samples)
            finally:
                browser.close()
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")


def load(n_sessions: int, moves: int, think_s: float = 0.0) -> dict:
    from playwright.sync_api import sync_playwright

    processes: list = []
    samples: list[dict] = []
    errors: list[str] = []
    start = time.perf_counter()
    with serve_dashboard(processes=processes) as url, sync_playwright() as p:
        trainer = p.chromium.launch(executable_path=BROWSER, args=CHROMIUM_ARGS)
        try:
            with training_elsewhere(trainer, url):
                threads = [threading.Thread(target=_one_page,
                                            args=(url, moves, samples, errors, 1.5 * i,
                                                  think_s, i))
                           for i in range(n_sessions)]
                with CpuShares(processes[0].pid) as cpu:
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                server = _server_stats(processes[0].pid)
        finally:
            trainer.close()
    first = np.array([s["first_update_ms"] for s in samples]) / 1e3
    full = np.array([s["full_view_ms"] for s in samples]) / 1e3

    def stats(a):
        return ({"median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
                 "max": float(a.max())} if a.size else None)

    return {"sessions": n_sessions, "think_s": think_s, "moves_done": len(samples), "moves_asked": n_sessions * moves,
            "errors": errors, "first_update_s": stats(first), "full_view_s": stats(full),
            "server_after": server, "load_1min_end": os.getloadavg()[0],
            "cpu_seconds": cpu.result,
            "seconds": time.perf_counter() - start}


#: the soak server drops a closed page's session after this long unused (and checks as often)
SOAK_SESSION_LIFETIME_MS = 1000
#: seconds a soak reading waits after the last close (session check, gc, allocator trim)
SOAK_SETTLE_S = 12.0


def soak(n_sessions: int) -> dict:
    from playwright.sync_api import sync_playwright

    processes: list = []
    trace, errors = [], []
    start = time.perf_counter()
    lifetime = str(SOAK_SESSION_LIFETIME_MS)
    server_args = ["--check-unused-sessions", lifetime, "--unused-session-lifetime", lifetime]
    with serve_dashboard(processes=processes, extra_args=server_args) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=CHROMIUM_ARGS)
        try:
            for i in range(1, n_sessions + 1):
                page = browser.new_page(viewport=VIEWPORT)
                try:
                    page.goto(url)
                    page.wait_for_function(
                        "() => { const d = window.Bokeh && window.Bokeh.documents[0]; "
                        "const m = d && d.get_model_by_name('qoi-bands'); "
                        "return m && m.data.mean.length > 1; }", timeout=120_000)
                except Exception as exc:  # noqa: BLE001 - counted
                    errors.append(f"session {i}: {type(exc).__name__}: {str(exc)[:200]}")
                finally:
                    page.close()
                if i % 10 == 0:
                    time.sleep(SOAK_SETTLE_S)  # the closed sessions gone (module docstring)
                    trace.append({"sessions": i, **_server_stats(processes[0].pid),
                                  "load_1min": os.getloadavg()[0]})
                    log(f"soak: {i} sessions, server {trace[-1]['rss_mb']:.0f} MB, "
                        f"{trace[-1]['threads']} threads")
        finally:
            browser.close()
    base = trace[0]
    growth = max(t["rss_mb"] for t in trace) / base["rss_mb"] - 1
    return {"sessions": n_sessions, "trace": trace, "errors": errors,
            "memory_growth_after_10": growth, "threads_after_10": base["threads"],
            "threads_max": max(t["threads"] for t in trace),
            "memory_held": bool(growth <= 0.10),
            "threads_held": bool(max(t["threads"] for t in trace) <= base["threads"]),
            "server_args": server_args, "settle_s": SOAK_SETTLE_S,
            "seconds": time.perf_counter() - start}


def markdown(result: dict) -> str:
    lines = ["# Dashboard under load (loopback, real browsers)", "",
             f"Generated by `{result['command']}` on {result['date']} ({result['host']}); do not "
             "edit. Each N: a fresh server, one more session training a model meanwhile (in its "
             "own process), N pages each in its own headless Chromium dragging the first μ "
             "slider; times from the release of the handle to the first visible update and to "
             "the full view. The browsers run on the same CPUs as the server"
             + (f", at niceness {result['browser_nice']} (while the server is busy they get a "
                "small share of the CPU, as browsers on the users' own machines would take none)"
                if result.get("browser_nice") else "")
             + (", as a user's browser runs: without the right to raise their own priority "
                "(run as root, Chromium puts its main and IO threads at niceness -8, ahead of "
                "the server; `--browser-boost keep` lets it)"
                if result.get("browser_priority_boost") is False else
                ", with Chromium's own priority boost (niceness -8 on its main and IO threads, "
                "possible because the benchmark ran as root)"
                if result.get("browser_priority_boost") else "")
             + ".", "",
             "A page moves again as soon as the last move has settled (a stress: ten people "
             "dragging without a pause), or, in the rows with a pause, after looking at the "
             "result for a random 0.5-1.5 × that long (`--think-s`).", "",
             "| sessions | pause between moves (s) | moves done / asked | errors | first update "
             "median / p95 (s) | full view median / p95 (s) | server RSS after (MB) | "
             "load (1 min) |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(s: dict | None) -> str:
        return "—" if s is None else f"{s['median']:.2f} / {s['p95']:.2f}"

    for r in result["load"]:
        f, v = r["first_update_s"], r["full_view_s"]
        lines.append(f"| {r['sessions']} | {r.get('think_s', 0):g} | "
                     f"{r['moves_done']} / {r['moves_asked']} | "
                     f"{len(r['errors'])} | {cell(f)} | {cell(v)} | "
                     f"{r['server_after']['rss_mb']:.0f} | {r['load_1min_end']:.1f} |")
    shares = [r for r in result["load"] if r.get("cpu_seconds")]
    if shares:
        lines += ["", "CPU seconds used while the pages dragged their sliders (from `/proc`; "
                  "`other`: the rest of the machine, other users included):", "",
                  "| sessions | pause (s) | wall (s) | server | its training process | "
                  "browsers | other | server's share of the busy CPU |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in shares:
            c = r["cpu_seconds"]
            share = c["server"] / c["machine_busy"] if c["machine_busy"] else float("nan")
            lines.append(f"| {r['sessions']} | {r.get('think_s', 0):g} | {c['wall']:.0f} | "
                         f"{c['server']:.0f} | "
                         f"{c['training']:.0f} | {c['browsers']:.0f} | {c['other']:.0f} | "
                         f"{100 * share:.0f} % |")
    for at in (r for r in result["load"] if r["sessions"] == TARGET_SESSIONS):
        if at["full_view_s"] is None:
            continue
        pace = (f" with a {at['think_s']:g} s pause between moves" if at.get("think_s")
                else " without a pause between moves")
        ok = at["full_view_s"]["p95"] <= TARGET_P95_S and not at["errors"]
        lines += ["", f"Target at N = {TARGET_SESSIONS}{pace}: p95 ≤ {TARGET_P95_S} s and 0 "
                  "errors: " + ("met." if ok else f"missed (full-view p95 "
                                f"{at['full_view_s']['p95']:.2f} s, {len(at['errors'])} errors).")]
        first_ok = at["first_update_s"]["p95"] <= TARGET_P95_S and not at["errors"]
        lines += [f"The same target read on the first visible update: p95 "
                  f"{at['first_update_s']['p95']:.2f} s: {'met' if first_ok else 'missed'}."]
    s = result.get("soak")
    if s:
        loads = [t["load_1min"] for t in s["trace"] if "load_1min" in t]
        if result.get("load_command"):
            lines += ["", f"The load figures above are from `{result['load_command']}` on "
                      f"{result['load_date']}; the soak below is from this run."]
        if result.get("soak_command"):
            lines += ["", f"The soak below is from `{result['soak_command']}` on "
                      f"{result['soak_date']}."]
        lines += ["", f"Soak: {s['sessions']} sessions opened and closed one after the other"
                  + (f" (host load, 1 min, {min(loads):.1f}-{max(loads):.1f})" if loads else "")
                  + ": "
                  f"server memory grew {100 * s['memory_growth_after_10']:.1f} % over its level "
                  f"after the first 10 (target ≤ 10 %: {'met' if s['memory_held'] else 'missed'}); "
                  f"threads {s['threads_after_10']} → at most {s['threads_max']} "
                  f"({'no growth' if s['threads_held'] else 'grew'}); {len(s['errors'])} errors. "
                  + (f"Each reading waited {s['settle_s']:.0f} s after the last close on a server "
                     f"run with `{' '.join(s['server_args'])}`, so that it counts what closed "
                     "sessions leave behind, not the ones Bokeh still holds."
                     if s.get("server_args") else ""), "",
                  "| sessions | server RSS (MB) | threads |", "|---|---|---|"]
        lines += [f"| {t['sessions']} | {t['rss_mb']:.0f} | {t['threads']} |" for t in s["trace"]]
    errors = [e for r in result["load"] for e in r["errors"]] + (s["errors"] if s else [])
    if errors:
        lines += ["", "Errors (first 10):", ""] + [f"- {e}" for e in errors[:10]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="1,5,10,20")
    p.add_argument("--moves", type=int, default=8, help="measured moves per page")
    p.add_argument("--think-s", default="0",
                   help="comma-separated pauses between a page's moves (s; each N runs once "
                        "per pause): 0, the next move as soon as the last one settled")
    p.add_argument("--soak", type=int, default=200, help="sessions of the soak (0: none)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--browser-nice", type=int, default=0, choices=range(0, 20), metavar="0..19",
                   help="niceness of the benchmark's browsers (module docstring)")
    p.add_argument("--browser-boost", choices=("drop", "keep"), default="drop",
                   help="drop (default): run the browsers without the right to raise their "
                        "priority, as a user's browser runs; keep: as root, Chromium raises "
                        "its main and IO threads to niceness -8, ahead of the server")
    args = p.parse_args(argv)
    global BROWSER
    unprivileged = args.browser_boost == "drop" and can_drop_priority_boost()
    if args.browser_nice or unprivileged:
        import tempfile

        BROWSER = browser_launcher(args.browser_nice, unprivileged,
                                   Path(tempfile.mkdtemp(prefix="srom-browser-")))
    result = {"command": "python benchmarks/ui_load.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d %H:%M"),
              "host": f"{platform.machine()}, {os.cpu_count()} CPUs", "load": [],
              "browser_nice": args.browser_nice,
              "browser_priority_boost": not unprivileged and can_drop_priority_boost()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    allow_long_trainings()
    sessions = [int(v) for v in args.sessions.split(",") if v.strip()]
    previous = out / "ui_load_cpu.json"
    before = json.loads(previous.read_text()) if previous.is_file() else {}
    if not sessions and before:  # a soak alone keeps the last load figures
        result.update(load=before.get("load", []), load_command=before.get("command"),
                      load_date=before.get("date"))
    thinks = [float(v) for v in args.think_s.split(",") if v.strip()] or [0.0]
    for n in sessions:
        for think in thinks:
            log(f"load: {n} sessions, {think:g} s between moves")
            result["load"].append(load(n, args.moves, think))
        (out / "ui_load_cpu.json").write_text(json.dumps(result, indent=1))
    if args.soak:
        result["soak"] = soak(args.soak)
    elif before.get("soak"):  # a load run alone keeps the last soak
        result.update(soak=before["soak"],  # with the command and date that ran it
                      soak_command=before.get("soak_command", before.get("command")),
                      soak_date=before.get("soak_date", before.get("date")))
    (out / "ui_load_cpu.json").write_text(json.dumps(result, indent=1))
    (out / "ui_load_cpu.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
