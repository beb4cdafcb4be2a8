"""Operator messages of the audio pipeline and text-to-speech (docs/audio.md)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "audio.warn.silent": (
        "Tệp gần như im lặng: không nghe thấy gì khi phát. Hãy kiểm tra micrô hoặc chọn tệp khác.",
        "The file is (almost) silent: nothing will be heard. Check the microphone or pick another file.",
    ),
    "audio.warn.clipped": (
        "Âm thanh bị méo do thu quá to ({percent}% mẫu chạm đỉnh). Đã chỉnh âm lượng, nhưng tiếng "
        "rè vẫn còn; nên thu lại với mức micrô thấp hơn.",
        "The recording is clipped (distorted: {percent}% of samples at full scale). The level has "
        "been adjusted but the distortion remains; re-record with a lower microphone level.",
    ),
    "audio.warn.too_quiet": (
        "Bản ghi quá nhỏ ({lufs} LUFS): đã tăng {gain} dB nên tiếng ồn nền cũng to lên. Nên thu "
        "lại gần micrô hơn.",
        "The recording is far too quiet ({lufs} LUFS): it was raised by {gain} dB, so background "
        "noise was raised too. Re-record closer to the microphone.",
    ),
    "media.too_long": (
        "Âm thanh quá dài: {length} phút, tối đa {limit} phút. Hãy cắt ngắn hoặc chia thành nhiều bản tin.",
        "The audio is too long: {length} minutes, at most {limit} minutes. Shorten it or split it "
        "into several bulletins.",
    ),
    "media.too_long_decoded": (
        "Âm thanh giải mã ra dài hơn {limit} phút, dù tệp ghi độ dài ngắn hơn; đã dừng xử lý. Hãy "
        "xuất lại tệp hoặc cắt ngắn.",
        "The audio decodes to more than {limit} minutes although the file claims to be shorter; "
        "processing was stopped. Export the file again or shorten it.",
    ),
    "media.timeout": (
        "Xử lý tệp âm thanh quá lâu (quá {seconds} giây) nên đã dừng; không có gì được lưu. Hãy "
        "thử tệp ngắn hơn.",
        "Processing the audio took too long (over {seconds} s) and was stopped; nothing was "
        "stored. Try a shorter file.",
    ),
    "media.busy": (
        "Máy chủ đang xử lý {slots} tệp âm thanh khác. Hãy thử lại sau ít phút (tin khẩn cấp "
        "không bị ảnh hưởng).",
        "The server is already processing {slots} other audio files. Try again in a few minutes "
        "(emergency alerts are not affected).",
    ),
    "media.emergency_forbidden": (
        "Tài khoản của bạn không có quyền phát tin khẩn cấp nên không thể tải lên tệp khẩn cấp.",
        "Your account may not send emergency broadcasts, so it cannot upload emergency audio.",
    ),
    "tts.text_empty": (
        "Hãy nhập nội dung cần đọc.",
        "Please type the text to be read.",
    ),
    "tts.text_too_long": (
        "Nội dung quá dài: tối đa {limit} ký tự (hiện có {length}). Hãy chia thành nhiều bản tin.",
        "The text is too long: at most {limit} characters (it has {length}). Split it into several "
        "bulletins.",
    ),
    "tts.bad_voice": (
        "Giọng đọc không hợp lệ: chọn vi-north (miền Bắc), vi-central (miền Trung) hoặc vi-south "
        "(miền Nam).",
        "Unknown voice: choose vi-north, vi-central or vi-south.",
    ),
    "tts.bad_rate": (
        "Tốc độ đọc phải từ 0,5 đến 2,0 (1,0 là bình thường).",
        "The speaking rate must be between 0.5 and 2.0 (1.0 is normal).",
    ),
    "tts.failed": (
        "Không tạo được giọng đọc cho nội dung này. Hãy thử lại hoặc báo kỹ thuật viên.",
        "Speech could not be made from this text. Try again or tell a technician.",
    ),
    "tts.timeout": (
        "Tạo giọng đọc quá lâu (quá {seconds} giây) nên đã dừng. Hãy rút ngắn nội dung.",
        "Making the speech took too long (over {seconds} s) and was stopped. Shorten the text.",
    ),
    "tts.nothing_to_say": (
        "Nội dung không có chữ nào đọc được.",
        "The text has nothing that can be read aloud.",
    ),
    "asset.chime-intro": ("Nhạc hiệu mở đầu bản tin", "Bulletin intro chime"),
    "asset.chime-outro": ("Nhạc hiệu kết thúc bản tin", "Bulletin outro chime"),
    "asset.alert-intro": ("Tín hiệu mở đầu tin khẩn cấp", "Emergency alert intro"),
    "asset.test-tone": ("Âm thử 1 kHz (kiểm tra loa)", "1 kHz test tone (speaker check)"),
    "asset.test-sweep": (
        "Âm quét 300 Hz–7 kHz (kiểm tra dải tần loa)",
        "300 Hz–7 kHz sweep (speaker band check)",
    ),
}
