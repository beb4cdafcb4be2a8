"""The Vietnamese text normalizer: numbers, dates, times, units and abbreviations are
read the way an announcer reads them. Phrases come from real storm, flood, cold-wave,
vaccination and fire-prevention bulletins of commune loudspeaker systems."""

from __future__ import annotations

import pytest

from controller.services.tts.normalize_vi import normalize, read_int, read_number


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "không"),
        (5, "năm"),
        (10, "mười"),
        (11, "mười một"),  # not "mốt" after mười
        (14, "mười bốn"),  # not "tư" after mười
        (15, "mười lăm"),
        (20, "hai mươi"),
        (21, "hai mươi mốt"),
        (24, "hai mươi tư"),
        (25, "hai mươi lăm"),
        (55, "năm mươi lăm"),
        (101, "một trăm linh một"),  # northern "linh", not "lẻ"
        (104, "một trăm linh bốn"),
        (105, "một trăm linh năm"),  # "năm" after linh, not "lăm"
        (110, "một trăm mười"),
        (115, "một trăm mười lăm"),
        (1000, "một nghìn"),  # northern "nghìn", not "ngàn"
        (1005, "một nghìn không trăm linh năm"),
        (1050, "một nghìn không trăm năm mươi"),
        (2025, "hai nghìn không trăm hai mươi lăm"),
        (21000, "hai mươi mốt nghìn"),
        (1_500_000, "một triệu năm trăm nghìn"),
        (2_005_000, "hai triệu không trăm linh năm nghìn"),
        (1_000_000_005, "một tỷ không trăm linh năm"),
        (3_200_000_000, "ba tỷ hai trăm triệu"),
    ],
)
def test_numbers_follow_vietnamese_reading_rules(n: int, words: str) -> None:
    assert read_int(n) == words


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("1.500.000", "một triệu năm trăm nghìn"),  # "." groups thousands
        ("2,5", "hai phẩy năm"),  # "," is the decimal comma
        ("16,25", "mười sáu phẩy hai mươi lăm"),
        ("0,05", "không phẩy không năm"),
        ("-3", "âm ba"),
    ],
)
def test_written_numbers_use_vietnamese_separators(written: str, spoken: str) -> None:
    assert read_number(written) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # dates
        ("05/12/2025", "ngày năm tháng mười hai năm hai nghìn không trăm hai mươi lăm"),
        ("ngày 05/12/2025", "ngày năm tháng mười hai năm hai nghìn không trăm hai mươi lăm"),
        ("ngày 15-3-2024", "ngày mười lăm tháng ba năm hai nghìn không trăm hai mươi tư"),
        ("tháng 4/2025", "tháng tư năm hai nghìn không trăm hai mươi lăm"),
        ("từ ngày 05-07/12", "từ ngày năm đến bảy tháng mười hai"),
        # times
        ("17h30", "mười bảy giờ ba mươi phút"),
        ("lúc 05:30", "lúc năm giờ ba mươi phút"),
        ("17h00", "mười bảy giờ"),
        ("7g30'", "bảy giờ ba mươi phút"),
        # units
        ("50 mm", "năm mươi mi li mét"),
        ("50mm", "năm mươi mi li mét"),
        ("30 km/h", "ba mươi ki lô mét trên giờ"),
        ("85%", "tám mươi lăm phần trăm"),
        ("-2°C", "âm hai độ xê"),
        ("25oC", "hai mươi lăm độ xê"),
        ("10.000m2", "mười nghìn mét vuông"),
        ("3.500 m3/s", "ba nghìn năm trăm mét khối trên giây"),
        ("50mm/24h", "năm mươi mi li mét trên hai mươi tư giờ"),
        ("1.500.000đ", "một triệu năm trăm nghìn đồng"),
        # ranges
        ("150-300 mm", "một trăm năm mươi đến ba trăm mi li mét"),
        ("cấp 10-11", "cấp mười đến mười một"),
        # abbreviations
        ("UBND", "ủy ban nhân dân"),
        ("HĐND", "hội đồng nhân dân"),
        ("PCCC", "phòng cháy chữa cháy"),
        ("TP. Vĩnh Yên", "thành phố Vĩnh Yên"),
        ("TP.Vĩnh Yên", "thành phố Vĩnh Yên"),
        ("Ban Chỉ huy PCTT&TKCN", "Ban Chỉ huy phòng chống thiên tai và tìm kiếm cứu nạn"),
        ("BHYT", "bảo hiểm y tế"),
        # ordinals, Roman numerals, hotlines, phone numbers, headlines
        ("thứ 4", "thứ tư"),
        ("lần thứ 1", "lần thứ nhất"),
        ("quý IV", "quý tư"),
        ("khóa XV", "khóa mười lăm"),
        ("gọi 114", "gọi một một bốn"),
        ("0211.3862.114", "không hai một một, ba tám sáu hai, một một bốn"),
        ("THÔNG BÁO KHẨN", "thông báo khẩn"),
        ("AQI", "a quy i"),
        ("Thông tư 39/2020/TT-BTTTT",
         "Thông tư ba mươi chín năm hai nghìn không trăm hai mươi thông tư bộ thông tin và truyền thông"),
    ],
)
def test_pieces_are_spoken_as_words(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


BULLETINS = [
    (  # storm bulletin (Trung tâm Dự báo KTTV quốc gia style)
        "Hồi 16 giờ ngày 05/12/2025, vị trí tâm bão ở vào khoảng 16,5 độ Vĩ Bắc; 112,3 độ Kinh Đông. "
        "Sức gió mạnh nhất vùng gần tâm bão mạnh cấp 12 (118-133 km/h), giật cấp 15.",
        "Hồi mười sáu giờ ngày năm tháng mười hai năm hai nghìn không trăm hai mươi lăm, vị trí tâm bão ở "
        "vào khoảng mười sáu phẩy năm độ Vĩ Bắc; một trăm mười hai phẩy ba độ Kinh Đông. Sức gió mạnh nhất "
        "vùng gần tâm bão mạnh cấp mười hai, một trăm mười tám đến một trăm ba mươi ba ki lô mét trên giờ, "
        "giật cấp mười lăm.",
    ),
    (  # flood / heavy rain warning
        "Từ đêm 05/12 đến ngày 07/12, khu vực Trung Bộ có mưa to đến rất to với tổng lượng mưa phổ biến "
        "150-300 mm, có nơi trên 500 mm. Mực nước sông Hồng tại Hà Nội lúc 17h00 là 9,5 m.",
        "Từ đêm năm tháng mười hai đến ngày bảy tháng mười hai, khu vực Trung Bộ có mưa to đến rất to với "
        "tổng lượng mưa phổ biến một trăm năm mươi đến ba trăm mi li mét, có nơi trên năm trăm mi li mét. "
        "Mực nước sông Hồng tại Hà Nội lúc mười bảy giờ là chín phẩy năm mét.",
    ),
    (  # vaccination notice from the commune
        "UBND xã Hợp Hòa thông báo: lịch tiêm vắc xin phòng sởi cho trẻ từ 9 tháng đến 5 tuổi vào lúc "
        "7h30 sáng thứ 7, ngày 06/12/2025 tại Trạm Y tế xã. Trẻ đi tiêm cần mang theo thẻ BHYT.",
        "ủy ban nhân dân xã Hợp Hòa thông báo: lịch tiêm vắc xin phòng sởi cho trẻ từ chín tháng đến năm "
        "tuổi vào lúc bảy giờ ba mươi phút sáng thứ bảy, ngày sáu tháng mười hai năm hai nghìn không trăm "
        "hai mươi lăm tại Trạm Y tế xã. Trẻ đi tiêm cần mang theo thẻ bảo hiểm y tế.",
    ),
    (  # cold wave
        "Nhiệt độ thấp nhất 8-10°C, vùng núi cao có nơi dưới -3°C; độ ẩm 85%.",
        "Nhiệt độ thấp nhất tám đến mười độ xê, vùng núi cao có nơi dưới âm ba độ xê; độ ẩm tám mươi lăm "
        "phần trăm.",
    ),
    (  # fire prevention
        "Khi phát hiện cháy, gọi ngay 114 hoặc Đội PCCC huyện theo số 0211.3862.114.",
        "Khi phát hiện cháy, gọi ngay một một bốn hoặc Đội phòng cháy chữa cháy huyện theo số không hai một "
        "một, ba tám sáu hai, một một bốn.",
    ),
    (  # flood support payment
        "Hỗ trợ 1.500.000 đồng/hộ cho 1.205 hộ bị ngập, tổng kinh phí 2,5 tỷ đồng.",
        "Hỗ trợ một triệu năm trăm nghìn đồng trên hộ cho một nghìn hai trăm linh năm hộ bị ngập, tổng kinh "
        "phí hai phẩy năm tỷ đồng.",
    ),
]


@pytest.mark.parametrize(("text", "spoken"), BULLETINS)
def test_real_bulletin_phrases(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


def test_output_has_no_digits_or_symbols_left_for_the_engine() -> None:
    out = normalize(" ".join(t for t, _ in BULLETINS) + " (COVID-19) 24/24h 70-80% v.v.")
    assert not any(ch.isdigit() for ch in out), out
    assert not set("%/&()°") & set(out), out
    assert "  " not in out


def test_plain_text_and_diacritics_pass_through_unchanged() -> None:
    text = "Đề nghị bà con nhân dân chủ động chằng chống nhà cửa, không ra đồng."
    assert normalize(text) == text
