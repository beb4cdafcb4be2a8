"""Operator messages for CAP 1.2 alert input (docs/cap.md)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "cap.thread_outside_area": (
        "Bản tin CAP này cập nhật hoặc hủy một cảnh báo đang phát ở {names}, ngoài địa bàn của bạn: "
        "không có gì bị dừng hay thay đổi.",
        "This CAP message updates or cancels an alert airing in {names}, outside your area: "
        "nothing was stopped or changed.",
    ),
    "cap.content_type": (
        "Kiểu nội dung \u201c{content_type}\u201d không được chấp nhận: gửi bản tin CAP dạng XML với "
        "Content-Type application/cap+xml hoặc application/xml.",
        "Content type \u201c{content_type}\u201d is not accepted: send the CAP alert as XML with "
        "Content-Type application/cap+xml or application/xml.",
    ),
    "cap.empty": ("Nội dung gửi lên rỗng: cần một bản tin CAP 1.2 (XML).",
                  "The body is empty: a CAP 1.2 alert (XML) is expected."),
    "cap.too_large": (
        "Bản tin CAP quá lớn: tối đa {limit} byte.",
        "The CAP alert is too large: at most {limit} bytes.",
    ),
    "cap.malformed": (
        "Nội dung không phải XML hợp lệ (dòng {line}, cột {column}): {problem}",
        "The body is not well-formed XML (line {line}, column {column}): {problem}",
    ),
    "cap.unsafe_xml": (
        "Bản tin bị từ chối: XML chứa khai báo DOCTYPE/thực thể ({what}). Bản tin CAP không được "
        "dùng DTD hay thực thể ngoài.",
        "The alert is refused: the XML contains a DOCTYPE/entity declaration ({what}). A CAP "
        "alert must not use a DTD or external entities.",
    ),
    "cap.not_cap12": (
        "Phần tử gốc là \u201c{root}\u201d, không phải <alert> của CAP 1.2 "
        "(không gian tên urn:oasis:names:tc:emergency:cap:1.2).",
        "The root element is \u201c{root}\u201d, not a CAP 1.2 <alert> "
        "(namespace urn:oasis:names:tc:emergency:cap:1.2).",
    ),
    "cap.schema": (
        "Bản tin không đúng lược đồ CAP 1.2 (dòng {line}): {problem}",
        "The alert does not follow the CAP 1.2 schema (line {line}): {problem}",
    ),
    "cap.bad_polygon": (
        "Đa giác trong vùng \u201c{area}\u201d không hợp lệ: cần ít nhất 4 cặp \u201cvĩ độ,kinh độ\u201d "
        "(WGS84), điểm đầu trùng điểm cuối. Nhận được: \u201c{value}\u201d.",
        "The polygon of area \u201c{area}\u201d is invalid: at least 4 \u201clat,lon\u201d pairs (WGS84) "
        "are needed, the first equal to the last. Got: \u201c{value}\u201d.",
    ),
    "cap.bad_circle": (
        "Hình tròn trong vùng \u201c{area}\u201d không hợp lệ: cần \u201cvĩ độ,kinh độ bán_kính_km\u201d. "
        "Nhận được: \u201c{value}\u201d.",
        "The circle of area \u201c{area}\u201d is invalid: \u201clat,lon radius_km\u201d is needed. "
        "Got: \u201c{value}\u201d.",
    ),
    "cap.bad_references": (
        "Trường <references> không hợp lệ: mỗi mục phải là \u201cngười_gửi,mã_định_danh,thời_điểm_gửi\u201d. "
        "Nhận được: \u201c{value}\u201d.",
        "<references> is invalid: each entry must be \u201csender,identifier,sent\u201d. "
        "Got: \u201c{value}\u201d.",
    ),
    "cap.needs_references": (
        "Bản tin loại {msg_type} phải có <references> chỉ ra bản tin trước đó.",
        "A {msg_type} message must name the earlier alert(s) in <references>.",
    ),
    "cap.identifier_reused": (
        "Mã định danh \u201c{identifier}\u201d của \u201c{sender}\u201d đã được dùng cho bản tin gửi lúc "
        "{sent}; bản tin mới (gửi lúc {new_sent}) không được nhận.",
        "Identifier \u201c{identifier}\u201d from \u201c{sender}\u201d was already used by the alert sent "
        "at {sent}; the new one (sent at {new_sent}) is not accepted.",
    ),
    "cap.not_found": ("Không tìm thấy bản tin CAP {id}.", "CAP alert {id} was not found."),
}
