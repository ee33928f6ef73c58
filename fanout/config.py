"""``fanout.yaml``: the node's configuration, validated into a frozen dataclass at load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fanout.confload import Section, read_yaml
from fanout.gts.limits import FieldLimits
from fanout.ids import ID_RE, ID_RULE
from fanout.tlsconfig import NO_CLIENT_TLS, ClientTLS, ServerTLS, client_tls, server_tls

DEFAULT_MAX_BODY = 64 * 1024 * 1024
# Room a record needs beside its body when framed for /replicate: header + frame + slack.
RECORD_OVERHEAD = (1 << 20) + 64
DEFAULT_MAX_RECORD = DEFAULT_MAX_BODY - RECORD_OVERHEAD  # with the default max_body_size
# what ``fanout up|down|reload|status`` drive (fanout.supervise.manager)
MANAGERS = ("supervisord", "systemd")


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one node (every key has a documented default in the README).

    Defaults are sized for a node on a small VM: generous for honest clients, finite for
    hostile ones. ``max_record_bytes`` must leave a record, once framed, within every
    receiver's ``max_body_size`` so that an accepted write always replicates."""

    idle_timeout: float = 15.0  # idle connection, or headers not complete, closed after
    body_timeout: float = 120.0  # a request body must be read (and inflated) by then
    max_concurrent_requests: int = 256  # above: 503 + Retry-After
    max_inflight_body_bytes: int = 256 * 1024 * 1024  # bodies being read, all requests
    max_concurrent_parses: int = 1  # big bodies (over 256 KiB) parsed at once (GIL-bound)
    max_concurrent_fetches: int = 16  # fetches holding a store reader; others wait
    max_points_per_request: int = 500_000
    max_record_bytes: int = DEFAULT_MAX_RECORD  # canonical body of one logged write
    max_restore_bytes: int = 4 << 30
    fd_reserve: int = 64  # refuse new connections this close to RLIMIT_NOFILE
    # the field limits' defaults are FieldLimits' own (fanout/gts/limits.py)
    max_class_length: int = FieldLimits.max_class_length
    max_label_name_length: int = FieldLimits.max_label_name_length
    max_label_value_length: int = FieldLimits.max_label_value_length
    max_labels: int = FieldLimits.max_labels  # labels (and attributes) per series
    max_string_value_length: int = FieldLimits.max_string_value_length


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" | "memory"
    path: Path | None


@dataclass(frozen=True)
class BootstrapFrom:
    """A memory node's seed: re-sync from it at every start, then replicate as usual."""

    url: str
    token_file: Path
    timeout: float = 120.0  # give up (exit non-zero) if the seed cannot be read by then
    tls: ClientTLS = NO_CLIENT_TLS  # verifying an https seed (and our client certificate)


@dataclass(frozen=True)
class NodeConfig:
    source: Path  # the fanout.yaml this came from
    id: str
    host: str
    port: int
    store: StoreConfig
    datalog_dir: Path
    state_dir: Path
    targets_dir: Path
    tokens_file: Path
    log_remote_changes: bool = False
    max_body_size: int = DEFAULT_MAX_BODY
    group_commit: bool = True
    bootstrap_from: BootstrapFrom | None = None
    limits: Limits = Limits()
    manager: str = "supervisord"  # who runs the processes: supervisord | systemd
    tls: ServerTLS | None = None  # serve HTTPS (mutual TLS with client_ca_file)
    require_tls: bool = False  # refuse targets that send a token in clear over a network

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"


def parse_listen(sec: Section, key: str) -> tuple[str, int]:
    value = sec.string(key, required=True)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise sec.error(key, f"must be HOST:PORT with a port in 1..65535 (got {value!r})")
    return host.strip("[]"), int(port)


