"""The pyOpenSSL context for FTPS: TLS 1.2 and 1.3 only, ECDHE with AES-GCM first (the suites
Sony bodies offer), session resumption allowed but never required. Built once at start-up."""

from __future__ import annotations

from pathlib import Path

from OpenSSL import SSL

CIPHERS = b":".join(
    [
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-AES256-GCM-SHA384",
        b"ECDHE-RSA-AES256-GCM-SHA384",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def make_context(cert_file: Path, key_file: Path) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.set_cipher_list(CIPHERS)  # TLS 1.3 suites are all AEAD and stay at OpenSSL's defaults
    context.use_certificate_chain_file(str(cert_file))
    context.use_privatekey_file(str(key_file))
    context.check_privatekey()
    # Server-side session cache on: a camera that resumes its control session on the data
    # channel is served; one that does not is served too (we never demand reuse).
    context.set_session_id(b"shutterbox")
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    return context
