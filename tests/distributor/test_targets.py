"""Target files and source directory checks, in process (no distributor running)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fanout.distributor.targets import (
    PROBE_NAME,
    Target,
    check_source_dir,
    load_all,
    reload,
)
from fanout.errors import ConfigError

from .util import NodeDir


def target(node: NodeDir, name: str, source: Path) -> Target:
    return Target(name, source, 0, 0, node.targets_dir / f"{name}.yaml")


def test_missing_source_dir_is_created_and_probe_cleaned(node: NodeDir) -> None:
    src = node.root / "data" / "targets" / "deep" / "a"
    check_source_dir(node.datalog, target(node, "a", src))
    assert src.is_dir()
    assert list(src.iterdir()) == []
    assert not (node.datalog / PROBE_NAME).exists()


def test_stale_probe_from_a_crash_is_removed(node: NodeDir) -> None:
    src = node.target_dir("a")
    src.mkdir(parents=True)
    (node.datalog / PROBE_NAME).write_text("x")
    (src / PROBE_NAME).write_text("y")
    check_source_dir(node.datalog, target(node, "a", src))
    assert not (src / PROBE_NAME).exists() and not (node.datalog / PROBE_NAME).exists()


def test_datalog_dir_itself_is_refused(node: NodeDir) -> None:
    with pytest.raises(ConfigError) as e:
        check_source_dir(node.datalog, target(node, "a", node.datalog))
    msg = str(e.value)
    assert "is the datalog_dir" in msg and str(node.datalog) in msg and "st_dev" in msg
    assert e.value.key == "source_dir"


def test_symlink_to_datalog_dir_is_refused(node: NodeDir) -> None:
    link = node.root / "alias"
    link.symlink_to(node.datalog)
    with pytest.raises(ConfigError, match="is the datalog_dir"):
        check_source_dir(node.datalog, target(node, "a", link))


def test_duplicate_source_dirs_are_refused(node: NodeDir) -> None:
    node.add_target("a", node.target_dir("shared"))
    node.add_target("b", node.target_dir("shared"))
    with pytest.raises(ConfigError, match="also target 'a'"):
        load_all(node.targets_dir, node.datalog)


def test_invalid_file_at_start_is_a_config_error(node: NodeDir) -> None:
    node.add_target("a")
    (node.targets_dir / "b.yaml").write_text("target: b\nsink: {endpoint: nope}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml"):
        load_all(node.targets_dir, node.datalog)


def test_reload_keeps_previous_config_of_a_broken_file(node: NodeDir) -> None:
    a = node.add_target("a")
    node.add_target("b")
    snap = load_all(node.targets_dir, node.datalog)
    assert list(snap.targets) == ["a", "b"]

    # unchanged: nothing re-read, nothing reported
    same, errors = reload(snap, node.targets_dir, node.datalog)
    assert errors == [] and same.targets == snap.targets

    a.write_text(a.read_text() + "retention: {max_files: -1}\n")
    os.utime(a, ns=(1, 1))  # a different signature even within one mtime tick
    snap2, errors = reload(snap, node.targets_dir, node.datalog)
    assert len(errors) == 1 and "max_files" in str(errors[0])
    assert snap2.targets["a"] == snap.targets["a"]  # previous config kept

    # the broken file is reported once, not at every periodic re-read...
    snap3, errors = reload(snap2, node.targets_dir, node.datalog)
    assert errors == [] and snap3.targets == snap2.targets
    # ...but again on SIGHUP (force)
    _, errors = reload(snap3, node.targets_dir, node.datalog, force=True)
    assert len(errors) == 1

    (node.targets_dir / "b.yaml").unlink()
    node.add_target("c", max_files=7)
    snap4, errors = reload(snap3, node.targets_dir, node.datalog)
    assert errors == []
    assert list(snap4.targets) == ["a", "c"]
    assert snap4.targets["c"].max_files == 7 and node.target_dir("c").is_dir()


def test_tmpfs_source_dir_is_refused_naming_both_mounts(node: NodeDir, mount) -> None:
    mnt = mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=node.root / "tmpfs")
    src = mnt / "a"
    with pytest.raises(ConfigError) as e:
        check_source_dir(node.datalog, target(node, "a", src))
    msg = str(e.value)
    assert "another filesystem" in msg
    assert str(src) in msg and str(node.datalog) in msg
    assert f"mount {mnt} " in msg and "tmpfs" in msg and msg.count("st_dev") == 2


def test_bind_mount_is_refused_by_the_probe(node: NodeDir, mount) -> None:
    real = node.root / "elsewhere"
    real.mkdir()
    mnt = mount("--bind", str(real), target=node.root / "data" / "targets")
    src = mnt / "a"
    assert os.stat(mnt).st_dev == os.stat(node.datalog).st_dev  # st_dev cannot tell
    with pytest.raises(ConfigError) as e:
        check_source_dir(node.datalog, target(node, "a", src))
    msg = str(e.value)
    assert "EXDEV" in msg and str(src) in msg and str(node.datalog) in msg
    assert f"mount {mnt} " in msg and "bind of" in msg
    assert not (node.datalog / PROBE_NAME).exists()
