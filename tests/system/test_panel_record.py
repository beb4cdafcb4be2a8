"""Record a bulletin in the browser (docs/panel.md): Debian's Chromium with a fake
microphone that plays a generated tone records about 2 s on the bulletins page (level
meter moving, local preview), uploads it through the page's own upload form, and the
stored media has the recorded length and a measured, normalized loudness.

The controller runs in-process behind a real HTTP server (uvicorn): getUserMedia needs a
secure context, which http://127.0.0.1 is. Screenshot: test-artifacts/panel/record-*.png.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from controller.db.models import Media
from testkit.waiting import eventually
from tests.support.browser import chromium, chromium_problem, shot, skip_or_fail
from tests.support.served_panel import served_panel

PHONE = {"width": 412, "height": 915}


def fake_microphone(path: Path) -> Path:
    """20 s of a 600 Hz tone with a 3 Hz swell (speech-like syllables), mono 48 kHz WAV."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "sine=frequency=600:sample_rate=48000:duration=20",
         "-af", "volume=0.4,tremolo=f=3:d=0.6", "-ac", "1", "-c:a", "pcm_s16le", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    return path


def js(page: Any, expression: str) -> Any:
    """Poll an expression (CDP evaluation: the page's CSP forbids Playwright's wait_for_function eval)."""

    async def probe() -> Any:
        return await page.evaluate(expression)

    return probe


async def test_record_in_browser_then_upload(tmp_path: Path) -> None:
    if chromium_problem():
        skip_or_fail(chromium_problem() or "")
    from playwright.async_api import expect

    mic = fake_microphone(tmp_path / "mic.wav")
    async with served_panel(tmp_path, f"sqlite:///{tmp_path / 'c.db'}") as panel:
        args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"]
        async with chromium(args) as browser:
            context = await browser.new_context(base_url=panel.base_url, viewport=PHONE, locale="vi-VN")
            page = await context.new_page()
            await page.goto("/login")
            await page.fill('input[name="username"]', "admin")
            await page.fill('input[name="password"]', panel.admin_password)
            await page.click('button[type="submit"]')
            await page.wait_for_url(re.compile(r".*/$"))
            await page.goto("/bulletins")
            recorder = page.locator("#recorder")
            await expect(recorder).to_be_visible()
            await expect(page.locator("#record-start")).to_have_text("Ghi âm")

            await page.click("#record-start")
            await expect(recorder).to_have_attribute("data-state", "recording", timeout=5000)
            # The level meter follows the microphone (the tone sits around -12 dBFS).
            await eventually(js(page, "document.getElementById('record-level').value"), lambda v: v > 0.5,
                             timeout=5, what="the level meter to rise", interval=0.2)  # fmt: skip
            await expect(page.locator("#record-time")).to_have_text("0:02", timeout=5000)
            await shot(page, "record-01-recording")
            await page.click("#record-stop")
            await expect(recorder).to_have_attribute("data-state", "recorded", timeout=5000)
            seconds = float(await recorder.get_attribute("data-seconds") or 0)
            assert 2.0 <= seconds < 3.5, seconds
            preview = page.locator("#record-preview")
            await expect(preview).to_be_visible()
            assert (await preview.get_attribute("src") or "").startswith("blob:")
            # The browser decodes its own recording (what the operator listens to before uploading).
            ready = js(page, "document.getElementById('record-preview').readyState")
            await eventually(ready, lambda v: v >= 1, timeout=5, what="the preview's metadata")
            assert await page.evaluate("document.getElementById('record-level').value") == 0  # mic released
            await shot(page, "record-02-preview")

            await page.click("#record-upload")
            uploaded = re.compile(r".*/bulletins\?media=[0-9a-f]{64}&ok=uploaded")
            await page.wait_for_url(uploaded, timeout=20000)
            sha = re.search(r"media=([0-9a-f]{64})", page.url).group(1)  # type: ignore[union-attr]
            await expect(page.locator("#preview")).to_have_attribute("src", f"/media/{sha}")
            await shot(page, "record-03-uploaded")
        with panel.rt.db.session() as s:
            media = s.get(Media, sha)
            assert media is not None
            assert media.original_name.startswith("Bản ghi âm ") and media.origin == "upload"
            assert abs(media.duration_s - seconds) < 0.5, (media.duration_s, seconds)
            assert media.source_loudness_lufs is not None and media.loudness_lufs is not None
            assert abs(media.loudness_lufs - (-16.0)) < 1.5, media.loudness_lufs  # normalized to the target
