"""The strict self-check of a batch of leaves: the CA chain once per run, then each leaf against its issuer."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509 import verification as v

from pgkongtls.certs import check_leaf, leaf_verifier, self_check
from pgkongtls.lifecycle.base import Ca


class LeafChecker:
    """Checks every leaf one run mints from one CA, as strictly as `certs.self_check` on the whole chain.

    Why checking each leaf against its issuer alone, once the chain is verified, is the same
    guarantee as verifying the whole chain root -> issuer -> leaf for every leaf (RFC 5280 path
    validation with cryptography's webpki policy):

    - What the path check asks of the CAs (their signatures, validity at the check time, basic
      constraints, keyCertSign, path length, their own extension profile) depends only on the CA
      certificates, the time and the leaf's depth. In one run those are the same for every leaf:
      the same CA certificates, the same `now`, and a leaf always sits directly below the issuing CA.
      The first leaf of each kind (server, client, server+client) gets the full chain check, so the
      chain and what the CAs allow for that kind (an EKU on a CA restricts its leaves) are verified
      once per run.
    - What is left depends on the leaf itself: its signature by the issuing CA, its validity, its
      extension profile (basic constraints, key usage, EKU, SANs, the host it must match). A
      verifier whose only trust anchor is the issuing CA checks exactly these.
    - The one CA rule that reads the leaf's own names, name constraints, would not be applied by
      the root once the issuer is the anchor, so a chain carrying NameConstraints (pgkongtls never
      writes one) gets the full chain check for every leaf.
    """

    def __init__(self, ca: Ca, now: dt.datetime) -> None:
        self._anchors, self._intermediates = ca.anchors_and_intermediates()
        self._issuer = ca.certs[ca.issuing]
        self._now = now
        self._full_each = any(_has_name_constraints(c) for c in [*self._anchors, *self._intermediates])
        self._kinds: set[tuple[bool, bool]] = set()
        self._verifiers: dict[tuple[str, str], v.ServerVerifier | v.ClientVerifier] = {}

    def check(self, cert: x509.Certificate, *, server: bool, client: bool, host: str) -> None:
        """Refuse a leaf that would not verify with the PKI's chain (SelfCheckError: a pgkongtls bug)."""
        kind = (server, client)
        if self._full_each or kind not in self._kinds:
            self_check(anchors=self._anchors, intermediates=self._intermediates, server=cert if server else None,
                       client=cert if client else None, host=host, now=self._now)
            self._kinds.add(kind)
            return
        if server:
            check_leaf(self._verifier("server", host), cert, [])
        if client:
            check_leaf(self._verifier("client", ""), cert, [])

    def _verifier(self, role: str, host: str) -> v.ServerVerifier | v.ClientVerifier:
        """One verifier per role (and host) per run, with the issuing CA as its only trust anchor."""
        found = self._verifiers.get((role, host))
        if found is None:
            found = leaf_verifier([self._issuer], server=role == "server", host=host,
                                  at=self._now + dt.timedelta(seconds=1))
            self._verifiers[(role, host)] = found
        return found


def _has_name_constraints(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return False
    return True
