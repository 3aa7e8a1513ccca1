"""Shared Playwright steps for the browser tests.

* ``download(page, link_name, target)``: click the page's link of that name, save what it
  downloads as ``target`` and return its bytes.
* ``upload(page, path, pdf=None)``: choose ``path`` (first written with ``pdf`` when given)
  with the practitioner page's file input, press its upload button and return the response
  of the page it leads to.
* ``admin_sign_in(page, base, token)``: sign in to the overview with the login form (by
  mouse) and wait for ``/admin``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

UPLOAD_LABEL = "Completed form (PDF, up to 12 MB)"
UPLOAD_BUTTON = "Upload the completed form"


def download(page: Any, link_name: str, target: Path) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name).click()
    info.value.save_as(target)
    return target.read_bytes()


def upload(page: Any, path: Path, pdf: bytes | None = None) -> Any:
    if pdf is not None:
        path.write_bytes(pdf)
    page.get_by_label(UPLOAD_LABEL).set_input_files(str(path))
    with page.expect_navigation() as nav:
        page.get_by_role("button", name=UPLOAD_BUTTON).click()
    return nav.value


def admin_sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/admin/login")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin")
