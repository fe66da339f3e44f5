"""Encryption of secrets at rest (OAuth tokens) with Fernet, keyed from ARSYNC_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from arsync.errors import ConfigError


class Vault:
    """Encrypts and decrypts short secrets; the Fernet key is derived from the settings key."""

    def __init__(self, secret_key: str) -> None:
        # Derive rather than demand a Fernet-formatted key, so any long random string works.
        digest = hashlib.sha256(b"arsync-token-vault:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "stored tokens cannot be decrypted: ARSYNC_SECRET_KEY differs from the key they "
                "were encrypted with") from exc

    def __repr__(self) -> str:
        return "Vault(<redacted>)"
