"""Vietnamese text normalizer: what a bulletin says, written out the way it is read aloud.

A speech engine reads "17h30", "05/12/2025", "150-300 mm" or "UBND" letter by letter or
not at all; an announcer reads "mười bảy giờ ba mươi phút", "ngày năm tháng mười hai năm
hai nghìn không trăm hai mươi lăm", "một trăm năm mươi đến ba trăm mi li mét", "ủy ban
nhân dân". This module does that rewriting, before any engine sees the text.

Number reading follows the standard rules: "mốt" for a final 1 after a tens word from
twenty up (21 = hai mươi mốt; 11 = mười một), "tư" for a final 4 after "mươi" (24 = hai
mươi tư; 14 = mười bốn), "lăm" for a final 5 after "mười"/"mươi" (15, 25), "linh" for an
empty tens place (105 = một trăm linh năm), "không trăm" inside a number (2025 = hai
nghìn không trăm hai mươi lăm). Where the regions differ we choose the northern,
official-register words: **"nghìn"** (not "ngàn") and **"linh"** (not "lẻ").

Separators are Vietnamese: "." groups thousands (1.500.000) and "," is the decimal
comma (2,5 = hai phẩy năm).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]


# --------------------------------------------------------------------------- numbers


def _tens_units(t: int, u: int, *, after_hundreds: bool) -> list[str]:
    if t == 0:
        if u == 0:
            return []
        return ["linh", DIGITS[u]] if after_hundreds else [DIGITS[u]]
    words = ["mười"] if t == 1 else [DIGITS[t], "mươi"]
    if u == 0:
        return words
    if u == 5:
        return [*words, "lăm"]
    if u == 1 and t >= 2:
        return [*words, "mốt"]
    if u == 4 and t >= 2:
        return [*words, "tư"]
    return [*words, DIGITS[u]]


def _triple(n: int, *, full: bool) -> list[str]:
    """0 < n < 1000. ``full``: a group after a bigger one says its hundreds even when 0."""
    h, rest = divmod(n, 100)
    t, u = divmod(rest, 10)
    words: list[str] = []
    if h or full:
        words += [DIGITS[h], "trăm"]
    return words + _tens_units(t, u, after_hundreds=bool(words))


def _below_billion(n: int, *, leading: bool) -> list[str]:
    words: list[str] = []
    for value, name in (((n // 1_000_000) % 1000, "triệu"), ((n // 1000) % 1000, "nghìn"), (n % 1000, "")):
        if value == 0:
            continue
        words += _triple(value, full=not (leading and not words))
        if name:
            words.append(name)
    return words


def _int_words(n: int, *, leading: bool = True) -> list[str]:
    if n >= 1_000_000_000:
        high, low = divmod(n, 1_000_000_000)
        words = [*_int_words(high, leading=leading), "tỷ"]
        if low:
            words += _below_billion(low, leading=False)
        return words
    return _below_billion(n, leading=leading)


def read_int(n: int) -> str:
    """An integer in words: 21 -> "hai mươi mốt", 1005 -> "một nghìn không trăm linh năm"."""
    if n < 0:
        return "âm " + read_int(-n)
    if n == 0:
        return "không"
    return " ".join(_int_words(n))


def read_digits(digits: str) -> str:
    """Digit by digit, as phone numbers and hotlines are read: "114" -> "một một bốn"."""
    return " ".join(DIGITS[int(d)] for d in digits if d.isdigit())


def read_fraction(digits: str) -> str:
    """The part after the decimal comma: "5" -> năm, "25" -> hai mươi lăm, "05" -> không năm."""
    if len(digits) <= 2 and not digits.startswith("0"):
        return read_int(int(digits))
    return read_digits(digits)


def read_number(text: str) -> str:
    """A written number with Vietnamese separators: "1.500.000", "2,5", "3.5", "-2"."""
    negative = text.startswith(("-", "−"))
    body = text.lstrip("-−")
    integer, fraction = body, ""
    if "," in body:
        integer, _, fraction = body.partition(",")
        integer = integer.replace(".", "")
        fraction = fraction.replace(",", "")
    elif "." in body:
        head, *groups = body.split(".")
        if all(len(g) == 3 for g in groups) and len(head) <= 3:
            integer = head + "".join(groups)  # thousands separators
        else:
            integer, _, fraction = body.partition(".")
            fraction = fraction.replace(".", "")
    spoken = read_digits(integer) if len(integer) > 15 else read_int(int(integer or "0"))
    if fraction:
        spoken += " phẩy " + read_fraction(fraction)
    return ("âm " + spoken) if negative else spoken


# ----------------------------------------------------------------- words and symbols

# Abbreviations of Vietnamese public administration, disaster prevention, health and
# education, as they appear in bulletins. Case-sensitive; longest first when applied.
ABBREVIATIONS: dict[str, str] = {
    "PCTT&TKCN": "phòng chống thiên tai và tìm kiếm cứu nạn",
    "PCTT-TKCN": "phòng chống thiên tai và tìm kiếm cứu nạn",
    "NN&PTNT": "nông nghiệp và phát triển nông thôn",
    "UBMTTQ": "ủy ban mặt trận tổ quốc",
    "MTTQVN": "mặt trận tổ quốc Việt Nam",
    "MTTQ": "mặt trận tổ quốc",
    "UBND": "ủy ban nhân dân",
    "HĐND": "hội đồng nhân dân",
    "PCCC": "phòng cháy chữa cháy",
    "PCTT": "phòng chống thiên tai",
    "TKCN": "tìm kiếm cứu nạn",
    "CHQS": "chỉ huy quân sự",
    "BCH": "ban chỉ huy",
    "BCĐ": "ban chỉ đạo",
    "BQL": "ban quản lý",
    "KTTV": "khí tượng thủy văn",
    "ATNĐ": "áp thấp nhiệt đới",
    "BĐKH": "biến đổi khí hậu",
    "BHYT": "bảo hiểm y tế",
    "BHXH": "bảo hiểm xã hội",
    "TTYT": "trung tâm y tế",
    "TYT": "trạm y tế",
    "CDC": "trung tâm kiểm soát bệnh tật",
    "THCS": "trung học cơ sở",
    "THPT": "trung học phổ thông",
    "CSGT": "cảnh sát giao thông",
    "ATGT": "an toàn giao thông",
    "ATTP": "an toàn thực phẩm",
    "GTVT": "giao thông vận tải",
    "KT-XH": "kinh tế xã hội",
    "KTXH": "kinh tế xã hội",
    "HTX": "hợp tác xã",
    "CNTT": "công nghệ thông tin",
    "CĐS": "chuyển đổi số",
    "BTTTT": "bộ thông tin và truyền thông",
    "TT-BTTTT": "thông tư bộ thông tin và truyền thông",
    "NĐ-CP": "nghị định chính phủ",
    "QĐ-UBND": "quyết định ủy ban nhân dân",
    "QĐ-TTg": "quyết định thủ tướng chính phủ",
    "CT-TTg": "chỉ thị thủ tướng chính phủ",
    "QĐ": "quyết định",
    "NĐ": "nghị định",
    "TTg": "thủ tướng",
    "TW": "trung ương",
    "CCCD": "căn cước công dân",
    "CMND": "chứng minh nhân dân",
    "SĐT": "số điện thoại",
    "ĐBSCL": "đồng bằng sông Cửu Long",
    "TP.HCM": "thành phố Hồ Chí Minh",
    "TPHCM": "thành phố Hồ Chí Minh",
    "HCM": "Hồ Chí Minh",
    "QL": "quốc lộ",
    "VN": "Việt Nam",
    "COVID-19": "cô vít mười chín",
    "Covid-19": "cô vít mười chín",
    "v.v.": "vân vân",
    "TP.": "thành phố",
    "Tp.": "thành phố",
    "TP": "thành phố",
}

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}

# Letter names for spelling an unknown all-capitals abbreviation (e.g. "ATM").
LETTERS = {
    "A": "a", "Ă": "á", "Â": "ớ", "B": "bê", "C": "xê", "D": "dê", "Đ": "đê", "E": "e", "Ê": "ê",
    "F": "ép", "G": "giê", "H": "hát", "I": "i", "J": "gi", "K": "ca", "L": "lờ", "M": "mờ",
    "N": "nờ", "O": "o", "Ô": "ô", "Ơ": "ơ", "P": "pê", "Q": "quy", "R": "rờ", "S": "ét",
    "T": "tê", "U": "u", "Ư": "ư", "V": "vê", "W": "vê kép", "X": "ích", "Y": "i dài", "Z": "dét",
}  # fmt: skip

# (pattern after a number, spoken). Longest first; matched case-sensitively.
UNITS: list[tuple[str, str]] = [
    ("km/h", "ki lô mét trên giờ"),
    ("km/giờ", "ki lô mét trên giờ"),
    ("m³/s", "mét khối trên giây"),
    ("m3/s", "mét khối trên giây"),
    ("m/s", "mét trên giây"),
    ("mm/h", "mi li mét trên giờ"),
    ("kWh", "ki lô oát giờ"),
    ("hPa", "héc tô pát xcan"),
    ("km²", "ki lô mét vuông"),
    ("km2", "ki lô mét vuông"),
    ("m²", "mét vuông"),
    ("m2", "mét vuông"),
    ("m³", "mét khối"),
    ("m3", "mét khối"),
    ("°C", "độ xê"),
    ("ºC", "độ xê"),
    ("oC", "độ xê"),
    ("độ C", "độ xê"),
    ("VNĐ", "đồng"),
    ("VND", "đồng"),
    ("USD", "đô la Mỹ"),
    ("mm", "mi li mét"),
    ("cm", "xen ti mét"),
    ("km", "ki lô mét"),
    ("kg", "ki lô gam"),
    ("mg", "mi li gam"),
    ("ml", "mi li lít"),
    ("ha", "héc ta"),
    ("kW", "ki lô oát"),
    ("MW", "mê ga oát"),
    ("kV", "ki lô vôn"),
    ("%", "phần trăm"),
    ("°", "độ"),
    ("m", "mét"),
    ("g", "gam"),
    ("h", "giờ"),
    ("đ", "đồng"),
    ("V", "vôn"),
    ("W", "oát"),
    ("l", "lít"),
]

_UNUM = r"\d+(?:[.,]\d+)*"
_NUM = r"[-−]?" + _UNUM
_UNIT_ALT = "|".join(re.escape(u) for u, _ in UNITS)
_UNIT_WORDS = dict(UNITS)
_VOWELS = "aăâeêioôơuưyáắấéếíóốớúứýàằầèềìòồờùừỳảẳẩẻểỉỏổởủửỷãẵẫẽễĩõỗỡũữỹạặậẹệịọộợụựỵ"
_SYLLABLE = re.compile(
    rf"^(ngh|ng|nh|ch|gh|gi|kh|ph|th|tr|qu|[bcdđghklmnprstvx])?[{_VOWELS}]+(ch|ng|nh|[cmnpt])?$"
)

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _valid_date(d: int, m: int, y: int | None = None) -> bool:
    return 1 <= d <= 31 and 1 <= m <= 12 and (y is None or 1900 <= y <= 2200)


def _month(m: int) -> str:
    return "tư" if m == 4 else read_int(m)


def _date(m: re.Match[str]) -> str:
    before, d, mo, y = m.group("pre") or "", int(m.group("d")), int(m.group("m")), m.group("y")
    if not _valid_date(d, mo, int(y) if y else None):
        return m.group(0)
    lead = "" if before.strip() else "ngày "
    spoken = f"{before}{lead}{read_int(d)} tháng {_month(mo)}"
    if y:
        spoken += f" năm {read_int(int(y))}"
    return spoken


def _date_range(m: re.Match[str]) -> str:
    d1, d2, mo, y = int(m.group("d1")), int(m.group("d2")), int(m.group("m")), m.group("y")
    if not (_valid_date(d1, mo) and _valid_date(d2, mo)):
        return m.group(0)
    spoken = f"{m.group('pre')}{read_int(d1)} đến {read_int(d2)} tháng {_month(mo)}"
    if y:
        spoken += f" năm {read_int(int(y))}"
    return spoken


def _month_year(m: re.Match[str]) -> str:
    mo, y = int(m.group("m")), int(m.group("y"))
    if not (1 <= mo <= 12 and 1900 <= y <= 2200):
        return m.group(0)
    lead = "" if (m.group("pre") or "").strip() else "tháng "
    return f"{m.group('pre') or ''}{lead}{_month(mo)} năm {read_int(y)}"


def _clock(h: int, mi: int | None) -> str | None:
    if not (0 <= h <= 24 and (mi is None or 0 <= mi <= 59)):
        return None
    spoken = f"{read_int(h)} giờ"
    if mi:
        spoken += f" {read_int(mi)} phút"
    return spoken


def _time_colon(m: re.Match[str]) -> str:
    return _clock(int(m.group("h")), int(m.group("mi"))) or m.group(0)


def _time_h(m: re.Match[str]) -> str:
    mi = m.group("mi")
    return _clock(int(m.group("h")), int(mi) if mi else None) or m.group(0)


def _doc_number(m: re.Match[str]) -> str:
    """Legal documents: "39/2020/TT-BTTTT" is read "ba mươi chín năm 2020 thông tư ..."."""
    kind = m.group("kind")
    spoken_kind = ABBREVIATIONS.get(kind) or " ".join(ABBREVIATIONS.get(p, p) for p in kind.split("-"))
    year = f" năm {read_int(int(m.group('y')))}" if m.group("y") else ""
    return f"{read_int(int(m.group('n')))}{year} {spoken_kind}"


def _phone(m: re.Match[str]) -> str:
    groups = re.findall(r"\d+", m.group(0))
    if m.group(0).startswith("+84"):
        groups[0] = "0" + groups[0][2:] if groups[0].startswith("84") else groups[0]
    return ", ".join(read_digits(g) for g in groups if g)


def _hotline(m: re.Match[str]) -> str:
    return f"{m.group('pre')}{read_digits(m.group('n'))}"


def _ordinal(m: re.Match[str]) -> str:
    n = int(m.group("n"))
    word = {1: "nhất", 4: "tư"}.get(n, read_int(n))
    return f"{m.group('pre')} {word}"


def _roman(m: re.Match[str]) -> str:
    value, prev = 0, 0
    for ch in reversed(m.group("r")):
        v = _ROMAN[ch]
        value = value - v if v < prev else value + v
        prev = max(prev, v)
    word = "tư" if value == 4 and m.group("pre").lower().startswith("quý") else read_int(value)
    return f"{m.group('pre')} {word}"


def _range_with_unit(m: re.Match[str]) -> str:
    unit = m.group("u")
    spoken_unit = f" {_unit_words(unit)}" if unit else ""
    return f"{read_number(m.group('a'))} đến {read_number(m.group('b'))}{spoken_unit}"


def _unit_words(unit: str) -> str:
    if "/" in unit and unit not in _UNIT_WORDS:
        first, _, second = unit.partition("/")
        return f"{_UNIT_WORDS.get(first, first)} trên {_per(second)}"
    return _UNIT_WORDS[unit]


def _per(text: str) -> str:
    m = re.fullmatch(r"(\d+)\s*(h|giờ)", text)
    if m:
        return f"{read_int(int(m.group(1)))} giờ"
    return _UNIT_WORDS.get(text, text)


def _number_unit(m: re.Match[str]) -> str:
    return f"{read_number(m.group('a'))} {_unit_words(m.group('u'))}"


def _abbreviation(m: re.Match[str]) -> str:
    return ABBREVIATIONS[m.group(0)]


def _caps(m: re.Match[str]) -> str:
    word = m.group(0)
    lower = word.lower()
    if _SYLLABLE.match(lower):
        return lower  # a Vietnamese word in capitals (headlines): read it, don't spell it
    if len(word) >= 4 and any(ch in _VOWELS for ch in lower):
        return lower  # a name in capitals (storm "YAGI"): let the engine read it as a word
    return " ".join(LETTERS.get(ch, ch.lower()) for ch in word)


_B = r"(?<![\w.,])"  # start of a token
_E = r"(?![\w])"  # end of a word

_ABBR_RE = re.compile(
    r"(?<![\w])(?:" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")"
    r"(?![\w&])"
)
_DOC_KINDS = r"[A-ZĐ][A-Za-zĐđ]*(?:-[A-ZĐ][A-Za-zĐđ]*)+"

RULES: list[Rule] = [
    # Legal document numbers first, before their slashes look like dates.
    (re.compile(rf"{_B}(?P<n>\d{{1,5}})/(?:(?P<y>\d{{4}})/)?(?P<kind>{_DOC_KINDS}){_E}"), _doc_number),
    # Phone numbers (leading 0 or +84, 9-11 digits, optional separators): digit by digit.
    (re.compile(r"(?<![\w.,])(?:\+84|0)\d{2,3}(?:[ .-]?\d{3,4}){2}(?![\w.,]?\d)"), _phone),
    # Hotlines after their cue word: "gọi 114" -> "gọi một một bốn".
    (
        re.compile(
            r"(?P<pre>(?:gọi(?: ngay)?|số|tổng đài|đường dây nóng|hotline)\s+)(?P<n>1\d{2})(?!\d)",
            re.IGNORECASE,
        ),
        _hotline,
    ),
    # Dates: "05-07/12/2025", "05/12/2025", "05-12-2025", "05.12.2025", "5/12", "12/2025".
    (
        re.compile(r"(?P<pre>(?:ngày|từ ngày|đêm)\s+)?(?P<d1>\d{1,2})\s*[-–]\s*(?P<d2>\d{1,2})/(?P<m>\d{1,2})"
                   r"(?:/(?P<y>\d{4}))?(?![\d/])", re.IGNORECASE),
        lambda m: _date_range(m) if m.group("pre") else m.group(0),
    ),
    (
        re.compile(r"(?P<pre>\bngày\s+)?(?<![\d/.,])(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?P=sep)"
                   r"(?P<y>\d{4})(?![\d/])", re.IGNORECASE),
        _date,
    ),
    (
        re.compile(r"(?P<pre>\btháng\s+)?(?<![\d/.,])(?P<m>\d{1,2})/(?P<y>\d{4})(?![\d/])", re.IGNORECASE),
        _month_year,
    ),
    (
        re.compile(r"(?P<pre>\b(?:ngày|đêm|sáng|chiều|tối|trưa)\s+)?(?<![\d/.,])(?P<d>\d{1,2})/(?P<m>\d{1,2})"
                   r"(?P<y>)(?![\d/])", re.IGNORECASE),
        _date,
    ),
    # Times: "05:30", "17h30", "17h30'", "7g30", "17h" (a bare "24h" is 24 hours, same words).
    (re.compile(r"(?<![\d:])(?P<h>\d{1,2}):(?P<mi>\d{2})(?::\d{2})?(?![\d:])"), _time_colon),
    (re.compile(r"(?<![\w.,/])(?P<h>\d{1,2})\s?[hg](?P<mi>\d{2})?'?(?!\w)"), _time_h),
    # Ordinals and Roman numerals after their cue words.
    (re.compile(r"(?P<pre>\b(?:[Tt]hứ|lần thứ|kỳ thứ|đợt thứ))\s+(?P<n>\d{1,3})(?!\d|[.,]\d)"), _ordinal),
    (
        re.compile(
            r"(?P<pre>\b(?:[Qq]uý|[Kk]hóa|[Kk]hoá|[Tt]hế kỷ|[Nn]hiệm kỳ|[Đđ]ại hội))\s+(?P<r>[IVXLC]+)\b"
        ),
        _roman,
    ),
    # Ranges with an optional unit: "150-300 mm", "8-10°C", "cấp 10-11", "70-80%".
    (
        re.compile(rf"(?P<a>{_UNUM})\s*[-–]\s*(?P<b>\d+(?:[.,]\d+)*)\s*(?P<u>(?:{_UNIT_ALT})(?:/\d*\s?\w+)?)?"
                   r"(?![\w/])"),
        _range_with_unit,
    ),
    # A number with its unit: "50 mm", "30km/h", "-2°C", "1.500.000đ", "85%".
    (re.compile(rf"(?P<a>{_NUM})\s*(?P<u>(?:{_UNIT_ALT})(?:/(?:\d+\s?h|giờ|ngày))?)(?![\w/])"), _number_unit),
]

_LATE_RULES: list[Rule] = [
    (_ABBR_RE, _abbreviation),
    (re.compile(_NUM), lambda m: read_number(m.group(0))),
    (re.compile(r"\b[A-ZĐĂÂÊÔƠƯ][A-ZĐĂÂÊÔƠƯÁÀẢÃẠẮẰẲẴẶẤẦẨẪẬÉÈẺẼẸẾỀỂỄỆÍÌỈĨỊÓÒỎÕỌỐỒỔỖỘỚỜỞỠỢÚÙỦŨỤỨỪỬỮỰÝỲỶỸỴ]+\b"),
     _caps),
]

_SYMBOLS = [
    (re.compile(r"\s*&\s*"), " và "),
    (re.compile(r"\s*\+\s*"), " cộng "),
    (re.compile(r"(?<=\w)/(?=\w)"), " trên "),
    (re.compile(r"[\"“”‘’«»*_#|~^`<>\[\]{}]"), " "),
    (re.compile(r"[()]"), ", "),
    (re.compile(r"\s+[-–—]\s+"), ", "),
    (re.compile(r"(?<=\w)-(?=\w)"), " "),
    (re.compile(r"\s*\n\s*\n\s*"), ". "),
    (re.compile(r"\s*\n\s*"), ", "),
    (re.compile(r"\s*([,;:.!?])(?:\s*[,;:])+"), r"\1"),
    (re.compile(r"[ \t]+"), " "),
    (re.compile(r"\s+([,;:.!?])"), r"\1"),
]


def normalize(text: str) -> str:
    """Rewrite a bulletin so that every number, date, time, unit and abbreviation is words."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u00a0", " ").replace("\u2009", " ").replace("\r\n", "\n").replace("\r", "\n")
    for pattern, replace in RULES:
        text = pattern.sub(replace, text)
    # Abbreviations sitting next to words ("TP.Vĩnh Yên") get a space first.
    text = re.sub(r"\b(TP|Tp)\.(?=[A-ZĐ])", r"\1. ", text)
    for pattern, replace in _LATE_RULES:
        text = pattern.sub(replace, text)
    for pattern, replacement in _SYMBOLS:
        text = pattern.sub(replacement, text)
    return text.strip(" ,;")
