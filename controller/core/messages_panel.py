"""Operator messages for the panel's feature pages and the API's area-scope checks."""

MESSAGES: dict[str, tuple[str, str]] = {
    "scope.forbidden": (
        "Bạn chỉ được thao tác trong địa bàn của mình: {names} nằm ngoài địa bàn được giao.",
        "You may act only within your own area: {names} is outside it.",
    ),
    "scope.all_forbidden": (
        "Tài khoản của bạn gắn với một địa bàn, không thể chọn \u201ctất cả các trạm\u201d của hệ thống. "
        "Hãy chọn các xã trong địa bàn của mình.",
        "Your account belongs to one area and cannot target \u201call stations\u201d of the system. "
        "Choose communes within your area.",
    ),
}
