"""Record this machine's monitoring telemetry from ``/proc`` into a wide CSV, optionally under labelled workloads.

[reconstructed, spec §3 ``record``] The sensor set is fixed at start. Counters become rates with the measured Δt
between consecutive reads; a negative delta (wrap or reset) leaves an empty cell and a warning. The schedule is
drift-free: sample i is due at start + i·interval on the monotonic clock; a sample taken more than half an
interval after its slot counts as late, and slots already missed are skipped, never bunched. Rows are streamed
(``runtime.io.atomic.open_atomic``) into a hidden sibling ``.NAME.tmp-PID.csv``, line-buffered and fsync'ed every
5 s, and renamed to the output's name when the recording ends — also on Ctrl-C, so an interrupted recording
keeps every sample taken (exit 130), while a failed write (full disk) leaves nothing under the output's name.
``--append`` copies the existing recording into the new file first.

Sensors: /proc/stat CPU-time fractions (user … steal; per core with ``per_cpu``), ctxt/intr/fork rates,
procs_running, procs_blocked; /proc/meminfo fields (kB); /proc/vmstat page-fault, paging and swap rates;
/proc/diskstats for /sys/block devices (loop/ram/zram only with ``include_virtual``): bytes/s, IOPS, busy
fraction, in-flight; /proc/net/dev per interface (lo included): bytes, packets, errors, drops per second;
/proc/loadavg; /proc/pressure/* avg10 when readable.

Workloads run as child processes in their own session, bounded by their segment and killed (process group) at
its end, on exit and on Ctrl-C: ``idle``; ``cpu`` (K busy processes, default all cores); ``memory`` (touch and free
M MB in a loop); ``disk`` (write D MB with fsync in the scratch folder, drop it from the page cache with
posix_fadvise(DONTNEED), read it back, delete); ``network`` (a loopback TCP stream); ``NAME[:SECONDS]=cmd:COMMAND``
(a shell command). Choices: a workload without seconds runs ``duration`` seconds (10 when not given); rest
periods (``--rest``) follow every segment but the last and are labelled ``rest``.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wisecli.cli.errors import InputError

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
MEM_FIELDS = ("MemFree", "MemAvailable", "Buffers", "Cached", "Active", "Inactive", "Dirty", "Writeback",
              "AnonPages", "Shmem", "Slab", "SwapFree")
VM_FIELDS = ("pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout")
NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop")
NET_COLS = (0, 1, 2, 3, 8, 9, 10, 11)
BUILTIN = ("idle", "cpu", "memory", "disk", "network")


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def proc_readable(root: str = "/proc") -> bool:
    try:
        _read(f"{root}/stat")
        _read(f"{root}/meminfo")
        return True
    except OSError:
        return False


class ProcSampler:
    """Reads /proc once per sample into (gauges, counters); ``row`` turns two reads into one CSV row."""

    def __init__(self, per_cpu: bool = False, include_virtual: bool = False, root: str = "/proc"):
        self.root = root
        self.per_cpu = per_cpu
        virt = ("loop", "ram", "zram")
        try:
            blocks = sorted(os.listdir("/sys/block"))
        except OSError:
            blocks = []
        self.disks = [d for d in blocks if include_virtual or not d.startswith(virt)]
        first = self.read()
        self.gauge_names = list(first[0])
        self.counter_names = list(first[1])
        self.cpu_groups = sorted({k.rsplit("_", 1)[0] for k in self.counter_names if k.startswith("cpu")})
        self.names = self._columns()

    def _columns(self) -> list[str]:
        cols = []
        for g in self.cpu_groups:
            cols += [f"{g}_{f}" for f in CPU_FIELDS]
        cols += [k for k in self.gauge_names]
        cols += [f"{k}_per_s" for k in self.counter_names if not k.startswith("cpu") and not k.endswith("_ioticks")]
        cols += [f"disk_{d}_busy" for d in self.disks if f"disk_{d}_ioticks" in self.counter_names]
        return cols

    def read(self) -> tuple[dict, dict]:
        g: dict[str, float] = {}
        c: dict[str, float] = {}
        for line in _read(f"{self.root}/stat").splitlines():
            p = line.split()
            if not p:
                continue
            if p[0] == "cpu" or (self.per_cpu and p[0].startswith("cpu")):
                for f, v in zip(CPU_FIELDS, p[1:9]):
                    c[f"{p[0]}_{f}"] = float(v)
            elif p[0] in ("ctxt", "processes"):
                c["forks" if p[0] == "processes" else "ctxt"] = float(p[1])
            elif p[0] == "intr":
                c["intr"] = float(p[1])
            elif p[0] in ("procs_running", "procs_blocked"):
                g[p[0]] = float(p[1])
        mem = {}
        for line in _read(f"{self.root}/meminfo").splitlines():
            k, _, v = line.partition(":")
            mem[k] = v.split()[0] if v.split() else ""
        for f in MEM_FIELDS:
            if f in mem:
                g[f"mem_{f}_kB"] = float(mem[f])
        try:
            la = _read(f"{self.root}/loadavg").split()
            g["load1"], g["load5"], g["load15"] = float(la[0]), float(la[1]), float(la[2])
        except OSError:
            pass
        for res in ("cpu", "memory", "io"):
            try:
                for line in _read(f"{self.root}/pressure/{res}").splitlines():
                    p = line.split()
                    g[f"psi_{res}_{p[0]}_avg10"] = float(p[1].split("=")[1])
            except (OSError, IndexError, ValueError):
                pass
        try:
            vm = dict(line.split()[:2] for line in _read(f"{self.root}/vmstat").splitlines() if line.strip())
            for f in VM_FIELDS:
                if f in vm:
                    c[f"vm_{f}"] = float(vm[f])
        except OSError:
            pass
        try:
            for line in _read(f"{self.root}/diskstats").splitlines():
                p = line.split()
                if len(p) >= 13 and p[2] in self.disks:
                    d = p[2]
                    c[f"disk_{d}_read_bytes"] = float(p[5]) * 512
                    c[f"disk_{d}_write_bytes"] = float(p[9]) * 512
                    c[f"disk_{d}_read_iops"] = float(p[3])
                    c[f"disk_{d}_write_iops"] = float(p[7])
                    c[f"disk_{d}_ioticks"] = float(p[12])
                    g[f"disk_{d}_inflight"] = float(p[11])
        except OSError:
            pass
        try:
            for line in _read(f"{self.root}/net/dev").splitlines()[2:]:
                name, _, rest = line.partition(":")
                v = rest.split()
                for f, i in zip(NET_FIELDS, NET_COLS):
                    c[f"net_{name.strip()}_{f}"] = float(v[i])
        except (OSError, IndexError):
            pass
        return g, c

    def row(self, prev: tuple[dict, dict], cur: tuple[dict, dict], dt: float, warn=None) -> list[str]:
        """One row of cells: CPU fractions, gauges, rates (empty when a counter went backwards)."""
        (_, c0), (g1, c1) = prev, cur
        out = []
        for grp in self.cpu_groups:
            d = [c1.get(f"{grp}_{f}", 0.0) - c0.get(f"{grp}_{f}", 0.0) for f in CPU_FIELDS]
            tot = sum(d)
            neg = any(x < 0 for x in d)
            out += ["" if neg or tot <= 0 else repr(x / tot) for x in d]
        for k in self.gauge_names:
            out.append(repr(g1[k]) if k in g1 else "")
        for k in self.counter_names:
            if k.startswith("cpu") or k.endswith("_ioticks"):
                continue
            out.append(self._rate(k, c0, c1, dt, warn))
        for dsk in self.disks:
            k = f"disk_{dsk}_ioticks"
            if k in self.counter_names:
                r = self._rate(k, c0, c1, dt, warn)
                out.append("" if r == "" else repr(min(1.0, float(r) / 1000.0)))
        return out

    @staticmethod
    def _rate(k, c0, c1, dt, warn) -> str:
        if k not in c0 or k not in c1:
            return ""
        d = c1[k] - c0[k]
        if d < 0:
            if warn:
                warn(f"counter {k} went backwards (wrap or reset); cell left empty")
            return ""
        return repr(d / dt)


# ------------------------------------------------------------------------------------------------ workloads
WORKER = r"""
import os, sys, time, socket, threading
kind, deadline, arg = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if kind == "cpu":
    x = 0
    while time.time() < deadline:
        for i in range(20000):
            x += i * i
