"""What a `--db-host` may be, and the SAN entry it becomes: one rule for init, issue and the probe's peers.

Apart from the certificate builder (certs.py) because it is a rule about names, not about certificates:
IDNA 2008 for Unicode names, and libpq's reading of numeric labels as IPv4 addresses.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509

from pgkongtls.errors import InputError


def parse_host(value: str) -> x509.GeneralName:
    """One `--db-host` value as a SAN entry: iPAddress for addresses, IDNA 2008 dNSName otherwise.

    Unicode names are accepted only when their A-label decodes back to the same
    name, so what the operator typed is exactly what libpq will match.
    """
    text = value.strip()
    if not text or text != value:
        raise InputError(f"invalid host {value!r}: empty or surrounded by spaces")
    if "%" in text:
        raise InputError(f"invalid host {value!r}: zone ids cannot go in a certificate")
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = (text[:-1] if text.endswith(".") else text).lower()
    if name.startswith("*."):
        raise InputError(f"invalid host {value!r}: wildcards are not accepted for a database host")
    bad = InputError(f"invalid host {value!r}: not a valid DNS name or IP address")
    ascii_name, same = name, True
    if not name.isascii():  # IDNA 2008 with UTS 46 mapping, as browsers and libidn2 do (not Python's IDNA 2003)
        import idna  # here: only Unicode names need it, and it costs start-up

        try:
            ascii_name = idna.encode(name, uts46=True).decode("ascii")
            same = idna.decode(ascii_name) == name
        except (idna.IDNAError, UnicodeError):
            raise bad from None
    if not same:
        raise InputError(f"invalid host {value!r}: IDNA maps it to {ascii_name!r}; pass that name instead")
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or any(
        not lab or len(lab) > 63 or not all(c.isascii() and (c.isalnum() or c == "-") for c in lab)
        or lab.startswith("-") or lab.endswith("-")
        for lab in labels
    ):
        raise bad
    last = labels[-1]
    if last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])):
        # inet_aton (getaddrinfo, libpq's IP check) reads 010.0.0.5, 127.1 and 0x7f as IPv4 addresses
        raise InputError(f"invalid host {value!r}: its last label is a number, so libpq reads it as an IPv4 "
                         "address; write the address as four decimal numbers, or use a DNS name")
    return x509.DNSName(ascii_name)
