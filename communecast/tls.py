"""Certificates for the broker's TLS listener: a small private CA and what it signs.

PrivateMosquitto makes fresh ones in its own (temporary) directory; an operator issues the
production broker's with `python -m communecast.tls` (docs/enrollment.md, "TLS"). Keys are
ECDSA P-256 (fast on a Pi, accepted by Mosquitto/OpenSSL); key files are written 0600,
certificates 0644. Nothing here is ever committed: the files live where they are written.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLOCK_SKEW = timedelta(minutes=5)  # a Pi whose clock is a little behind still accepts a new cert


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "communecast"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str = "communecast broker CA", *, valid: timedelta = timedelta(days=3650)) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + valid)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return Issued(cert, key)


def issue(ca: Issued, names: list[str], *, client: bool = False, common_name: str | None = None,
          valid: timedelta = timedelta(days=825)) -> Issued:
    """A server certificate for `names` (DNS names or IP addresses), or a client one for mutual TLS."""
    if not names and not client:
        raise ValueError("a server certificate needs at least one host name or IP address")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name or (names[0] if names else "client"))).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + valid)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )  # fmt: skip
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


def save(issued: Issued, cert_path: Path, key_path: Path) -> None:
    """Certificate world-readable (it is public), key owner-only."""
    _write(key_path, issued.key_pem(), 0o600)
    _write(cert_path, issued.cert_pem(), 0o644)


def load(cert_path: Path, key_path: Path) -> Issued:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: expected an EC private key (made by communecast.tls)")
    return Issued(cert, key)


def main(argv: list[str] | None = None) -> int:
    """`python -m communecast.tls --ca-dir DIR --name broker.example.vn [--name IP] [--client NAME]`."""
    p = argparse.ArgumentParser(prog="python -m communecast.tls", description=__doc__)
    p.add_argument("--ca-dir", required=True, type=Path,
                   help="ca.crt + ca.key here (created on first use; keep ca.key offline)")
    p.add_argument("--out", type=Path, default=Path("."), help="where server.crt/server.key go")
    p.add_argument("--name", action="append", default=[], help="broker DNS name or IP (repeat)")
    p.add_argument("--client", action="append", default=[], help="also a client certificate (mutual TLS)")
    p.add_argument("--days", type=int, default=825)
    args = p.parse_args(argv)
    ca_cert, ca_key = args.ca_dir / "ca.crt", args.ca_dir / "ca.key"
    if ca_cert.exists() and ca_key.exists():
        ca = load(ca_cert, ca_key)
    else:
        ca = new_ca()
        save(ca, ca_cert, ca_key)
        os.chmod(args.ca_dir, 0o700)
        print(f"CA mới / new CA: {ca_cert}")
    valid = timedelta(days=args.days)
    if args.name:
        save(issue(ca, args.name, valid=valid), args.out / "server.crt", args.out / "server.key")
        print(f"Chứng chỉ máy chủ / server certificate: {args.out / 'server.crt'} ({', '.join(args.name)})")
    for client in args.client:
        save(issue(ca, [], client=True, common_name=client, valid=valid),
             args.out / f"{client}.crt", args.out / f"{client}.key")
        print(f"Chứng chỉ máy khách / client certificate: {args.out / client}.crt")
    if not args.name and not args.client:
        print("Không có --name hay --client: chỉ tạo CA / nothing but the CA was made", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
