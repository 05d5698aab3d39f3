"""What `probe` is asked to do: the target (libpq's host + hostaddr) and the options, resolved from the CLI
or from kong.conf as Kong would read them.

Apart from the probe itself (probe.py: the wire, the handshake, the verdicts) so each stays a readable size.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pgkongtls.consumers import PG_DEFAULT_PORT
from pgkongtls.errors import InputError, printable

#: --timeout bounds: below 0.1 s no handshake finishes; above a day the socket timeouts overflow.
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 86400.0


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Target:
    """`host` is the name libpq checks (and sends as SNI); `hostaddr`, when set, is where to connect instead,
    as libpq's host + hostaddr: a DNS-named certificate can then be probed at an address."""

    host: str
    port: int
    hostaddr: str | None = None

    def __str__(self) -> str:
        shown = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return shown if self.hostaddr is None else f"{shown} (hostaddr {self.hostaddr})"


def parse_target(text: str, *, hostaddr: str | None = None) -> Target:
    """HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; `hostaddr` must be an IP address, as libpq requires."""
    if hostaddr is not None and not is_ip(hostaddr):
        raise InputError(f"invalid --hostaddr {printable(hostaddr)!r}: it must be an IP address (libpq's hostaddr); "
                         "put a host name in TARGET")
    host, port = text, str(PG_DEFAULT_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InputError(f"invalid target {text!r}; use HOST[:PORT] or [IPv6]:PORT")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:
        host = text  # a bare IPv6 address
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"invalid target {text!r}; use HOST[:PORT] with a port from 1 to 65535")
    if not is_ip(host):
        try:
            host.encode("idna")
        except UnicodeError:
            raise InputError(f"invalid host name {host!r}: an empty or too long label, or a character DNS "
                             "does not allow; use a name such as db.internal or an IP address") from None
    return Target(host=host, port=int(port), hostaddr=hostaddr)



@dataclass(frozen=True)
class ProbeOptions:
    """What to trust and how deep (None: show the chain only), and who to log in as."""

    trusted: tuple[x509.Certificate, ...] | None = None
    trust_label: str = ""
    depth: int = 1
    cert_file: Path | None = None
    key_file: Path | None = None
    user: str | None = None
    database: str | None = None
    timeout: float = 5.0



def options_from(
    *, kong_conf: Path | None, ca: Path | None, depth: int | None, cert: Path | None, key: Path | None,
    user: str | None, database: str | None, timeout: float,
) -> ProbeOptions:
    """Resolve the CLI options; with --kong-conf, everything Kong would use comes from kong.conf."""
    from pgkongtls import inputs, inputs_model
    from pgkongtls.consumers import KONG_DEFAULT_DATABASE, KONG_DEFAULT_DEPTH, KONG_DEFAULT_USER, kong_depth

    if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:  # also NaN, which click's FloatRange lets through
        raise InputError(f"--timeout must be {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g} seconds, got {timeout:g}")
    if kong_conf is not None and (ca is not None or depth is not None):
        raise InputError("--kong-conf brings its own trust file and depth; drop --ca/--depth or --kong-conf")
    if depth is not None and ca is None:
        raise InputError("--depth needs --ca (the trust file it applies to)")
    trusted: tuple[x509.Certificate, ...] | None = None
    label = ""
    if kong_conf is not None:
        if not kong_conf.exists():
            raise InputError(f"{kong_conf} does not exist; pass the path of kong.conf")
        kong = inputs.load_kong(kong_conf)
        certs: list[x509.Certificate] = []
        for t in kong.trust:
            if isinstance(t.loaded, inputs_model.Missing):
                raise InputError(f"lua_ssl_trusted_certificate names {t.entry}, which does not exist; fix kong.conf")
            if isinstance(t.loaded, inputs_model.CertFile):
                certs += t.loaded.certs
        trusted, label = tuple(certs), "lua_ssl_trusted_certificate"
        kdepth = kong_depth(kong.values)
        if kdepth is None:
            raise InputError("lua_ssl_verify_depth in kong.conf is not a number; fix kong.conf")
        depth = kdepth
        if cert is None and key is None:
            for ref in (kong.cert, kong.key):
                if isinstance(ref, inputs_model.Missing):
                    raise InputError(f"kong.conf names {ref.path}, which does not exist; fix kong.conf")
            cert = Path(kong.cert.path) if kong.cert is not None else None
            key = Path(kong.key.path) if kong.key is not None else None
        vals = kong.values
        user = user or (vals["pg_user"].value if "pg_user" in vals else KONG_DEFAULT_USER)
        database = database or (vals["pg_database"].value if "pg_database" in vals else KONG_DEFAULT_DATABASE)
    elif ca is not None:
        trusted, label = inputs.load_cert_file(ca).certs, str(ca)
    if (cert is None) != (key is None):
        raise InputError("--cert and --key go together; pass both")
    if key is not None:
        if inputs.load_key_file(key).encrypted:
            raise InputError(f"{key} is encrypted; Kong cannot use an encrypted key, and probe neither")
        if cert is not None:
            inputs.load_cert_file(cert)  # one clear line for a damaged or misplaced file
    return ProbeOptions(trusted=trusted, trust_label=label, depth=KONG_DEFAULT_DEPTH if depth is None else depth,
                        cert_file=cert, key_file=key, user=user, database=database, timeout=timeout)
