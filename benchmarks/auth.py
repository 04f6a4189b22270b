"""Micro-benchmark: the per-request cost of authentication (issue 3's targets).

- API key in a header (`ApiKeyProvider.authenticate`; target < 5 us);
- HS256 bearer JWT with the verified-token cache: a hit (target < 20 us) and a miss
  (a fresh token, signature and claims checked by pyjwt), plus RS256 and ES256 misses
  for scale.

Each variant calls `authenticate` with a WSGI environ, as the security stage does, in a
plain timing loop (pyperf's worker processes do not mix with gevent); the median of the
rounds is printed in microseconds per call, wall time and process CPU time.

    taskset -c 1 .venv/bin/python benchmarks/auth.py [--calls 20000] [--rounds 9]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from brrt_actors.security.apikey import ApiKeyProvider
from brrt_actors.security.jwt import JWTBearerProvider, JWTSettings, mint_token
from brrt_actors.spec.model import SecurityScheme

SECRET = "benchmark-secret-of-at-least-32-bytes!"


def _claims(n: int = 0) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iat": now, "exp": now + 3600, "scope": "read write", "n": n}


def _bearer(token: str) -> dict[str, Any]:
    # A realistic environ: the security stage sees every header of the request.
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/pets", "HTTP_HOST": "localhost",
            "HTTP_ACCEPT": "application/json", "HTTP_AUTHORIZATION": f"Bearer {token}"}


def api_key() -> Callable[[], Any]:
    scheme = SecurityScheme(name="ApiKeyHeader", type="apiKey",
                            pointer="/components/securitySchemes/ApiKeyHeader",
                            location="header", parameter_name="X-API-Key")
    provider = ApiKeyProvider(scheme, ["test123"])
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/pets", "HTTP_HOST": "localhost",
               "HTTP_ACCEPT": "application/json", "HTTP_X_API_KEY": "test123"}
    return lambda: provider.authenticate(environ)


def hs256_hit() -> Callable[[], Any]:
    provider = JWTBearerProvider("BearerAuth", JWTSettings(algorithms=("HS256",), secret=SECRET))
    environ = _bearer(mint_token(SECRET, _claims()))
    provider.authenticate(environ)  # now cached
    return lambda: provider.authenticate(environ)


def _misses(provider: JWTBearerProvider, tokens: list[str]) -> Callable[[], Any]:
    environs = [_bearer(token) for token in tokens]
    position = 0

    def call() -> Any:
        nonlocal position
        position = (position + 1) % len(environs)
        return provider.authenticate(environs[position])

    return call


def hs256_miss() -> Callable[[], Any]:
    # Cache disabled: every call verifies (the cost of a token seen for the first time).
    provider = JWTBearerProvider("BearerAuth", JWTSettings(
        algorithms=("HS256",), secret=SECRET, verified_cache_size=0))
    return _misses(provider, [mint_token(SECRET, _claims(n)) for n in range(64)])


def _public_key_miss(private: Any, alg: str) -> Callable[[], Any]:
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    provider = JWTBearerProvider("Keys", JWTSettings(algorithms=(alg,), public_key=pem,
                                                     verified_cache_size=0))
    return _misses(provider, [mint_token(private, _claims(n), alg) for n in range(64)])


def rs256_miss() -> Callable[[], Any]:
    return _public_key_miss(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                            "RS256")


def es256_miss() -> Callable[[], Any]:
    return _public_key_miss(ec.generate_private_key(ec.SECP256R1()), "ES256")


VARIANTS: list[tuple[str, Callable[[], Callable[[], Any]], int]] = [
    # name, factory, calls divisor (slow variants run fewer calls per round)
    ("api key (header)", api_key, 1),
    ("HS256 JWT, cache hit", hs256_hit, 1),
    ("HS256 JWT, cache miss", hs256_miss, 10),
    ("RS256 JWT, cache miss", rs256_miss, 20),
    ("ES256 JWT, cache miss", es256_miss, 20),
]


def measure(call: Callable[[], Any], calls: int, rounds: int) -> tuple[float, float, float]:
    for _ in range(min(calls, 1000)):
        call()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            call()
        wall.append((time.perf_counter() - started) / calls * 1e6)
        cpu.append((time.process_time() - started_cpu) / calls * 1e6)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"{'variant':<24} {'median us':>10} {'min us':>8} {'cpu us':>8}")
    for name, factory, divisor in VARIANTS:
        median, best, cpu = measure(factory(), max(args.calls // divisor, 100), args.rounds)
        print(f"{name:<24} {median:>10.2f} {best:>8.2f} {cpu:>8.2f}")


if __name__ == "__main__":
    main()
