"""An MIT Kerberos KDC on loopback (Debian's ``krb5-kdc``) for the GSSAPI tests.

::

    with MitKdc() as kdc:
        kdc.add_service("kafka", "127.0.0.1")      # kafka/127.0.0.1@KPROTO.TEST, in kdc.service_keytab
        kdc.add_client("client")                  # client@KPROTO.TEST, in kdc.client_keytab
        with kdc.client_env():                    # KRB5_CONFIG, KRB5_CLIENT_KTNAME, KRB5CCNAME
            ...                                   # gssapi initiators get tickets as client@KPROTO.TEST

Everything lives in a temporary folder: ``krb5.conf`` (realm ``KPROTO.TEST``,
no DNS canonicalization or reverse lookups, TCP to the KDC), the KDC's
database (``kdb5_util create``), keytabs (``kadmin.local ktadd``), and a
``krb5kdc -n`` process on a free port, killed by ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _broker import free_port

__all__ = ["REALM", "MitKdc", "kdc_available"]

REALM = "KPROTO.TEST"
_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local")


def _tool(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.path.exists(p)), None)


def kdc_available() -> bool:
    """True when Debian's krb5-kdc and krb5-admin-server tools are installed."""
    return all(_tool(t) for t in _TOOLS)


class MitKdc:
    """See the module docstring."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kdc-"))
        self.port = free_port()
        self.krb5_conf = self.dir / "krb5.conf"
        self.service_keytab = self.dir / "service.keytab"
        self.client_keytab = self.dir / "client.keytab"
        self._proc: subprocess.Popen[bytes] | None = None
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"  default_realm = {REALM}\n"
            "  dns_lookup_realm = false\n  dns_lookup_kdc = false\n"
            "  dns_canonicalize_hostname = false\n  rdns = false\n"
            "  udp_preference_limit = 1\n  ticket_lifetime = 1h\n  forwardable = false\n"
            "[realms]\n"
            f"  {REALM} = {{\n    kdc = 127.0.0.1:{self.port}\n    admin_server = 127.0.0.1:{self.port}\n  }}\n"
            "[domain_realm]\n"
            f"  127.0.0.1 = {REALM}\n  localhost = {REALM}\n"
        )
        (self.dir / "kdc.conf").write_text(
            "[kdcdefaults]\n"
            f"  kdc_listen = 127.0.0.1:{self.port}\n  kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "[realms]\n"
            f"  {REALM} = {{\n"
            f"    database_name = {self.dir / 'principal'}\n"
            f"    key_stash_file = {self.dir / 'stash'}\n"
            f"    acl_file = {self.dir / 'kadm5.acl'}\n"
            "    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            "  }\n"
            "[logging]\n"
            f"  kdc = FILE:{self.dir / 'kdc.log'}\n"
        )
        (self.dir / "kadm5.acl").write_text("")

    @property
    def env(self) -> dict[str, str]:
        """What MIT tools and libkrb5 read: this realm's config and KDC profile."""
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.dir / "kdc.conf")}

    def _run(self, *args: str) -> None:
        subprocess.run(args, env={**os.environ, **self.env}, check=True, capture_output=True, timeout=60)

    def start(self) -> MitKdc:
        self._run(_tool("kdb5_util") or "kdb5_util", "create", "-s", "-r", REALM, "-P", "master-pw-for-tests")
        log = (self.dir / "krb5kdc.out").open("wb")
        self._proc = subprocess.Popen(
            [_tool("krb5kdc") or "krb5kdc", "-n", "-r", REALM], env={**os.environ, **self.env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"krb5kdc did not start: {(self.dir / 'krb5kdc.out').read_text()[-2000:]}")
            time.sleep(0.1)

    def _admin(self, query: str) -> None:
        self._run(_tool("kadmin.local") or "kadmin.local", "-r", REALM, "-q", query)

    def add_service(self, service: str, host: str) -> str:
        """Create ``service/host@REALM`` with a random key, into :attr:`service_keytab`; returns the principal."""
        principal = f"{service}/{host}@{REALM}"
        self._admin(f"addprinc -randkey {principal}")
        self._admin(f"ktadd -k {self.service_keytab} {principal}")
        return principal

    def add_client(self, name: str) -> str:
        """Create ``name@REALM`` with a random key, into :attr:`client_keytab`; returns the principal."""
        principal = f"{name}@{REALM}"
        self._admin(f"addprinc -randkey {principal}")
        self._admin(f"ktadd -k {self.client_keytab} {principal}")
        return principal

    @contextlib.contextmanager
    def client_env(self, keytab: Path | None = None) -> Iterator[None]:
        """Point this process's libkrb5 at the realm, the client keytab and a fresh ticket cache."""
        values = {**self.env, "KRB5_CLIENT_KTNAME": str(keytab or self.client_keytab),
                  "KRB5CCNAME": f"FILE:{self.dir / f'ccache-{time.monotonic_ns()}'}"}  # fmt: skip
        old = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> MitKdc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
