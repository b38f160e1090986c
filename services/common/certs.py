"""``make certs``: a development PKI for mutual TLS between govhub's processes and outside systems.

``python -m services.common.certs [--dir var/certs] [--force]`` writes (ECDSA P-256, SHA-256):

* ``ca.crt`` / ``ca.key``: the development CA (10 years). Every process trusts ``ca.crt`` and nothing else.
* ``<service>.crt`` / ``<service>.key`` for identity, residence and permits: server certificates
  (serverAuth) with subject CN = the service name and SANs ``localhost``, ``127.0.0.1``, ``::1``, the service
  name and ``<service>.govhub.svc`` (what the deploy manifests call them).
* ``clients/<name>.crt`` / ``clients/<name>.key``: client certificates (clientAuth) whose subject CN is the
  client identity the grants file (``services/common/grants.toml``) speaks of: ``gateway``, ``identity`` (it
  calls residence) and two example outside systems, ``social-security`` and ``civil-affairs``.
* ``../audit.key``: the development key of the audit trail's record keys (HMAC-SHA256), next to the
  certificate directory (``var/audit.key``), unless it already exists.

Existing files are kept unless ``--force``; private keys are written with mode 0600. This is for development
and tests only: production certificates come from the government PKI and the audit key from a secret store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.audit import write_audit_key

SERVER_NAMES = ("identity", "residence", "permits")
CLIENT_NAMES = ("gateway", "identity", "social-security", "civil-affairs")
ORGANISATION = "govhub development"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    return Issued(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        cert,
        key,
    )


def make_ca(common_name: str = "govhub development CA", *, days: int = 3650) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert, key)


def issue(
    ca: Issued | None,
    common_name: str,
    *,
    server: bool,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = 825,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A leaf certificate for `common_name`, signed by `ca` (self-signed when `ca` is None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start = not_before or now - dt.timedelta(minutes=5)
    end = not_after or now + dt.timedelta(days=days)
    signer = ca.key if ca is not None else key
    issuer = ca.cert.subject if ca is not None else _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    return _pem(builder.sign(signer, hashes.SHA256()), key)


def issue_server(ca: Issued, service: str) -> Issued:
    return issue(
        ca,
        service,
        server=True,
        dns_names=("localhost", service, f"{service}.govhub.svc"),
        ip_addresses=("127.0.0.1", "::1"),
    )


def issue_client(ca: Issued, client: str, **kwargs: object) -> Issued:
    return issue(ca, client, server=False, **kwargs)  # type: ignore[arg-type]


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_pair(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _write(cert, issued.cert_pem, private=False)
    _write(key, issued.key_pem, private=True)
    return cert, key


def load_ca(directory: Path) -> Issued:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _pem(cert, key)


def write_dev_pki(
    directory: Path,
    *,
    force: bool = False,
    servers: Sequence[str] = SERVER_NAMES,
    clients: Sequence[str] = CLIENT_NAMES,
) -> list[Path]:
    """Create whatever of the development PKI is missing under `directory`; returns the files written."""
    written: list[Path] = []
    if force or not (directory / "ca.crt").exists() or not (directory / "ca.key").exists():
        ca = make_ca()
        written += write_pair(directory, "ca", ca)
        force = True  # everything else must be re-issued by the new CA
    else:
        ca = load_ca(directory)
    for service in servers:
        if force or not (directory / f"{service}.crt").exists():
            written += write_pair(directory, service, issue_server(ca, service))
    for client in clients:
        if force or not (directory / "clients" / f"{client}.crt").exists():
            written += write_pair(directory / "clients", client, issue_client(ca, client))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.certs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=Path("var/certs"), help="output directory (var/certs)")
    parser.add_argument("--force", action="store_true", help="re-create the CA and every certificate")
    args = parser.parse_args(argv)
    written = write_dev_pki(args.dir, force=args.force)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{args.dir}: every certificate is already there (--force re-creates them)")
    key_path = args.dir.parent / "audit.key"
    if write_audit_key(key_path):
        print(f"wrote {key_path}")
    print(f"use them with GOVHUB_TLS=on GOVHUB_TLS_DIR={args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
