"""A real systemd as PID 1 of a private PID and mount namespace, for tests.

Booted the way that leaves the host alone (a default boot runs systemd-tmpfiles, which
empties the host's /tmp: it is a directory, not a mount, so a private mount namespace does
not protect it):

- ``unshare --pid --fork --mount --mount-proc``, ``container=other``; private UTS and IPC
  namespaces too (systemd sets the hostname);
- private tmpfs on /run, /tmp and /var/tmp inside the namespace before systemd runs;
- the test's unit directory bind-mounted over /etc/systemd/system and the only unit path
  (``SYSTEMD_UNIT_PATH``): no unit of the host's /lib/systemd/system can be pulled in;
  ``sysinit.target``, ``basic.target``... are empty stubs there, so no tmpfiles, sysctl,
  binfmt or udev job ever runs;
- ``--unit=`` a test target with ``DefaultDependencies=no``;
- its own cgroup (``fanout-test-<uniq>``) in the name=systemd and unified hierarchies, and
  no v1 controller accounting, so its cgroups are its own and removed at the end;
- the test's files live outside /tmp and /var/tmp (hidden inside), under the repository's
  gitignored ``build/``.

``close()`` kills the namespace's PID 1 (every process in it dies with it), waits for it and
removes its cgroups. systemctl and the fanout CLI run inside through ``nsenter -t PID -m -p``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from fanout.testing import NodeProc, Topology, fanout_cmd, wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "systemd-tests"
TEST_WATCHDOG_SEC = 3
SYSTEMD_PATHS = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
CGROUP_HIERARCHIES = ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")

BOOT = r"""
set -e
units="$1"; cg="$2"
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  if [ -e "$h/cgroup.procs" ]; then mkdir -p "$h/$cg"; echo $$ > "$h/$cg/cgroup.procs"; fi
done
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then   # pure cgroup v2
  mkdir -p "/sys/fs/cgroup/$cg"; echo $$ > "/sys/fs/cgroup/$cg/cgroup.procs"
