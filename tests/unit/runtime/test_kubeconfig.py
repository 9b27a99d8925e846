"""Credentials as kubectl reads them: token, token file, client certificates, exec plugins, and
the in-cluster service account; what is not supported says so."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notebook_controller.runtime.kubeconfig import (
    ConfigError,
    in_cluster_configuration,
    kubeconfig_configuration,
    kubeconfig_paths,
)


def self_signed() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def write_kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "ctx",
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_token_and_ca_data(tmp_path: Path) -> None:
    cert, _ = self_signed()
    path = write_kubeconfig(
        tmp_path / "config",
        {"token": "abc"},
        {"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(cert)},
    )
    configuration = kubeconfig_configuration([path])
    headers, context = await configuration.auth()
    assert configuration.host == "https://10.0.0.1:6443"
    assert headers == {"Authorization": "Bearer abc"}
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED


async def test_client_certificate_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    cert, key = self_signed()
    (tmp_path / "client.crt").write_text(cert)
    (tmp_path / "client.key").write_text(key)
    path = write_kubeconfig(
        tmp_path / "config",
        {"client-certificate": "client.crt", "client-key": "client.key"},
        {"server": "https://example:6443", "insecure-skip-tls-verify": True},
    )
    headers, context = await kubeconfig_configuration([path]).auth()
    assert headers == {}
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_NONE


async def test_exec_plugin_token_is_rerun_when_it_expires(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os, sys\n"
        f"open({str(runs)!r}, 'a').write(os.environ['KUBERNETES_EXEC_INFO'] + '\\n')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
        " 'kind': 'ExecCredential', 'status': {'token': 'from-' + sys.argv[1],"
        " 'expirationTimestamp': '2000-01-01T00:00:00Z'}}))\n"
    )
    path = write_kubeconfig(
        tmp_path / "config",
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(plugin), "plugin"],
                "provideClusterInfo": True,
            }
        },
        {"server": "http://127.0.0.1:8080"},
    )
    configuration = kubeconfig_configuration([path])
    assert (await configuration.auth())[0] == {"Authorization": "Bearer from-plugin"}
    await configuration.auth()  # expired already: run again
    infos = [json.loads(line) for line in runs.read_text().splitlines()]
    assert len(infos) == 2
    assert infos[0]["spec"]["cluster"]["server"] == "http://127.0.0.1:8080"


async def test_failing_exec_plugin_is_one_line_naming_it(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no login')"]}},
        {"server": "http://127.0.0.1:8080"},
    )
    with pytest.raises(ConfigError, match="exited 1: no login"):
        await kubeconfig_configuration([path]).auth()


async def test_token_file_is_read_again_as_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    path = write_kubeconfig(
        tmp_path / "config", {"tokenFile": str(token)}, {"server": "http://127.0.0.1:8080"}
    )
    configuration = kubeconfig_configuration([path])
    assert (await configuration.auth())[0]["Authorization"] == "Bearer one"
    token.write_text("two\n")
    configuration._token_read_at -= 3600  # a minute later
    assert (await configuration.auth())[0]["Authorization"] == "Bearer two"


def test_auth_provider_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", {"auth-provider": {"name": "oidc"}}, {"server": "https://x"}
    )
    with pytest.raises(ConfigError, match="auth-provider oidc is not supported: use an exec"):
        kubeconfig_configuration([path])


def test_kubeconfig_env_lists_several_files_first_wins(tmp_path: Path) -> None:
    first = write_kubeconfig(tmp_path / "a", {"token": "a"}, {"server": "https://a"})
    second = write_kubeconfig(tmp_path / "b", {"token": "b"}, {"server": "https://b"})
    paths = kubeconfig_paths(None, {"KUBECONFIG": f"{first}:{second}"})
    assert paths == [first, second]
    assert kubeconfig_configuration(paths).host == "https://a"


async def test_in_cluster_reads_the_service_account(tmp_path: Path) -> None:
    cert, _ = self_signed()
    (tmp_path / "ca.crt").write_text(cert)
    (tmp_path / "token").write_text("sa-token")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    configuration = in_cluster_configuration(env, tmp_path)
    assert configuration.host == "https://[fd00::1]:443"
    assert (await configuration.auth())[0] == {"Authorization": "Bearer sa-token"}
