"""Identity tokens: --token, then the environment, then google-auth per audience, then gcloud.

A token is only ever handed to the probe's token header (``probe.TOKEN_HEADER``) and to ``Printer.secrets`` (so any
echo of it is redacted); nothing here prints one.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any, Optional

from cloudrun_mesh.verify.support import Budget, VerifyError, bounded, run_command, whole_reason

TOKEN_ENV = "CLOUDRUN_MESH_ID_TOKEN"
TOKEN_WAIT = 5.0  # at least this long for google-auth or gcloud (within the overall bound)


class Tokens:
    """Each value cached: google-auth mints one per audience (the Cloud Run URL), gcloud one for all."""

    def __init__(self, explicit: Optional[str], env: Optional[str], budget: Budget, timeout: float):
        self.budget = budget
        self.wait = max(timeout, TOKEN_WAIT)
        self.fixed = (explicit or "").strip() or (env or "").strip() or None
        self.source = "--token" if (explicit or "").strip() else (f"${TOKEN_ENV}" if self.fixed else None)
        self._cache: dict[str, str] = {}
        self._google_auth_failed: Optional[str] = None
        self._gcloud: Optional[str] = None

    def get(self, audience: str) -> str:
        if self.fixed:
            return self.fixed
        if audience in self._cache:
            return self._cache[audience]
        if self._gcloud is None and self._google_auth_failed is None:
            token, reason = self._from_google_auth(audience)
            if token:
                self.source = "google-auth"
                self._cache[audience] = token
                return token
            self._google_auth_failed = reason
        if self._gcloud is None:
            token, reason = self._from_gcloud()
            if not token:
                raise VerifyError(
                    "no identity token: google-auth could not mint one "
                    f"({self._google_auth_failed}) and `gcloud auth print-identity-token` failed ({reason}). "
                    "Log in with `gcloud auth login` (or `gcloud auth application-default login`, or set "
                    f"GOOGLE_APPLICATION_CREDENTIALS to a service account's key), or pass a token in ${TOKEN_ENV}."
                )
            self.source = "gcloud auth print-identity-token"
            self._gcloud = token
        return self._gcloud

    def _limit(self) -> float:
        return min(self.wait, self.budget.hard_left())

    def _from_google_auth(self, audience: str) -> tuple[Optional[str], str]:
        try:
            from google.auth.transport.requests import Request
            from google.oauth2 import id_token
        except ImportError:
            return None, "google-auth is not installed"
        # google-auth ships py.typed but leaves fetch_id_token(request, audience, bind_id_token=None)
        # unannotated (google-auth 2.63.0, google/oauth2/id_token.py): the signature we call it with,
        # and `object` for what it returns, checked below before it is used as a token.
        fetch: Callable[[Request, str], object] = id_token.fetch_id_token
        limit = self._limit()
        finished, value = bounded(lambda: fetch(Request(), audience), limit)
        if not finished:
            return None, f"no answer within {limit:.1f} s"
        if isinstance(value, BaseException):
            return None, whole_reason(str(value)) or type(value).__name__
        if not isinstance(value, str) or not value.strip():
            return None, "it returned no token"
        return value.strip(), ""

    def _from_gcloud(self) -> tuple[Optional[str], str]:
        exe = shutil.which("gcloud")
        if exe is None:
            return None, "gcloud is not on PATH"
        limit = self._limit()
        try:
            proc = run_command([exe, "auth", "print-identity-token"], limit)
        except subprocess.TimeoutExpired:
            return None, f"no answer within {limit:.1f} s"
        except OSError as exc:
            return None, str(exc.strerror or exc)
        token = proc.stdout.strip()
        if proc.returncode != 0 or not token or any(ch.isspace() for ch in token):
            # The whole message: gcloud states the cause first and the remedy after it.
            return None, whole_reason(proc.stderr) or f"exit status {proc.returncode}"
        return token, ""


def token_claims(token: str) -> Optional[dict[str, Any]]:
    """The payload of a JWT, unverified (only to explain a refusal), or None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def token_problems(token: str, audience: str) -> list[str]:
    """Why Cloud Run may have refused a token (HTTP 401), read from its unverified claims."""
    claims = token_claims(token)
    if claims is None:
        return ["The token is not a JWT ID token (an access token from `gcloud auth print-access-token`, or a "
                "truncated value?); Cloud Run accepts only ID tokens."]
    notes = []
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time():
        notes.append(f"The token expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(exp))}; "
                     "ID tokens last one hour.")
    aud = claims.get("aud")
    if isinstance(aud, str) and aud.rstrip("/") != audience and not aud.endswith(".apps.googleusercontent.com"):
        notes.append(f"The token's audience is {aud!r}, not the service's URL {audience!r}: an ID token for a "
                     "service account must be minted for the Cloud Run URL.")
    return notes or ["The token looks well formed: it may be for an unknown or deleted identity, or minted for "
                     "another audience than Cloud Run accepts."]


def invoker_member(token: str) -> str:
    """The IAM member a token speaks for, for the `--member` of a grant (a shell expression if unknown)."""
    email = (token_claims(token) or {}).get("email")
    if isinstance(email, str) and "@" in email:
        return f"{'serviceAccount' if email.endswith('.gserviceaccount.com') else 'user'}:{email}"
    return '"user:$(gcloud config get-value account)"'
