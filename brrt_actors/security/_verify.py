"""Token checks with pyjwt and cryptography, loaded when a scheme first needs them.

`JWTBearerProvider` imports this module on its first token (or at build, for a PEM key,
which is checked then), so a start that only reads JWT settings does not pay for pyjwt and
cryptography. Every pyjwt error leaves this module as `InvalidCredentials`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt as pyjwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidSignatureError,
    InvalidTokenError,
    PyJWTError,
)

from brrt_actors.security.credentials import InvalidCredentials

if TYPE_CHECKING:
    from brrt_actors.security.scheme_settings import JWTSettings

__all__ = ["Decoder", "load_public_key"]


def _category(ex: PyJWTError) -> str:
    if isinstance(ex, ExpiredSignatureError):
        return "expired"
    if isinstance(ex, ImmatureSignatureError):
        return "not_yet_valid"
    if isinstance(ex, InvalidSignatureError):
        return "invalid_signature"
    if isinstance(ex, InvalidAlgorithmError):
        return "invalid_algorithm"
    if isinstance(ex, DecodeError) or type(ex) is InvalidTokenError:
        return "malformed"  # InvalidTokenError itself: a bad header (kid, crit)
    return "invalid_claims"


def _invalid(ex: PyJWTError) -> InvalidCredentials:
    return InvalidCredentials(_category(ex), f"{type(ex).__name__}: {ex}")


class Decoder:
    """Check tokens of one scheme: its algorithms only, its audience, leeway and claims."""

    __slots__ = ("_algorithms", "_allowed", "_audience", "_jwt", "_leeway")

    def __init__(self, settings: JWTSettings) -> None:
        self._jwt = pyjwt.PyJWT({"require": list(settings.required_claims)})
        self._algorithms = list(settings.algorithms)
        self._allowed = frozenset(settings.algorithms)
        self._audience = settings.audience
        self._leeway = settings.leeway_s

    def header(self, token: str) -> tuple[str, str | None]:
        """Return the (unverified) header's ``alg``, one of the scheme's, and ``kid``.

        Raises:
            InvalidCredentials: a malformed header, or an algorithm the scheme refuses.
        """
        try:
            header = pyjwt.get_unverified_header(token)
            alg, kid = header.get("alg"), header.get("kid")
            if not isinstance(alg, str) or alg not in self._allowed:
                raise InvalidAlgorithmError(f"alg {alg!r} is not one of {self._algorithms}")
        except PyJWTError as ex:
            raise _invalid(ex) from None
        return alg, kid

    def decode(self, token: str, key: Any, issuer: str | None) -> dict[str, Any]:
        """Return the claims of a token signed with `key`, checked against the settings.

        Raises:
            InvalidCredentials: bad signature, expired, not yet valid, wrong issuer or
                audience, a missing required claim, or a malformed token.
        """
        try:
            return self._jwt.decode(token, key, algorithms=self._algorithms,
                                    audience=self._audience, issuer=issuer,
                                    leeway=self._leeway)
        except PyJWTError as ex:
            raise _invalid(ex) from None


def load_public_key(scheme_name: str, settings: JWTSettings) -> Any:
    """Return the settings' PEM public key, loaded and checked against every algorithm.

    Raises:
        ValueError: naming the scheme, for a missing key, a key that is not PEM, or one
            that cannot verify one of the algorithms.
    """
    if not settings.public_key:
        raise ValueError(f"security scheme {scheme_name!r}: public-key algorithms "
                         f"need a `public_key` (PEM) or a `jwks_url`")
    try:
        key = load_pem_public_key(settings.public_key.encode())
    except (ValueError, TypeError) as ex:
        raise ValueError(f"security scheme {scheme_name!r}: `public_key` is not a "
                         f"PEM public key ({ex})") from None
    algorithms = get_default_algorithms()
    for alg in settings.algorithms:
        try:
            algorithms[alg].prepare_key(key)
        except (PyJWTError, TypeError, ValueError):
            raise ValueError(f"security scheme {scheme_name!r}: the public key "
                             f"({type(key).__name__}) cannot verify {alg}") from None
    return key
