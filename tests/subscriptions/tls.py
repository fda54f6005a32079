"""A private CA for the TLS tests (made with trustme at set-up) and a Mosquitto with a TLS listener."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.services import find_mosquitto, free_port, wait_port


@dataclass(frozen=True)
class Pki:
    ca_file: str          # the CA certificate (PEM) a client must trust
    cert_file: str        # the server's chain for localhost / 127.0.0.1
    key_file: str
    server: ssl.SSLContext


def make_pki(folder: Path) -> Pki:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with open(cert_file, "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    return Pki(str(ca_file), str(cert_file), str(key_file), server)


@contextmanager
def mosquitto_tls(pki: Pki) -> Iterator[int]:
    """A Mosquitto whose only listener speaks TLS with the test CA's certificate; yields its port."""
    with tempfile.TemporaryDirectory(prefix="mosquitto-tls-") as tmp:
        # Mosquitto started as root drops to its own user: the files must be readable by it
        os.chmod(tmp, 0o755)
        cert, key = Path(tmp) / "server.pem", Path(tmp) / "server.key"
        shutil.copyfile(pki.cert_file, cert)
        shutil.copyfile(pki.key_file, key)
        for f in (cert, key):
            f.chmod(0o644)
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"certfile {cert}\nkeyfile {key}\n")
        proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            wait_port(port, proc, "Mosquitto (TLS)")
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
