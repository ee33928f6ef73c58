"""``fanout tls``, the ``tls`` keys, insecure targets and ``require_tls`` (issue 16): what is
refused at load (exit 78, naming the file and key), what is only warned about, and a node
on loopback serving /metrics and the API over mutual TLS."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from fanout.config import load_node_config
from fanout.errors import ConfigError
from fanout.testing import NodeProc, fanout_cmd, forwarder_cmd
from fanout.tlsconfig import ClientTLS, insecure_reason


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(fanout_cmd(*args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def ca(short_tmp: Path) -> Path:
    d = short_tmp / "pki"
    res = cli("tls", "ca", "--out", str(d))
    assert res.returncode == 0, res.stderr
    for args in (["--name", "n1", "--ip", "127.0.0.1", "--dns", "localhost"],
                 ["--name", "fwd", "--client"]):
        res = cli("tls", "cert", "--ca", str(d), *args)
        assert res.returncode == 0, res.stderr
    return d


def test_tls_tool_writes_private_keys_and_verifiable_certificates(ca: Path) -> None:
    for key in ("ca.key", "n1.key", "fwd.key"):
        assert stat.S_IMODE((ca / key).stat().st_mode) == 0o600
    res = subprocess.run(["openssl", "verify", "-CAfile", str(ca / "ca.crt"),
                          str(ca / "n1.crt"), str(ca / "fwd.crt")], capture_output=True,
                         text=True)
    if res.returncode == 127:
        pytest.skip("no openssl binary to cross-check with")
    assert res.returncode == 0, res.stdout + res.stderr
    again = cli("tls", "ca", "--out", str(ca))
    assert again.returncode == 1 and "--force" in again.stderr  # never orphan a CA silently
    bad = cli("tls", "cert", "--ca", str(ca), "--name", "x")
    assert bad.returncode == 1 and "--dns HOST" in bad.stderr


def _with_tls(n: NodeProc, ca: Path, mutual: bool = True, **extra: object) -> None:
    data = yaml.safe_load(n.config.read_text())
    data["tls"] = {"cert_file": str(ca / "n1.crt"), "key_file": str(ca / "n1.key")}
    if mutual:
        data["tls"]["client_ca_file"] = str(ca / "ca.crt")
    data.update(extra)
    n.config.write_text(yaml.safe_dump(data))


def test_key_readable_by_others_is_refused(short_tmp: Path, ca: Path) -> None:
    n = NodeProc.init(short_tmp / "n1", "n1")
    _with_tls(n, ca)
    os.chmod(ca / "n1.key", 0o644)
    with pytest.raises(ConfigError) as e:
        load_node_config(n.config)
    assert "n1.key" in str(e.value) and e.value.hint == f"chmod 600 {ca / 'n1.key'}"
    res = cli("node", "--config", str(n.config))
    assert res.returncode == 78 and "TLS key file" in res.stderr


def test_unknown_tls_key_is_named(short_tmp: Path, ca: Path) -> None:
    n = NodeProc.init(short_tmp / "n1", "n1")
    _with_tls(n, ca)
    data = yaml.safe_load(n.config.read_text())
    data["tls"]["ca_file"] = "x"  # a sink's key, not the node's
    n.config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"tls\.ca_file: unknown key"):
        load_node_config(n.config)


def test_insecure_reason() -> None:
    assert insecure_reason("http://10.0.0.5:8080")
    assert insecure_reason("http://london.example:8080")
    for ok in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080",
               "https://10.0.0.5:8443"):
        assert insecure_reason(ok) is None, ok


def test_plain_http_target_warned_then_refused_with_require_tls(short_tmp: Path) -> None:
    n = NodeProc.init(short_tmp / "n1", "n1")
    res = cli("target", "add", "--config", str(n.config), "--name", "far",
              "--endpoint", "http://192.0.2.7:8080", "--token", "s3cret")
    assert res.returncode == 0, res.stderr
    assert "Warning:" in res.stderr and "in clear" in res.stderr
    assert "s3cret" not in res.stderr + res.stdout
    local = cli("target", "add", "--config", str(n.config), "--name", "near",
                "--endpoint", "http://127.0.0.1:9", "--token", "x")
    assert local.returncode == 0 and "Warning" not in local.stderr

    data = yaml.safe_load(n.config.read_text())
    data["require_tls"] = True
    n.config.write_text(yaml.safe_dump(data))
    path = n.dir / "forwarders.d" / "far.yaml"
    res = subprocess.run(forwarder_cmd(path), capture_output=True, text=True, timeout=60)
    assert res.returncode == 78, res.stderr
    assert f"{path}: sink.endpoint: " in res.stderr and "require_tls" in res.stderr
    res = cli("target", "add", "--config", str(n.config), "--name", "far2",
              "--endpoint", "http://192.0.2.8:8080", "--token", "x")
    assert res.returncode == 78 and "require_tls" in res.stderr
    assert not (n.dir / "forwarders.d" / "far2.yaml").exists()
    res = cli("target", "add", "--config", str(n.config), "--name", "far3",
              "--endpoint", "https://192.0.2.9:8443", "--token", "x", "--ca-file",
              str(short_tmp / "missing-ca.crt"))
    assert res.returncode == 78 and "missing-ca.crt" in res.stderr


def test_node_serves_api_and_metrics_over_mutual_tls(short_tmp: Path, ca: Path) -> None:
    n = NodeProc.init(short_tmp / "n1", "n1")
    _with_tls(n, ca)
    n.url = f"https://127.0.0.1:{n.port}"
    n.ssl_context = ClientTLS(ca / "ca.crt", ca / "fwd.crt", ca / "fwd.key").context()
    try:
        n.start_and_wait()
        with n.client() as c:
            c.update("1// a{} 1\n")
        with n.client("reader") as c:
            assert c.fetch("~.*{}").startswith("1// a{}")
        for token in ("reader", "admin"):
            with n.client(token) as c:
                status, body = c.request("GET", "/metrics", check=False)
                if status == 200:
                    break
        assert status == 200 and b"fanout" in body
        # no client certificate: refused at the handshake, before any HTTP
        bare = ClientTLS(ca / "ca.crt").context()
        with pytest.raises((ssl.SSLError, OSError)):
            urllib.request.urlopen(f"{n.url}/metrics", context=bare, timeout=30).read()
        with pytest.raises((ssl.SSLError, OSError)):  # plain HTTP on the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{n.port}/metrics", timeout=30).read()
        assert n.alive()
    finally:
        n.kill()


def test_require_tls_refuses_a_plain_seed(short_tmp: Path) -> None:
    n = NodeProc.init(short_tmp / "m", "m", "memory")
    seed = n.dir / "secrets" / "seed.token"
    seed.write_text("x" * 20)
    os.chmod(seed, 0o600)
    data = yaml.safe_load(n.config.read_text())
    data.update(require_tls=True, bootstrap_from={"url": "http://192.0.2.1:8080",
                                                  "token_file": "secrets/seed.token"})
    n.config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"bootstrap_from\.url: .*require_tls"):
        load_node_config(n.config)
    data["bootstrap_from"]["url"] = "http://127.0.0.1:8080"  # loopback: allowed
    n.config.write_text(yaml.safe_dump(data))
    assert load_node_config(n.config).require_tls is True