elif kind == "memory":
    n = int(arg) << 20
    while time.time() < deadline:
        b = bytearray(n)
        for i in range(0, n, 4096):
            b[i] = 1
        del b
elif kind == "disk":
    path, n = arg.rsplit("|", 1)
    n = int(n) << 20
    chunk = os.urandom(1 << 20)
    try:
        while time.time() < deadline:
            with open(path, "wb") as fh:
                for _ in range(n >> 20):
                    fh.write(chunk)
                    if time.time() > deadline:
                        break
                fh.flush()
                os.fsync(fh.fileno())
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                while os.read(fd, 1 << 20) and time.time() < deadline:
                    pass
            finally:
                os.close(fd)
            os.remove(path)
    finally:
        if os.path.exists(path):
            os.remove(path)
elif kind == "network":
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    def sink():
        c, _ = srv.accept()
        while c.recv(1 << 16):
            pass
    threading.Thread(target=sink, daemon=True).start()
    cli = socket.create_connection(srv.getsockname())
    buf = b"x" * (1 << 16)
    while time.time() < deadline:
        cli.sendall(buf)
"""


@dataclass
class Workload:
    name: str
    seconds: float
    command: str | None = None


def parse_workload(spec: str, default_seconds: float) -> Workload:
    cmd = None
    head = spec
    if "=cmd:" in spec:
        head, cmd = spec.split("=cmd:", 1)
        cmd = cmd.strip().strip('"')
        if not cmd:
            raise InputError(f"workload {spec!r} has an empty command", hint='e.g. --workload build:30=cmd:"make -j2"')
    name, _, secs = head.partition(":")
    name = name.strip()
    if cmd is None and name not in BUILTIN:
        raise InputError(f"unknown workload {name!r}", hint=f"one of {', '.join(BUILTIN)}, or NAME[:SECONDS]=cmd:COMMAND")
    try:
        seconds = float(secs) if secs else default_seconds
    except ValueError:
        raise InputError(f"workload {spec!r}: seconds must be a number", hint="e.g. --workload cpu:30") from None
    if seconds <= 0:
        raise InputError(f"workload {spec!r}: seconds must be positive", hint="e.g. --workload cpu:30")
    return Workload(name, seconds, cmd)


def mem_available_mb(root: str = "/proc") -> float:
    for line in _read(f"{root}/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return float(line.split()[1]) / 1024
    return float("nan")


def is_tmpfs(path: Path) -> bool:
    try:
        best, fs = "", ""
        p = str(path.resolve())
        for line in _read("/proc/mounts").splitlines():
            parts = line.split()
            if len(parts) > 2 and (p == parts[1] or p.startswith(parts[1].rstrip("/") + "/")) and len(parts[1]) >= len(best):
                best, fs = parts[1], parts[2]
        return fs in ("tmpfs", "ramfs")
    except OSError:
        return False


class Children:
    """Workload processes, each in its own session, killed as a group."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.files: list[Path] = []

    def start(self, w: Workload, deadline: float, workers: int, mem_mb: int, disk_mb: int, scratch: Path):
        if w.command:
            self.procs.append(subprocess.Popen(w.command, shell=True, start_new_session=True,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            return
        if w.name == "idle":
            return
        n, arg = 1, ""
        if w.name == "cpu":
            n = workers
        elif w.name == "memory":
            arg = str(mem_mb)
        elif w.name == "disk":
            f = scratch / f".wise-smooth-disk-{os.getpid()}.bin"
            self.files.append(f)
            arg = f"{f}|{disk_mb}"
        for _ in range(n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", WORKER, w.name, repr(deadline), arg],
                                               start_new_session=True, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.procs.clear()
        for f in self.files:
            f.unlink(missing_ok=True)
        self.files.clear()


def plan(workloads: list[Workload], repeat: int, rest: float) -> list[tuple[str, float, Workload | None]]:
    segs: list[tuple[str, float, Workload | None]] = []
    for _ in range(repeat):
        for w in workloads:
            segs.append((w.name, w.seconds, w))
            if rest > 0:
                segs.append(("rest", rest, None))
    if segs and segs[-1][0] == "rest":
        segs.pop()
    return segs


def record(output: Path, *, interval: float = 1.0, duration: float | None = None, samples: int | None = None,
           workloads: list[str] = (), repeat: int = 1, rest: float = 0.0, per_cpu: bool = False,
           include_virtual: bool = False, scratch: Path | None = None, mem_mb: int | None = None,
           disk_mb: int = 256, workers: int | None = None, overwrite: bool = False, append: bool = False,
           warn=None, info=None) -> dict:
    """Sample /proc into ``output`` (spec §3 ``record``); returns the summary for ``--json``."""
    output = Path(output)
    if not proc_readable():
        raise InputError("cannot read /proc/stat and /proc/meminfo", hint="record needs Linux with /proc mounted")
    if not interval >= 0.01 or not math.isfinite(interval):
        raise InputError(f"--interval {interval} is below 0.01 s or not finite", hint="use --interval 0.01 or more")
    for name, v, low in (("duration", duration, 0.0), ("rest", rest, 0.0)):
        if v is not None and not (math.isfinite(v) and (v > low if name == "duration" else v >= low)):
            raise InputError(f"--{name} must be a finite number of seconds{' > 0' if name == 'duration' else ' ≥ 0'}, "
                             f"got {v}", hint=f"e.g. --{name} 10")
    for name, v in (("samples", samples), ("mem-mb", mem_mb), ("disk-mb", disk_mb), ("workers", workers)):
        if v is not None and v < 1:
            raise InputError(f"--{name} must be at least 1, got {v}", hint=f"e.g. --{name} 4")
    if output.exists() and not (overwrite or append):
        raise InputError(f"{output} exists", hint="use --overwrite to replace it or --append to add to it")
    if repeat < 1:
        raise InputError("--repeat must be at least 1", hint="e.g. --repeat 3")
    default_secs = duration if duration is not None else 10.0
    wl = [parse_workload(w, default_secs) for w in workloads]
    avail = mem_available_mb()
    if mem_mb is None:
        mem_mb = int(min(512, avail / 4))
    if any(w.name == "memory" and not w.command for w in wl) and mem_mb > avail / 2:
        raise InputError(f"memory workload of {mem_mb} MB is above half the available memory ({avail:.0f} MB)",
                         hint=f"use --mem-mb {int(avail / 4)} or less")
    scratch = Path(scratch) if scratch else (output.parent if str(output.parent) else Path("."))
    if any(w.name == "disk" and not w.command for w in wl):
        scratch.mkdir(parents=True, exist_ok=True)
        if is_tmpfs(scratch) and warn:
            warn(f"scratch folder {scratch} is on tmpfs: the disk workload will not reach a disk (use --scratch)")
    workers = workers or os.cpu_count() or 1
    segs = plan(wl, repeat, rest)
    if segs:
        total = sum(s for _, s, _ in segs)
        n_total = int(round(total / interval))
    elif samples is not None:
        n_total = int(samples)
    elif duration is not None:
        n_total = int(round(duration / interval))
    else:
        raise InputError("nothing bounds the recording", hint="give --duration S, --samples N or --workload")
    if n_total < 1:
        raise InputError("the recording would hold no sample", hint="raise --duration or --samples")
    sampler = ProcSampler(per_cpu=per_cpu, include_virtual=include_virtual)
    header = ["time", *sampler.names] + (["label"] if segs else [])
    if append and output.exists():
        try:
            with open(output) as fh:
                old = fh.readline().rstrip("\n").split(",")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{output}: cannot read the recording to append to ({type(exc).__name__})",
                             hint="record into a new file, or use --overwrite") from None
        if old != header:
            raise InputError(f"{output}: its columns differ from this recording's",
                             hint="record into a new file, or use --overwrite")
        mode = "a"
    else:
        mode = "w"
    bounds, acc = [], 0.0
    for name, secs, w in segs:
        acc += secs
        bounds.append((acc, name, w))
    children = Children()
    late = written = 0
    labels: dict[str, int] = {}
    last_sync = time.monotonic()
    interrupted = False
    from wisecli.runtime.io.atomic import open_atomic
    from wisecli.runtime.progress import progress

    with progress("smooth record", n_total) as advance, open_atomic(output, "w", buffering=1) as fh:
        if mode == "a":
            import shutil

            with open(output, newline="") as old_fh:
                shutil.copyfileobj(old_fh, fh)
        else:
            fh.write(",".join(header) + "\n")
        try:
            start = time.monotonic()
            prev, prev_t = sampler.read(), start
            seg_i = -1
            i = 1
            while i <= n_total:
                if segs:
                    k = next((j for j, (end, _, _) in enumerate(bounds) if (i - 0.5) * interval < end), len(bounds) - 1)
                    if k != seg_i:
                        children.stop()
                        seg_i = k
                        _, name, w = bounds[k]
                        seg_end_wall = time.time() + (bounds[k][0] - (time.monotonic() - start))
                        if w is not None:
                            children.start(w, seg_end_wall, workers, mem_mb, disk_mb, scratch)
                        if info:
                            info(f"segment {k + 1}/{len(bounds)}: {name}")
                due = start + i * interval
                now = time.monotonic()
                if now < due:
                    time.sleep(due - now)
                cur = sampler.read()
                t = time.monotonic()
                wall = time.time()
                if t - due > 0.5 * interval:
                    late += 1
                cells = sampler.row(prev, cur, t - prev_t, warn)
                lab = [bounds[seg_i][1]] if segs else []
                if lab:
                    labels[lab[0]] = labels.get(lab[0], 0) + 1
                fh.write(",".join([repr(wall), *cells, *lab]) + "\n")
                prev, prev_t = cur, t
                if t - last_sync >= 5.0:
                    fh.flush()
                    os.fsync(fh.fileno())
                    last_sync = t
                written += 1
                advance()
                i = max(i + 1, int((time.monotonic() - start) / interval) + 1)
        except KeyboardInterrupt:  # keep the samples taken: the file is renamed into place, then exit 130
            interrupted = True
        finally:
            children.stop()
    if interrupted:
        raise KeyboardInterrupt
    if late and warn:
        warn(f"{late} sample(s) were late by more than half an interval (a busy machine)")
    return {"samples": written, "sensors": len(sampler.names),
            "interval": interval, "late_samples": late, "labels": labels, "output": str(output)}
