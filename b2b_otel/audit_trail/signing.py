"""Ed25519 keys of the audit trail's checkpoints: loading, key ids, ``audit keygen``, sign and verify.

The private key is a PKCS#8 PEM file (``B2B_OTEL_AUDIT_SIGNING_KEY``); an auditor needs only the public
key (SubjectPublicKeyInfo PEM). A key's id is the first 16 hex digits of SHA-256 of its 32 raw public
bytes. Nothing here ever puts key material into a message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .chain import checkpoint_message

PRIVATE_KEY_NAME = "audit-signing.key"
PUBLIC_KEY_NAME = "audit-signing.pub"
_MAX_PEM = 64 * 1024


def _read_pem(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_PEM + 1)
    except IsADirectoryError:
        raise ValueError("is a folder, not a key file") from None
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except PermissionError:
        raise ValueError("file not readable (permission denied)") from None
    except OSError as exc:
        raise ValueError(f"file not readable ({exc.strerror or type(exc).__name__})") from None
    if len(data) > _MAX_PEM or b"-----BEGIN" not in data:
        raise ValueError("not a PEM file")
    return data


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``.

    Raises ValueError saying why (not found, not PEM, encrypted, not Ed25519), never quoting the file.
    """
    data = _read_pem(path)
    if b"ENCRYPTED" in data:
        raise ValueError("the private key is encrypted; b2b-otel takes an unencrypted PKCS#8 key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(
            f"not an Ed25519 key (a {type(key).__name__.removesuffix('PrivateKey') or 'other'} key)"
        )
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path`` (a private key file is accepted too)."""
    data = _read_pem(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key: Ed25519PrivateKey, checkpoint: Mapping[str, Any]) -> str:
    """The hex Ed25519 signature of a checkpoint (every field but ``signature``)."""
    return private_key.sign(checkpoint_message(checkpoint)).hex()


def signature_ok(public_key: Ed25519PublicKey, checkpoint: Mapping[str, Any]) -> bool:
    """Whether the checkpoint's ``signature`` verifies with ``public_key``."""
    try:
        signature = bytes.fromhex(str(checkpoint.get("signature", "")))
        public_key.verify(signature, checkpoint_message(checkpoint))
    except (ValueError, InvalidSignature):
        return False
    return True


def keygen(directory: Path) -> tuple[Path, Path, str]:
    """Write a new key pair into ``directory`` (created 0700 when missing): private 0600, public 0644.

    Returns ``(private path, public path, key id)``. Raises FileExistsError rather than overwrite a key,
    OSError when the folder cannot be written.
    """
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path} exists; b2b-otel never overwrites a key")
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # whatever the umask; an existing folder keeps its mode
    elif not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a folder")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path, key_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
