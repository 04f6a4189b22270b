"""The error a security provider raises for credentials that were presented but are bad."""
from __future__ import annotations


class InvalidCredentials(Exception):
    """Credentials for the provider's own scheme were presented but are invalid.

    Args:
        category: a short, client-safe word ("invalid_token", "expired", ...).
        detail: what went wrong, for the log only; never holds the credential in clear.
    """

    def __init__(self, category: str, detail: str = "") -> None:
        super().__init__(category, detail)
        self.category = category
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.category}: {self.detail}" if self.detail else self.category
