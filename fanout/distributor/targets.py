"""The distributor's view of ``forwarders.d/``: which directories to link into.

A target is a file (docs/operations.md, "Deploy"): the distributor reads ``source_dir`` and
``retention`` from each through the forwarder's own loader, so both processes agree on
what a file means. Every source directory is checked before anything is linked into it,
because link(2) across filesystems or mounts fails (EXDEV) and a source directory equal to
the datalog directory would make the distributor delete what it just linked.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from fanout.distributor.mounts import mount_of, where
from fanout.errors import ConfigError
from fanout.fileio import fsync_dir
from fanout.target_config import load_target_config, target_files
from fanout.targetcheck import source_dir_problem

log = logging.getLogger("fanout.distributor")

# A dotfile never matches the datalog name pattern, so neither the distributor's own scan
# nor a forwarder ever takes it for data. It lives in the datalog directory itself, not in
# .tmp/, which belongs to the node (its crash recovery deletes unknown files there).
PROBE_NAME = ".fanout-distributor-probe"

FileSig = tuple[int, int, int]  # (mtime_ns, ctime_ns, size) of a target file


@dataclass(frozen=True)
class Target:
    """What the distributor needs of one target file."""

    name: str
    source_dir: Path
    max_files: int
    max_bytes: int
    config_file: Path

    @property
    def limited(self) -> bool:
        return bool(self.max_files or self.max_bytes)


@dataclass
class TargetSet:
    """A snapshot of ``targets_dir``: the targets in use and the files they came from.

    ``sigs`` remembers every file already read (including invalid ones, so an unchanged
    broken file is reported once, not at every periodic re-read).
    """

    targets: dict[str, Target] = field(default_factory=dict)
    sigs: dict[Path, FileSig] = field(default_factory=dict)

    def by_file(self) -> dict[Path, Target]:
        return {t.config_file: t for t in self.targets.values()}


def file_sig(path: Path) -> FileSig | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def load_target(path: Path) -> Target:
    """Parse one target file with the forwarder's loader (ConfigError names file and key)."""
    cfg = load_target_config(path)
    return Target(cfg.target, cfg.source_dir, cfg.retention.max_files,
                  cfg.retention.max_bytes, cfg.source)


def _refuse(target: Target, problem: str, hint: str | None = None) -> ConfigError:
    return ConfigError(target.config_file, "source_dir", problem, hint=hint)


def check_source_dir(datalog_dir: Path, target: Target) -> None:
    """Create ``target.source_dir`` if missing, then refuse it unless a hard link from the
    datalog directory into it works: not the datalog directory itself, same st_dev, and
    a probe link(2) succeeds (a bind mount shares st_dev but still fails with EXDEV)."""
    src = target.source_dir
    problem = source_dir_problem(src, datalog_dir)  # before anything is created there
    if problem and os.path.realpath(src) != os.path.realpath(datalog_dir):  # below it
        raise _refuse(target, problem,
                      hint=f"use a directory beside it, e.g. "
                           f"{datalog_dir.parent / 'targets' / target.name}")
    try:
        if not src.is_dir():
            src.mkdir(parents=True, exist_ok=True)
            fsync_dir(src.parent)
    except OSError as exc:
        raise _refuse(target, f"cannot create {src}: {exc.strerror}") from None
    same = os.path.realpath(src) == os.path.realpath(datalog_dir)
    with contextlib.suppress(OSError):
        same = same or os.path.samefile(src, datalog_dir)
    if same:
        raise _refuse(
            target,
            f"{src} is the datalog_dir {datalog_dir} itself "
            f"({where(src)}): the distributor removes every file it links from there",
            hint=f"use a directory beside it, e.g. {datalog_dir.parent / 'targets' / target.name}",
        )
    home = mount_of(datalog_dir)
    hint = (f"choose a source_dir on the mount of datalog_dir ({home.mount_point if home else '?'})"
            f" and under no other mount, e.g. {datalog_dir.parent / 'targets' / target.name}")
    if os.stat(src).st_dev != os.stat(datalog_dir).st_dev:
        raise _refuse(
            target,
            f"{src} ({where(src)}) is on another filesystem than datalog_dir "
            f"{datalog_dir} ({where(datalog_dir)}): hard links cannot cross filesystems",
            hint=hint,
        )
    probe_src, probe_dst = datalog_dir / PROBE_NAME, src / PROBE_NAME
    try:
        for p in (probe_src, probe_dst):  # left over by a crash during a probe
            p.unlink(missing_ok=True)
        fd = os.open(probe_src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            os.link(probe_src, probe_dst)
        finally:
            probe_src.unlink(missing_ok=True)
        probe_dst.unlink(missing_ok=True)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise _refuse(
                target,
                f"{src} ({where(src)}) and datalog_dir {datalog_dir} "
                f"({where(datalog_dir)}) are on different mounts: link(2) between them fails "
                f"with EXDEV (a bind mount, a container volume or systemd ReadWritePaths=)",
                hint=hint,
            ) from None
        raise _refuse(target, f"cannot hard-link from {datalog_dir} into {src}: "
                              f"{exc.strerror}") from None


def _check_unique(target: Target, others: dict[str, Target]) -> None:
    for other in others.values():
        if other.name != target.name and os.path.realpath(other.source_dir) == os.path.realpath(
                target.source_dir):
            raise _refuse(target, f"{target.source_dir} is also target "
                                  f"{other.name!r}'s ({other.config_file}): two forwarders "
                                  f"would consume the same files")


def load_all(targets_dir: Path, datalog_dir: Path) -> TargetSet:
    """Every target file, strictly: the first invalid one raises ConfigError (exit 78)."""
    snap = TargetSet()
    for path in target_files(targets_dir):
        sig = file_sig(path)
        target = load_target(path)
        _check_unique(target, snap.targets)
        check_source_dir(datalog_dir, target)
        snap.targets[target.name] = target
        if sig is not None:
            snap.sigs[path] = sig
    return snap


def reload(current: TargetSet, targets_dir: Path, datalog_dir: Path,
           force: bool = False) -> tuple[TargetSet, list[ConfigError]]:
    """A new snapshot: unchanged files keep their target, new or changed ones are re-read
    (every file when ``force``, as on SIGHUP), removed ones are dropped.

    A new or changed file that fails to load or validate is returned as an error and the
    previous config of that target, if any, is kept: a typo in one file must not stop
    distribution to anyone.
    """
    old_by_file = current.by_file()
    snap = TargetSet()
    errors: list[ConfigError] = []
    pending: list[tuple[Path, FileSig | None]] = []
    for path in target_files(targets_dir):
        sig = file_sig(path)
        if sig is None:
            continue  # removed between the listing and the stat
        if not force and current.sigs.get(path) == sig:
            snap.sigs[path] = sig
            if path in old_by_file:
                snap.targets[old_by_file[path].name] = old_by_file[path]
            continue
        pending.append((path, sig))
    for path, sig in pending:
        if sig is not None:
            snap.sigs[path] = sig
        try:
            target = load_target(path)
            _check_unique(target, snap.targets)
            old = old_by_file.get(path)
            if old is None or old.source_dir != target.source_dir or force:
                check_source_dir(datalog_dir, target)
        except ConfigError as exc:
            errors.append(exc)
            old = old_by_file.get(path)
            if old is not None and old.name not in snap.targets:
                snap.targets[old.name] = old
            continue
        snap.targets[target.name] = target
    snap.targets = dict(sorted(snap.targets.items()))
    return snap, errors
