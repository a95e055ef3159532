"""The one redaction rule: what counts as a secret, and how it is masked wherever a run records something.

The rule (``MASK`` is ``***``):

- a URL's userinfo password: ``http://user:pw@host`` -> ``http://user:***@host``; so is the value of a query
  parameter whose name is a secret name (``?api_key=...``);
- a secret name is one that contains, case-insensitively and with ``-`` read as ``_``, one of ``SECRET_WORDS``
  (TOKEN, SECRET, PASSWORD, PASSWD, API_KEY, APIKEY, CREDENTIAL, PRIVATE_KEY, AUTH);
- an environment variable (or a JSON key) with a secret name: its whole value;
- on a command line, the value after a flag with a secret name: ``--write-token X``, ``--write-token=X``,
  ``--password X``;
- a ``Redactor`` also masks the exact values it was given (the run's tokens, the values of secret-named
  environment variables), wherever they appear in text; values shorter than ``MIN_SECRET_CHARS`` are not searched
  for, as they would mask ordinary text.

Applied to metadata.json (command line, environment, host), the sampler's command lines, the request log's error
messages, the summaries and both reports, and the harness's log records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "MIN_SECRET_CHARS",
    "SECRET_WORDS",
    "RedactingFilter",
    "Redactor",
    "is_secret_name",
    "redact_argv",
    "redact_env",
    "redact_text",
    "redact_url",
    "secrets_in_env",
]

MASK = "***"
MIN_SECRET_CHARS = 4
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "CREDENTIAL", "PRIVATE_KEY", "AUTH")
_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)
# scheme://user:password@ inside any text; the password ends at the last @ before the host
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)(?P<password>[^\s/@]*)(?=@)")
# --secret-flag VALUE / --secret-flag=VALUE inside a command line written as one string
_FLAG_IN_TEXT = re.compile(r"(?<!\S)(?P<flag>--?[A-Za-z0-9][A-Za-z0-9_-]*)(?P<sep>=|\s+)(?P<value>(?!-)\S+)")
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def is_secret_name(name: str) -> bool:
    """Whether ``name`` (an environment variable, a flag without its dashes, a JSON key) names a secret."""
    return bool(_SECRET_NAME.search(name.replace("-", "_")))


def redact_url(url: str) -> str:
    """``url`` with its userinfo password and secret-named query values masked; other text is left as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_USERINFO.sub(lambda m: m["head"] + MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':' + MASK if colon else ''}@{hostport}"
    query = parts.query
    if query and any(is_secret_name(k) for k, _ in parse_qsl(query, keep_blank_values=True)):
        pairs = [(k, MASK if is_secret_name(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text (a log line, an error message, a command line joined by spaces) with URL passwords, secret
    query values and the values of secret flags masked."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    if "-" in text:
        text = _FLAG_IN_TEXT.sub(
            lambda m: f"{m['flag']}{m['sep']}{MASK}" if is_secret_name(m["flag"].lstrip("-")) else m.group(0), text
        )
    return text


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line (one string per argument) with secret flag values and URL passwords masked."""
    out: list[str] = []
    mask_next = False
    for arg in map(str, argv):
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        if arg.startswith("-") and len(arg) > 1:
            flag, equals, _value = arg.partition("=")
            if is_secret_name(flag.lstrip("-")):
                if equals:
                    out.append(f"{flag}={MASK}")
                else:
                    out.append(arg)
                    mask_next = True
                continue
            if equals and "://" in _value:  # --prometheus=http://user:pw@host: the URL's password
                out.append(f"{flag}={redact_url(_value)}")
                continue
        out.append(redact_url(arg) if "://" in arg else arg)
    return out


def redact_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables with secret-named values masked and URL passwords in the others masked."""
    return {k: MASK if is_secret_name(k) else redact_text(v) for k, v in environ.items()}


def secrets_in_env(environ: Mapping[str, str]) -> list[str]:
    """The values of ``environ``'s secret-named variables and the passwords of URLs in its values."""
    values = [v for k, v in environ.items() if is_secret_name(k)]
    for value in environ.values():
        if "://" in value and "@" in value:
            values += [m["password"] for m in _URL_USERINFO.finditer(value)]
    return values


class Redactor:
    """The rule plus the exact secret values a run knows (its tokens, its environment's secrets).

    ``text``, ``argv`` and ``value`` apply the rule, then replace every known value by MASK.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Also mask these exact values (None, empty and short values are ignored)."""
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS and secret not in self._secrets:
                self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)  # a secret containing another is masked whole

    def text(self, text: str) -> str:
        text = redact_text(text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [self.text(arg) for arg in redact_argv(argv)]

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string redacted and the values of secret-named keys masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: MASK if isinstance(k, str) and is_secret_name(k) and isinstance(v, str) else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message through a Redactor (install it on handlers)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = self.redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
