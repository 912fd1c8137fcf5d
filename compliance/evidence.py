"""Checks on evidence before it is stored: file size and type, https-only links."""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.utils.text import get_valid_filename

MAX_FILE_BYTES = 10 * 1024 * 1024
FILENAME_MAX = 120
URL_MAX = 2000

# Extension -> (content type we serve it as, how its first bytes must look; None = plain text).
ALLOWED_TYPES: dict[str, tuple[str, tuple[bytes, ...] | None]] = {
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".txt": ("text/plain", None),
    ".csv": ("text/csv", None),
}


def _error(message: str) -> ValidationError:
    return ValidationError({"file": [message]})


def checked_upload(upload: UploadedFile) -> tuple[str, str]:
    """(safe file name, content type) of an acceptable upload, or ValidationError on `file`.

    The type is decided by the extension and confirmed by the content, never taken from the
    browser's Content-Type.
    """
    if upload.size is None or upload.size == 0:
        raise _error("The file is empty.")
    if upload.size > MAX_FILE_BYTES:
        raise _error(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
    base, ext = os.path.splitext(os.path.basename(upload.name or ""))
    ext = ext.lower()
    if ext not in ALLOWED_TYPES:
        raise _error("Only PDF, PNG, JPEG, TXT and CSV files are accepted.")
    content_type, signatures = ALLOWED_TYPES[ext]
    upload.seek(0)
    head = upload.read(8192)
    upload.seek(0)
    if signatures is None:
        if b"\0" in head:
            raise _error(f"The content is not text, as a {ext} file must be.")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is fine.
            if exc.start < len(head) - 4:
                raise _error(f"The content is not UTF-8 text, as a {ext} file must be.") from None
    elif not head.startswith(signatures):
        raise _error(f"The content is not a {ext[1:].upper()} file.")
    safe = get_valid_filename(base)[: FILENAME_MAX - len(ext)] or "evidence"
    return safe + ext, content_type


def checked_link(url: str) -> str:
    """An https URL, or ValidationError on `url`."""
    url = (url or "").strip()
    if len(url) > URL_MAX:
        raise ValidationError({"url": [f"The link is longer than {URL_MAX} characters."]})
    try:
        URLValidator(schemes=["https"])(url)
    except ValidationError:
        raise ValidationError({"url": ["Enter a full https:// link."]}) from None
    return url
