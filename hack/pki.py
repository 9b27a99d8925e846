"""The local cluster's certificates (a CA per purpose, openssl) and kubeconfigs."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import node
from clusterbase import PKI, SERVICE_IP, ClusterError


def openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(
            f"openssl {args[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        )


def make_ca(name: str, cn: str) -> None:
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(key),
        "-sha256",
        "-days",
        "3650",
        "-subj",
        f"/CN={cn}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out",
        str(crt),
    )


def make_cert(
    name: str,
    ca: str,
    subj: str,
    *,
    server: bool = False,
    client: bool = False,
    sans: list[str] | None = None,
) -> None:
    key, csr, crt = PKI / f"{name}.key", PKI / f"{name}.csr", PKI / f"{name}.crt"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr))
    eku = ",".join(
        ([" serverAuth"] if server else []) + ([" clientAuth"] if client else [])
    ).replace(" ", "")
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={eku}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    extfile = PKI / f"{name}.ext"
    extfile.write_text("\n".join(ext) + "\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(PKI / f"{ca}.crt"),
        "-CAkey",
        str(PKI / f"{ca}.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(crt),
    )
    csr.unlink()
    extfile.unlink()


def generate_pki() -> None:
    if shutil.which("openssl") is None:
        raise ClusterError("`openssl` not found on PATH (apt-get install openssl)")
    PKI.mkdir(parents=True, exist_ok=True)
    make_ca("ca", "notebook-controller-dev-ca")
    make_ca("etcd-ca", "notebook-controller-dev-etcd-ca")
    make_cert(
        "etcd-server",
        "etcd-ca",
        "/CN=etcd",
        server=True,
        client=True,
        sans=["IP:127.0.0.1", "DNS:localhost"],
    )
    make_cert("etcd-client", "etcd-ca", "/CN=kube-apiserver-etcd-client", client=True)
    make_cert(
        "apiserver",
        "ca",
        "/CN=kube-apiserver",
        server=True,
        sans=[
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            f"IP:{node.NODE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ],
    )
    make_cert("admin", "ca", "/O=system:masters/CN=kubernetes-admin", client=True)
    make_cert("kube-controller-manager", "ca", "/CN=system:kube-controller-manager", client=True)
    make_cert("kube-scheduler", "ca", "/CN=system:kube-scheduler", client=True)
    make_cert("kwok", "ca", "/O=system:masters/CN=kwok-controller", client=True)
    if node.enabled():
        make_cert(
            "apiserver-kubelet-client",
            "ca",
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            client=True,
        )
        make_cert(
            "kubelet-serving",
            "ca",
            f"/O=system:nodes/CN=system:node:{node.NODE_NAME}",
            server=True,
            sans=[f"IP:{node.NODE_IP}", f"DNS:{node.NODE_NAME}"],
        )
        make_cert("kubelet", "ca", f"/O=system:nodes/CN=system:node:{node.NODE_NAME}", client=True)
        make_cert("kube-proxy", "ca", "/CN=system:kube-proxy", client=True)
        make_cert("coredns", "ca", "/CN=system:coredns", client=True)
        make_cert("local-path-provisioner", "ca", "/CN=system:local-path-provisioner", client=True)
    openssl("genrsa", "-out", str(PKI / "sa.key"), "2048")
    openssl("rsa", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))
    for p in PKI.iterdir():
        if p.suffix == ".key":
            p.chmod(0o600)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, user: str, server: str) -> None:
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: nbctl-local
  cluster:
    server: {server}
    certificate-authority-data: {b64(PKI / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(PKI / f"{user}.crt")}
    client-key-data: {b64(PKI / f"{user}.key")}
contexts:
- name: nbctl-local
  context:
    cluster: nbctl-local
    user: {user}
current-context: nbctl-local
""")
    path.chmod(0o600)
