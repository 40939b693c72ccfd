"""Secrets kept outside ``plugins.d``: manifest values that name a systemd credential.

A ``[config]`` value or a ``[wasi].env`` value may be ``{ credential = "NAME" }`` instead of a
string. The manifest keeps the reference (``Credential``); the value is read when the plug-in
is loaded, from ``$CREDENTIALS_DIRECTORY/NAME``: the folder systemd fills from the unit's
``LoadCredential=`` / ``LoadCredentialEncrypted=`` lines (a private, read-only ramfs, readable
by the service alone). What is read is a ``Secret``: a ``str`` that the plug-in gets like any
value, but that ``describe``, ``repr`` and errors show as the credential's name only.

A name is one path component (no ``/``, not ``.`` or ``..``, no NUL), a value at most
``MAX_CREDENTIAL_BYTES`` of UTF-8, taken as it is (a trailing newline is part of it). Missing
folder, missing file, a file too big or not UTF-8: the load fails naming the credential and
the reason, never the value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

# A credential's value at most: a token, a password, a small key file. systemd bounds
# credentials at 1 MiB; a config value the guest copies on every read stays far smaller.
MAX_CREDENTIAL_BYTES = 64 * 1024


class CredentialError(Exception):
    """A credential cannot be read; the message names it and why, never its value."""


@dataclass(frozen=True)
class Credential:
    """A manifest value that names a systemd credential (not read yet)."""

    name: str

    def shown(self) -> dict[str, str]:
        """How ``describe`` shows it: the reference, as the manifest wrote it."""
        return {"credential": self.name}


class Secret(str):
    """A credential's value: a string for the guest, its name for everyone else."""

    credential: Credential

    def __new__(cls, value: str, credential: Credential) -> Secret:
        secret = super().__new__(cls, value)
        secret.credential = credential
        return secret

    def __repr__(self) -> str:
        return f"<credential {self.credential.name}>"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a credential, or None."""
    if not name:
        return "is empty"
    if "/" in name or "\0" in name or name in (".", ".."):
        return "must be a file name in $CREDENTIALS_DIRECTORY (no '/', not '.' or '..')"
    return None


def read_credential(credential: Credential, environ: Mapping[str, str] = os.environ) -> Secret:
    """The value of ``credential``; raises ``CredentialError``."""
    name = credential.name
    problem = name_problem(name)
    if problem is not None:  # checked when parsed too: a Credential made by hand
        raise CredentialError(f"credential {name!r} {problem}")
    folder = environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        raise CredentialError(
            f"credential {name!r}: $CREDENTIALS_DIRECTORY is not set (give the unit a "
            f"LoadCredential={name}:PATH line)"
        )
    path = os.path.join(folder, name)
    try:
        # O_NOFOLLOW: the name is one component, and a link there is not systemd's doing.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CredentialError(
            f"credential {name!r} is not in $CREDENTIALS_DIRECTORY ({folder})"
        ) from None
    except OSError as exc:
        raise CredentialError(f"credential {name!r} cannot be read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CredentialError(f"credential {name!r} is not a regular file")
        data = os.read(fd, MAX_CREDENTIAL_BYTES + 1)  # a regular file: read whole or at the cap
    finally:
        os.close(fd)
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise CredentialError(
            f"credential {name!r} is over the limit of {MAX_CREDENTIAL_BYTES} bytes"
        )
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(f"credential {name!r} is not UTF-8 text") from None
    return Secret(value, credential)