fi
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mount --bind "$units" /etc/systemd/system
# systemd writes its log to /dev/console: the test's file, not the host's console
: > "$4"; if [ -e /dev/console ]; then mount --bind "$4" /dev/console; fi
mkdir -p /run/systemd/system.conf.d
cat > /run/systemd/system.conf.d/fanout-test.conf <<EOF
[Manager]
DefaultMemoryAccounting=no
DefaultTasksAccounting=no
DefaultCPUAccounting=no
DefaultIOAccounting=no
EOF
export container=other SYSTEMD_UNIT_PATH=/etc/systemd/system
exec "$3" --system --unit=fanout-test.target --log-target=console --log-level=info
"""

STUB = "[Unit]\nDescription={name} (test stub: nothing of the host's boot)\n" \
       "DefaultDependencies=no\n"
STUBS = ("sysinit.target", "basic.target", "shutdown.target", "network-online.target",
         "network.target", "multi-user.target", "local-fs.target", "sockets.target",
         "timers.target", "paths.target", "slices.target")


def unavailable() -> str | None:
    """Why a namespaced systemd cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (unshare --pid --mount, cgroups)"
    for tool in ("unshare", "nsenter", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not any(os.path.exists(p) for p in SYSTEMD_PATHS):
        return "systemd is not installed"
    if not os.path.isdir("/etc/systemd/system"):
        return "/etc/systemd/system does not exist (the unit directory is mounted over it)"
    if not any(os.access(p, os.W_OK) for p in CGROUP_HIERARCHIES):
        return "/sys/fs/cgroup is not writable"
    return None


class NamespacedSystemd:
    def __init__(self, root: Path):
        self.root = root
        self.units = root / "units"
        self.log = root / "systemd.log"  # its console: what it says about units
        self.boot_log = root / "unshare.log"
        self.cgroup = f"fanout-test-{uuid.uuid4().hex[:12]}"
        self.popen: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # systemd, in the host's PID namespace

    def write_stubs(self) -> None:
        self.units.mkdir(parents=True, exist_ok=True)
        for name in STUBS:
            (self.units / name).write_text(STUB.format(name=name))
        (self.units / "fanout-test.target").write_text(
            "[Unit]\nDescription=fanout tests\nDefaultDependencies=no\n")

    def boot(self, timeout: float = 60.0) -> None:
        self.write_stubs()
        exe = next(p for p in SYSTEMD_PATHS if os.path.exists(p))
        with open(self.boot_log, "ab") as log:
            self.popen = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation",
                 "private", "--uts", "--ipc", "/bin/sh", "-c", BOOT, "sh", str(self.units),
                 self.cgroup, exe, str(self.log)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

        def systemd_pid() -> int | None:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"the namespace exited {self.popen.returncode}:\n"
                                   + self.boot_log.read_text(errors="replace")[-3000:])
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(self.popen.pid).children():
                    if c.name() == "systemd":
                        return c.pid
            return None

        self.pid = wait_until(systemd_pid, timeout, what="systemd in the namespace")

        def running() -> bool:
            res = self.systemctl("is-system-running", check=False, timeout=20)
            return res.stdout.strip() in ("running", "degraded")

        try:
            wait_until(running, timeout, interval=0.2, what="systemd to finish booting")
        except TimeoutError:
            raise RuntimeError("systemd did not boot:\n"
                               + self.log.read_text(errors="replace")[-3000:]) from None

    def run(self, *argv: str, check: bool = True, timeout: float = 180.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """A command inside the namespace (its PIDs, its /run, /tmp and /etc/systemd)."""
        assert self.pid is not None
        cmd = ["nsenter", "-t", str(self.pid), "-m", "-p", "--"]
        if env:
            cmd += ["env", *(f"{k}={v}" for k, v in env.items())]
        res = subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=timeout,
                             check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {res.returncode}:\n{res.stdout}\n"
                                 f"{res.stderr}")
        return res

    def systemctl(self, *args: str, check: bool = True,
                  timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", *args, check=check, timeout=timeout)

    def fanout(self, *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "fanout.cli.main", *args, check=False,
                        timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        res = self.systemctl("show", "-p", ",".join(props), unit)
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.pid is not None:
            # a clean stop first (the services get SIGTERM and write their last state)
            with contextlib.suppress(Exception):
                self.systemctl("stop", "fanout*", check=False, timeout=90)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # PID 1 of the namespace: all die
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(60)
        deadline = time.monotonic() + 30
        for base in CGROUP_HIERARCHIES:
            top = Path(base) / self.cgroup
            while top.is_dir():
                dirs = sorted((p for p in top.rglob("*") if p.is_dir()),
                              key=lambda p: len(p.parts), reverse=True)
                for d in [*dirs, top]:
                    with contextlib.suppress(OSError):
                        d.rmdir()
                if time.monotonic() > deadline:
                    break
                if top.is_dir():
                    time.sleep(0.1)  # the last processes are still being reaped


class SystemdHost:
    """Nodes under ``root/nodes/<id>`` (the units' ROOT), run by a namespaced systemd."""

    def __init__(self, root: Path):
        self.root = root
        self.topo = Topology(root / "nodes")
        self.ns = NamespacedSystemd(root)
        self.alert_out = root / "alert-command.jsonl"

    def node(self, node_id: str) -> NodeProc:
        return self.topo.node(node_id, manager="systemd")

    def render(self, node: NodeProc) -> None:
        """`fanout systemd-units`, as an operator runs it, into the test's unit dir."""
        out = subprocess.run(fanout_cmd(
            "systemd-units", "--config", str(node.config), "--out", str(self.ns.units),
            "--watchdog-sec", str(TEST_WATCHDOG_SEC), "--restart-sec", "0.5",
            "--alert-command", f"cat >> {self.alert_out}"),
            capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        if self.ns.pid is not None:
            self.ns.systemctl("daemon-reload")

    def cli(self, node: NodeProc, *args: str) -> Any:
        return self.ns.fanout(*args, "--config", str(node.config))

    def up(self, node: NodeProc) -> None:
        res = self.cli(node, "up")
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{self.ns.log_tail()}"

    def status(self, node: NodeProc) -> tuple[int, dict[str, Any]]:
        res = self.cli(node, "status", "--json")
        assert res.returncode in (0, 1, 2), res.stderr
        return res.returncode, json.loads(res.stdout)

    def unit(self, unit: str) -> dict[str, str]:
        return self.ns.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts",
                            "ExecMainStatus", "Result")

    def processes_of(self, node: NodeProc) -> list[str]:
        """Processes of the host (any namespace) run for ``node``: its node and distributor
        name its fanout.yaml, its forwarders this host's root and their instance
        ``<id>:<target>`` (another test run on the machine has its own n1:n2)."""
        found = []
        root = f"--root {node.dir.parent} "
        instance = f"--instance {node.dir.name}:"
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if str(node.config) in cmd or (root in cmd and instance in cmd):
                found.append(f"{p.pid}: {cmd}")
        return found
