"""Connector to the province's 'Hệ thống thông tin nguồn' (CV 1273/BTTTT-TTCS): docs/provincial.md."""
