from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from notebook_controller.api.models import Notebook
from notebook_controller.builders import ssh as ssh_builder


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " alice@laptop"


def _secret(text: str | None, field: str = "ssh-publickey") -> dict[str, Any]:
    data = {} if text is None else {field: base64.b64encode(text.encode()).decode()}
    return {"metadata": {"name": "my-public-key"}, "data": data}


def test_a_valid_key_secret_has_no_problem() -> None:
    multi = f"# my keys\n{_public_key()}\n\n{_public_key()}\n"
    assert ssh_builder.public_key_problem("k", _secret(multi)) is None
    options = f'from="10.0.0.0/8",no-pty {_public_key()}'
    assert ssh_builder.public_key_problem("k", _secret(options)) is None


def test_problems_name_the_secret_and_say_why() -> None:
    missing = ssh_builder.public_key_problem("my-public-key", None)
    assert missing is not None and missing.reason == "SecretNotFound"
    assert "my-public-key" in missing.message
    no_field = ssh_builder.public_key_problem("k", _secret(_public_key(), field="id_rsa.pub"))
    assert no_field is not None and no_field.reason == "KeyMissing"
    garbage = ssh_builder.public_key_problem("k", _secret("hello world"))
    assert garbage is not None and garbage.reason == "KeyMalformed"
    wrong_type = _public_key().replace("ssh-ed25519", "ssh-rsa", 1)  # blob says ed25519
    bad = ssh_builder.public_key_problem("k", _secret(wrong_type))
    assert bad is not None and bad.reason == "KeyMalformed"


def test_key_secret_problems_only_while_ssh_is_enabled(ssh: Notebook, basic: Notebook) -> None:
    problems = ssh_builder.key_secret_problems(ssh, lambda name: None)
    assert [(p.secret, p.reason) for p in problems] == [("my-public-key", "SecretNotFound")]
    assert ssh_builder.key_secret_problems(ssh, lambda name: _secret(_public_key())) == []
    assert ssh_builder.key_secret_problems(basic, lambda name: None) == []


def test_host_key_secret_holds_the_given_key_and_is_owned(ssh: Notebook) -> None:
    key = ssh_builder.HostKey("PRIVATE", "ssh-ed25519 AAAA host")
    secret = ssh_builder.host_key_secret(ssh, key)
    assert secret["metadata"]["name"] == "managed-notebook-hostkey-notebook-sample"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == ssh.uid
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "ssh_host_ed25519_key": "PRIVATE",
        "ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA host",
    }
