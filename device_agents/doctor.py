"""`communecast agent doctor`: a technician's checklist for one station, in Vietnamese or English.

Each check says what it found in words a field technician can act on. The exit status
is 0 only when nothing failed (a check that does not apply, e.g. no relay board
configured, is skipped and does not fail). Nothing here changes the station: the
broker login uses a separate client id, so a running agent is not disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from device_agents.common.config import AgentConfig
from device_agents.common.tls import agent_ca_file, agent_context
from protocol import topics

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MARKS = {OK: "[ OK ]", WARN: "[CHÚ Ý]", FAIL: "[LỖI]", SKIP: "[ -- ]"}
MARKS_EN = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]", SKIP: "[ -- ]"}

# (Vietnamese, English) for every line the doctor prints.
TEXT: dict[str, tuple[str, str]] = {
    "title": ("Kiểm tra trạm {uid}", "Checking station {uid}"),
    "config": ("Tệp cấu hình", "Configuration file"),
    "config.ok": ("{path} (chỉ chủ sở hữu đọc được)", "{path} (owner-only)"),
    "config.loose": ("{path} có quyền {mode}: người khác đọc được mật khẩu. Chạy: chmod 600 {path}",
                     "{path} has mode {mode}: others can read the password. Run: chmod 600 {path}"),
    "broker": ("Máy chủ MQTT", "MQTT broker"),
    "broker.ok": ("kết nối được {host}:{port} ({ms:.0f} ms)", "reachable at {host}:{port} ({ms:.0f} ms)"),
    "broker.fail": ("không kết nối được {host}:{port}: {error}. Kiểm tra mạng/4G và tường lửa.",
                    "cannot reach {host}:{port}: {error}. Check the network/4G link and firewall."),
    "tls": ("Mã hóa TLS", "TLS encryption"),
    "tls.ok": ("{version}, chứng chỉ hợp lệ: {subject}, hết hạn {expires} (còn {days} ngày)",
               "{version}, certificate valid: {subject}, expires {expires} ({days} days left)"),
    "tls.expiring": ("{version}, chứng chỉ {subject} SẮP HẾT HẠN: {expires} (còn {days} ngày). "
                     "Cấp chứng chỉ mới cho máy chủ MQTT.",
                     "{version}, certificate {subject} EXPIRES SOON: {expires} ({days} days left). "
                     "Issue a new broker certificate."),
    "tls.fail": ("bắt tay TLS thất bại: {error}", "TLS handshake failed: {error}"),
    "tls.plain_port": ("bắt tay TLS thất bại ({error}): cổng {port} có lẽ là MQTT không mã hóa, "
                       "không phải cổng TLS (thường là 8883)",
                       "TLS handshake failed ({error}): port {port} looks like plain MQTT, not the TLS "
                       "port (usually 8883)"),
    "tls.unknown_ca": ("chứng chỉ của máy chủ {host} KHÔNG do CA tin cậy ký ({error}). Có thể đang nối "
                       "nhầm máy chủ hoặc bị giả mạo, hoặc tệp CA {ca} đã cũ: kích hoạt lại trạm.",
                       "the certificate of {host} is NOT signed by the trusted CA ({error}). Wrong or "
                       "impostor broker, or a stale CA file {ca}: enroll the station again."),
    "tls.mismatch": ("chứng chỉ của máy chủ không mang tên “{name}” ({error}). Kiểm tra "
                     "mqtt_host / mqtt_tls_server_name.",
                     "the broker's certificate is not for the name “{name}” ({error}). Check "
                     "mqtt_host / mqtt_tls_server_name."),
    "tls.expired": ("chứng chỉ của máy chủ đã hết hạn hoặc chưa có hiệu lực ({error}). Kiểm tra đồng "
                    "hồ của trạm; nếu đúng giờ thì cấp chứng chỉ mới cho máy chủ MQTT.",
                    "the broker's certificate has expired or is not valid yet ({error}). Check the "
                    "station's clock; if it is right, issue a new broker certificate."),
    "tls.ca_unreadable": ("không đọc được tệp CA / chứng chỉ của trạm: {error}",
                          "cannot read the CA file / station certificate: {error}"),
    "tls.client_refused": ("máy chủ MQTT từ chối trạm sau khi bắt tay TLS ({error}): máy chủ đòi chứng "
                           "chỉ của trạm (TLS hai chiều). Cấu hình mqtt_client_cert_file và "
                           "mqtt_client_key_file bằng chứng chỉ do CA của máy chủ cấp.",
                           "the broker dropped the station right after the TLS handshake ({error}): it "
                           "wants a station certificate (mutual TLS). Set mqtt_client_cert_file and "
                           "mqtt_client_key_file to one issued by the broker's CA."),
    "tls.system_ca": ("(kho CA của hệ thống)", "(the system trust store)"),
    "tls.none": ("KHÔNG mã hóa (MQTT thường, cổng {port}): mật khẩu và dữ liệu đi qua mạng ở dạng rõ. "
                 "Bật mqtt_tls.",
                 "NOT encrypted (plain MQTT, port {port}): the password and data cross the network "
                 "in clear. Enable mqtt_tls."),
    "creds": ("Tài khoản của trạm", "Station credentials"),
    "creds.ok": ("đăng nhập được với tên {user}, được nhận lệnh của mình",
                 "logged in as {user} and may receive its own commands"),
    "creds.refused": ("máy chủ từ chối tài khoản {user} ({error}). Trạm đã bị thu hồi hoặc cần kích hoạt "
                      "lại: xin mã mới và chạy communecast agent enroll.",
                      "the broker refused account {user} ({error}). The station was retired or needs "
                      "enrolling again: get a new code and run communecast agent enroll."),
    "creds.no_sub": ("đăng nhập được nhưng không được nhận lệnh trên {topic}",
                     "logged in but may not receive commands on {topic}"),
    "creds.skip": ("không thử vì không kết nối được máy chủ MQTT (hoặc TLS lỗi)",
                   "not tried: the broker is unreachable (or TLS failed)"),
    "clock": ("Đồng hồ", "Clock"),
    "clock.ok": ("lệch {ms:+.0f} ms so với máy chủ điều khiển{ntp}",
                 "{ms:+.0f} ms from the controller{ntp}"),
    "clock.off": ("lệch {offset:+.1f} s so với máy chủ điều khiển (cho phép ±{limit:.1f} s): kiểm tra "
                  "NTP (timedatectl){ntp}",
                  "{offset:+.1f} s from the controller (±{limit:.1f} s allowed): check NTP "
                  "(timedatectl){ntp}"),
    "clock.fail": ("không hỏi được giờ của máy chủ điều khiển {url}: {error}",
                   "could not ask the controller {url} for its time: {error}"),
    "clock.ntp_yes": ("; NTP đã đồng bộ", "; NTP synchronised"),
    "clock.ntp_no": ("; NTP CHƯA đồng bộ", "; NTP NOT synchronised"),
    "audio": ("Thiết bị âm thanh", "Audio device"),
    "audio.ok": ("mở được ALSA \u201c{device}\u201d và phát thử 0,1 s im lặng",
                 "opened ALSA \u201c{device}\u201d and played 0.1 s of silence"),
    "audio.fail": ("không mở được ALSA \u201c{device}\u201d: {error}",
                   "cannot open ALSA \u201c{device}\u201d: {error}"),
    "audio.no_aplay": ("thiếu lệnh aplay: cài gói alsa-utils", "aplay is missing: install alsa-utils"),
    "audio.sim": ("mô phỏng (firmware_sim ghi lại âm thanh thay cho loa)",
                  "simulated (firmware_sim records the audio instead of a horn)"),
    "serial": ("Cổng nối tiếp RS-485", "RS-485 serial port"),
    "serial.ok": ("{url} mở được", "{url} opens"),
    "serial.fail": ("không mở được {url}: {error}. Kiểm tra bộ chuyển USB-RS485.",
                    "cannot open {url}: {error}. Check the USB-RS485 adapter."),
    "serial.none": ("không cấu hình (trạm không có bo rơ-le)", "not configured (no relay board)"),
    "modbus": ("Thiết bị Modbus (rơ-le, công tơ, cảm biến nhiệt)",
               "Modbus devices (relay, meter, thermometer)"),
    "modbus.skip": ("không thử vì cổng nối tiếp có lỗi", "not tried: the serial port failed"),
    "modbus.ok": ("trả lời: rơ-le {relay}, điện lưới {mains:.0f} V, dòng loa {amps:.2f} A, "
                  "tủ {temp:.1f} °C", "answering: relay {relay}, mains {mains:.0f} V, amplifier "
                  "{amps:.2f} A, cabinet {temp:.1f} °C"),
    "modbus.fail": ("không trả lời: {error}. Kiểm tra dây A/B, nguồn bo mạch và địa chỉ Modbus.",
                    "not answering: {error}. Check the A/B wiring, board power and Modbus addresses."),
    "on": ("BẬT", "ON"), "off": ("TẮT", "OFF"),
    "disk": ("Dung lượng trống", "Free disk space"),
    "disk.ok": ("{free} trống ở {path}", "{free} free at {path}"),
    "disk.low": ("chỉ còn {free} ở {path} (cần ít nhất {need}): xóa bớt tệp cũ",
                 "only {free} left at {path} (at least {need} needed): delete old files"),
    "summary.ok": ("Tất cả đều ổn.", "All checks passed."),
    "summary.fail": ("{n} mục có lỗi.", "{n} check(s) failed."),
}


def tr(key: str, lang: str, **params: object) -> str:
    vi, en = TEXT[key]
    return (en if lang == "en" else vi).format(**params)


@dataclass(frozen=True)
class Check:
    key: str  # the TEXT key of the check's title
    status: str
    detail: str


def _err(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


class Doctor:
    def __init__(self, config: AgentConfig, config_file: Path | None, *, lang: str = "vi",
                 simulated_audio: bool = False, clock_limit_s: float = 1.0,
                 min_free_bytes: int = 200 * 2**20, timeout: float = 5.0, cert_warn_days: int = 30) -> None:
        self.c, self.config_file, self.lang = config, config_file, lang
        self.simulated_audio = simulated_audio
        # Loose on purpose: this is "is NTP working at all"; the 100 ms alarm is telemetry's.
        self.clock_limit_s = clock_limit_s
        self.min_free_bytes = min_free_bytes
        self.timeout = timeout
        self.cert_warn_days = cert_warn_days  # warn this long before the broker certificate expires

    def _t(self, key: str, **params: object) -> str:
        return tr(key, self.lang, **params)

    async def run(self) -> list[Check]:
        checks = []
        if self.config_file is not None:
            checks.append(self.check_config_file(self.config_file))
        reachable = await self.check_broker()
        tls = await self.check_tls()
        # Over a refused TLS handshake a login would only repeat the TLS error as "account refused".
        login = reachable.status == OK and tls.status != FAIL
        checks += [reachable, tls, await self.check_credentials(login),
                   await self.check_clock(), await self.check_audio()]
        serial = await self.check_serial()
        checks += [serial, await self.check_modbus(serial.status)]
        checks.append(self.check_disk())
        return checks

    def check_config_file(self, path: Path) -> Check:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return Check("config", FAIL, self._t("config.loose", path=path, mode=oct(mode)))
        return Check("config", OK, self._t("config.ok", path=path))

    async def check_broker(self) -> Check:
        host, port = self.c.mqtt_host, self.c.mqtt_port
        t0 = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (OSError, TimeoutError) as exc:
            return Check("broker", FAIL, self._t("broker.fail", host=host, port=port, error=_err(exc)))
        writer.close()
        ms = (time.perf_counter() - t0) * 1000
        return Check("broker", OK, self._t("broker.ok", host=host, port=port, ms=ms))

    async def check_tls(self) -> Check:
        """Handshake exactly as the agent does (same context), then say what was found."""
        c = self.c
        if not c.mqtt_tls:
            return Check("tls", WARN, self._t("tls.none", port=c.mqtt_port))
        try:
            context = agent_context(c)
        except (OSError, ssl.SSLError) as exc:
            return Check("tls", FAIL, self._t("tls.ca_unreadable", error=_err(exc)))
        assert context is not None
        name = c.mqtt_tls_server_name or c.mqtt_host
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                c.mqtt_host, c.mqtt_port, ssl=context, server_hostname=name,
                ssl_handshake_timeout=self.timeout), self.timeout)  # fmt: skip
        except ssl.SSLCertVerificationError as exc:
            return Check("tls", FAIL, self._verify_failure(exc, name))
        except (ssl.SSLError, ConnectionResetError) as exc:
            # A plain MQTT listener answers a ClientHello with garbage or by hanging up.
            hung_up = isinstance(exc, ConnectionResetError | ssl.SSLEOFError)
            plain = hung_up or "WRONG_VERSION_NUMBER" in str(exc)
            key = "tls.plain_port" if plain else "tls.fail"
            return Check("tls", FAIL, self._t(key, error=_err(exc), port=c.mqtt_port))
        except (OSError, TimeoutError) as exc:
            return Check("tls", FAIL, self._t("tls.fail", error=_err(exc)))
        ssl_obj = writer.get_extra_info("ssl_object")
        try:
            der = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
            version = (ssl_obj.version() if ssl_obj else None) or "?"
        except ValueError:  # the broker already tore the session down (see below)
            der, version = None, "?"
        # With TLS 1.3 the broker judges our certificate (mutual TLS) after the handshake looks
        # done here: a broker that accepts us waits silently for CONNECT, one that refuses hangs up.
        refused: str | None = None
        try:
            if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                refused = "connection closed"
        except TimeoutError:
            pass
        except (OSError, ssl.SSLError) as exc:
            refused = _err(exc)
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        if refused is not None:
            return Check("tls", FAIL, self._t("tls.client_refused", error=refused))
        if der is None:  # cannot happen with CERT_REQUIRED; say so rather than pass silently
            return Check("tls", FAIL, self._t("tls.fail", error="no certificate"))
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        expires = cert.not_valid_after_utc
        days = int((expires - datetime.now(UTC)).total_seconds() // 86400)
        params = {"version": version, "subject": cert.subject.rfc4514_string(), "days": days,
                  "expires": expires.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%d/%m/%Y")}
        if days < self.cert_warn_days:
            return Check("tls", WARN, self._t("tls.expiring", **params))
        return Check("tls", OK, self._t("tls.ok", **params))

    def _verify_failure(self, exc: ssl.SSLCertVerificationError, name: str) -> str:
        """OpenSSL's verify codes, in words a technician can act on."""
        error = exc.verify_message or _err(exc)
        code = exc.verify_code
        if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return self._t("tls.mismatch", name=name, error=error)
        if code in (9, 10):  # not yet valid, expired
            return self._t("tls.expired", error=error)
        if code in (2, 18, 19, 20, 21):  # issuer unknown, self-signed, untrusted chain
            ca = agent_ca_file(self.c) or self._t("tls.system_ca")
            return self._t("tls.unknown_ca", host=self.c.mqtt_host, error=error, ca=ca)
        return self._t("tls.fail", error=error)

    async def check_credentials(self, reachable: bool) -> Check:
        import aiomqtt

        if not reachable:
            return Check("creds", SKIP, self._t("creds.skip"))
        user = self.c.mqtt_username or self.c.uid
        try:
            tls = agent_context(self.c)
        except (OSError, ssl.SSLError) as exc:
            return Check("creds", SKIP, self._t("tls.ca_unreadable", error=_err(exc)))
        own = topics.cmd(self.c.uid)
        try:
            # The broker binds the account to client id = uid (issue 16): any other id is
            # refused. A running agent is thrown off for a moment and reconnects by itself.
            async with aiomqtt.Client(
                self.c.mqtt_host, self.c.mqtt_port, identifier=self.c.uid,
                username=self.c.mqtt_username, password=self.c.mqtt_password, clean_session=True,
                timeout=self.timeout, tls_context=tls,
            ) as client:  # fmt: skip
                granted = await client.subscribe(own, qos=1)
                await client.unsubscribe(own)
        except aiomqtt.MqttError as exc:
            return Check("creds", FAIL, self._t("creds.refused", user=user, error=str(exc)))
        codes = granted if isinstance(granted, list | tuple) else [granted]
        if any(getattr(code, "value", code) >= 0x80 for code in codes):
            return Check("creds", FAIL, self._t("creds.no_sub", topic=own))
        return Check("creds", OK, self._t("creds.ok", user=user))

    async def _ntp_synced(self) -> bool | None:
        exe = shutil.which("timedatectl")
        if exe is None:
            return None
        try:
            proc = await asyncio.create_subprocess_exec(
                exe, "show", "-p", "NTPSynchronized", "--value",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except (OSError, TimeoutError):
            return None
        value = out.decode().strip()
        return {"yes": True, "no": False}.get(value)

    async def _clock_offset(self, url: str) -> float:
        """Local minus controller time, seconds: the sample with the shortest round trip
        wins (as NTP does). Falls back to the HTTP Date header (1 s resolution)."""
        best: tuple[float, float] | None = None  # (round trip, offset)
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            for _ in range(5):
                sent = time.time()
                r = await http.get(f"{url}/api/v1/time")
                received = time.time()
                if r.status_code == 404:  # an older controller
                    break
                r.raise_for_status()
                sample = (received - sent, (sent + received) / 2 - float(r.json()["unix"]))
                best = sample if best is None or sample[0] < best[0] else best
            if best is not None:
                return best[1]
            sent = time.time()
            r = await http.get(f"{url}/healthz")
            received = time.time()
        server = parsedate_to_datetime(r.headers["date"]).timestamp()
        return (sent + received) / 2 - (server + 0.5)

    async def check_clock(self) -> Check:
        url = self.c.controller_url.rstrip("/")
        try:
            offset = await self._clock_offset(url)
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            return Check("clock", FAIL, self._t("clock.fail", url=url, error=_err(exc)))
        synced = await self._ntp_synced()
        ntp = "" if synced is None else self._t("clock.ntp_yes" if synced else "clock.ntp_no")
        if abs(offset) > self.clock_limit_s:
            limit = self.clock_limit_s
            return Check("clock", FAIL, self._t("clock.off", offset=offset, limit=limit, ntp=ntp))
        return Check("clock", OK, self._t("clock.ok", ms=offset * 1000, ntp=ntp))

    async def check_audio(self) -> Check:
        if self.simulated_audio:
            return Check("audio", OK, self._t("audio.sim"))
        aplay = shutil.which("aplay")
        device = self.c.audio_device
        if aplay is None:
            return Check("audio", FAIL, self._t("audio.no_aplay"))
        try:
            proc = await asyncio.create_subprocess_exec(
                aplay, "-q", "-D", device, "-t", "raw", "-f", "S16_LE", "-r", "16000", "-c", "1",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)  # fmt: skip
            _, err = await asyncio.wait_for(proc.communicate(b"\x00" * 3200), self.timeout)
        except (OSError, TimeoutError) as exc:
            return Check("audio", FAIL, self._t("audio.fail", device=device, error=str(exc)))
        if proc.returncode != 0:
            error = (err.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            return Check("audio", FAIL, self._t("audio.fail", device=device, error=error))
        return Check("audio", OK, self._t("audio.ok", device=device))

    async def check_serial(self) -> Check:
        url = self.c.modbus_url
        if not url:
            return Check("serial", SKIP, self._t("serial.none"))

        def probe() -> None:
            import serial

            port = serial.serial_for_url(url, baudrate=self.c.modbus_baudrate, timeout=0.2)
            port.close()

        try:
            await asyncio.wait_for(asyncio.to_thread(probe), self.timeout)
        except Exception as exc:
            return Check("serial", FAIL, self._t("serial.fail", url=url, error=_err(exc)))
        return Check("serial", OK, self._t("serial.ok", url=url))

    async def check_modbus(self, serial_status: str) -> Check:
        from device_agents.hardware.amplifier import HardwareError, ModbusAmplifier, ModbusBusConfig

        if serial_status != OK:
            return Check("modbus", SKIP, self._t("serial.none" if serial_status == SKIP else "modbus.skip"))
        assert self.c.modbus_url is not None
        amp = ModbusAmplifier(ModbusBusConfig(url=self.c.modbus_url, baudrate=self.c.modbus_baudrate))
        try:
            reading = await asyncio.wait_for(amp.read(), self.timeout)
        except (HardwareError, TimeoutError, OSError) as exc:
            return Check("modbus", FAIL, self._t("modbus.fail", error=_err(exc)))
        finally:
            await amp.close()
        return Check("modbus", OK, self._t(
            "modbus.ok", relay=self._t("on" if reading.relay_on else "off"), mains=reading.mains_v,
            amps=reading.amp_current_a, temp=reading.cabinet_temp_c))  # fmt: skip

    def check_disk(self) -> Check:
        path = self.c.data_dir if self.c.data_dir.exists() else Path(os.getcwd())
        free = shutil.disk_usage(path).free
        if free < self.min_free_bytes:
            return Check("disk", FAIL, self._t("disk.low", free=_size(free), path=path,
                                               need=_size(self.min_free_bytes)))
        return Check("disk", OK, self._t("disk.ok", free=_size(free), path=path))


def report(checks: list[Check], lang: str, uid: str) -> str:
    marks = MARKS_EN if lang == "en" else MARKS
    lines = [tr("title", lang, uid=uid)]
    width = max(len(m) for m in marks.values())
    for c in checks:
        lines.append(f"{marks[c.status]:<{width}} {tr(c.key, lang)}: {c.detail}")
    failed = sum(c.status == FAIL for c in checks)
    lines.append(tr("summary.fail", lang, n=failed) if failed else tr("summary.ok", lang))
    return "\n".join(lines)


def passed(checks: list[Check]) -> bool:
    return not any(c.status == FAIL for c in checks)