def load_node_config(path: Path) -> NodeConfig:
    path = Path(path).resolve()
    sec = Section(path, read_yaml(path))
    node_id = sec.string("id", required=True)
    if not ID_RE.match(node_id):
        raise sec.error("id", f"must be {ID_RULE} (got {node_id!r})")
    host, port = parse_listen(sec, "listen")
    st = sec.section("store")
    kind = st.choice("type", ("sqlite", "memory"), default="sqlite")
    store_path = st.path("path", "data/store.sqlite" if kind == "sqlite" else None)
    if kind == "memory" and "path" in st.data:
        raise st.error("path", "the memory store keeps no data file; remove this key")
    st.finish()
    cfg = NodeConfig(
        source=path,
        id=node_id,
        host=host,
        port=port,
        store=StoreConfig(kind, store_path),
        datalog_dir=sec.path("datalog_dir", "data/datalog"),  # type: ignore[arg-type]
        state_dir=sec.path("state_dir", "data/state"),  # type: ignore[arg-type]
        targets_dir=sec.path("targets_dir", "forwarders.d"),  # type: ignore[arg-type]
        tokens_file=sec.path("tokens_file", "secrets/tokens.yaml"),  # type: ignore[arg-type]
        log_remote_changes=sec.boolean("log_remote_changes", False),
        max_body_size=sec.integer("max_body_size", DEFAULT_MAX_BODY, minimum=1024),
        group_commit=sec.boolean("group_commit", True),
        bootstrap_from=_bootstrap_from(sec, kind),
        limits=_limits(sec, record_room(sec.data.get("max_body_size", DEFAULT_MAX_BODY))),
        manager=sec.choice("manager", MANAGERS, default="supervisord"),
        tls=server_tls(sec),
        require_tls=sec.boolean("require_tls", False),
    )
    sec.finish()
    room = record_room(cfg.max_body_size)
    if cfg.limits.max_record_bytes > room:
        raise sec.error("limits.max_record_bytes", f"must be <= {room} with max_body_size "
                        f"{cfg.max_body_size}: a record this node accepts, once framed with its "
                        "header, must fit a /replicate body of its peers")
    if cfg.state_dir == cfg.datalog_dir:
        raise sec.error("state_dir", f"must differ from datalog_dir ({cfg.datalog_dir})")
    return cfg


def _bootstrap_from(sec: Section, store_kind: str) -> BootstrapFrom | None:
    if sec.data.get("bootstrap_from") is None:
        sec.used.add("bootstrap_from")
        return None
    b = sec.section("bootstrap_from")
    if store_kind != "memory":
        raise sec.error("bootstrap_from", "only a memory store re-syncs at start "
                                          "(a sqlite store keeps its data)")
    url = b.string("url", required=True)
    if not url.startswith(("http://", "https://")):
        raise b.error("url", f"must be an http(s) URL (got {url!r})")
    result = BootstrapFrom(url.rstrip("/"), b.path("token_file", required=True),  # type: ignore[arg-type]
                           b.number("timeout", 120.0, minimum=1.0), client_tls(b))
    b.finish()
    if sec.data.get("require_tls") is True:
        from fanout.tlsconfig import check_require_tls

        check_require_tls(True, sec.file, result.url, "bootstrap_from.url")
    return result


def record_room(max_body_size: object) -> int:
    """The largest canonical record body a /replicate body of ``max_body_size`` carries
    (room left for the record's header and frame)."""
    size = max_body_size if isinstance(max_body_size, int) else DEFAULT_MAX_BODY
    return size - min(RECORD_OVERHEAD, size // 4)


def _limits(sec: Section, record_default: int) -> Limits:
    """The optional ``limits:`` section; each key defaults to ``Limits``' value, and
    ``max_record_bytes`` to what ``max_body_size`` leaves room for."""
    d = Limits(max_record_bytes=record_default)
    if sec.data.get("limits") is None:
        sec.used.add("limits")
        return d
    b = sec.section("limits")
    result = Limits(
        idle_timeout=b.number("idle_timeout", d.idle_timeout, minimum=0.5),
        body_timeout=b.number("body_timeout", d.body_timeout, minimum=1.0),
        max_concurrent_requests=b.integer("max_concurrent_requests",
                                          d.max_concurrent_requests, minimum=1),
        max_inflight_body_bytes=b.integer("max_inflight_body_bytes",
                                          d.max_inflight_body_bytes, minimum=1024),
        max_concurrent_parses=b.integer("max_concurrent_parses", d.max_concurrent_parses,
                                        minimum=1),
        max_concurrent_fetches=b.integer("max_concurrent_fetches", d.max_concurrent_fetches,
                                         minimum=1),
        max_points_per_request=b.integer("max_points_per_request", d.max_points_per_request,
                                         minimum=1),
        max_record_bytes=b.integer("max_record_bytes", d.max_record_bytes, minimum=1024),
        max_restore_bytes=b.integer("max_restore_bytes", d.max_restore_bytes, minimum=1024),
        fd_reserve=b.integer("fd_reserve", d.fd_reserve, minimum=8),
        max_class_length=b.integer("max_class_length", d.max_class_length, minimum=1),
        max_label_name_length=b.integer("max_label_name_length", d.max_label_name_length,
                                        minimum=1),
        max_label_value_length=b.integer("max_label_value_length",
                                         d.max_label_value_length, minimum=1),
        max_labels=b.integer("max_labels", d.max_labels, minimum=1),
        max_string_value_length=b.integer("max_string_value_length",
                                          d.max_string_value_length, minimum=1),
    )
    b.finish()
    return result
