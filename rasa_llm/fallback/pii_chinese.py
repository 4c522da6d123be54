r"""What the personal-data masker needs to read Chinese messages.

Chinese has no spaces, and Python's ``\w`` counts a Han character as a word
character, so a number written against Chinese text ("手机13812345678") has no word
boundary: the masker's patterns use :data:`WORD_NOT_HAN` where they meant "a letter
or digit of the same number or word". Besides that: mainland mobile numbers (11
digits from 13 to 19) are phone numbers without any formatting, Chinese words before
a number make it a phone ("电话", "手机"), a name after "我叫" or "我的名字是" is a name
(the spaCy model is English), and a code or password after "验证码" or "密码是" is a
secret.
"""

from __future__ import annotations

import re
from typing import List, Tuple

__all__ = [
    "PHONE_CUE_ZH",
    "WORD_NOT_HAN",
    "find_chinese_names",
    "find_chinese_secrets",
    "is_chinese_mobile",
]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word character that is not a Han character, for look-arounds of one character.
WORD_NOT_HAN = rf"(?![{_HAN}])\w"

_MOBILE = re.compile(r"1[3-9]\d{9}")
# Words before a digit run (within the clause) that make it a phone number.
PHONE_CUE_ZH = re.compile(r"(?:电话|手机|号码|联系方式|微信|致电|打给)[^。！？；\n]{0,10}$")

# "我叫王小明", "我的名字是李伟", "姓名：张敏": two or three Han characters (most Chinese
# names; a longer run is more likely the name and the next word).
_NAME_INTRO = re.compile(
    rf"(?:我叫|我的名字是|我的名字叫|本人姓名|姓名\s*[:：]|名字\s*[:：])\s*"
    rf"(?P<value>[{_HAN}]{{2,3}})"
)
# Not names after "我叫": "我叫了客服", "我叫你们".
_NOT_NAME_START = frozenset("了过你您他她它们人客快车")

# "验证码是482913", "动态码：4829", "PIN码 1234".
_NUMERIC_SECRET = re.compile(
    r"(?:验证码|校验码|动态码|短信码|安全码|取件码|PIN码|pin码)\s*(?:是|为|[:：])?\s*"
    r"(?P<value>\d{3,8})(?!\d)"
)
# "密码是hunter2", "支付密码：x9!k".
_WORD_SECRET = re.compile(r"(?:密码|口令)\s*(?:是|为|[:：])\s*(?P<value>[^\s，。、；！？,.;!?]+)")
# After "密码是", these describe the password instead of being it.
_DESCRIPTIVE = ("错", "对", "不对", "多少", "什么", "忘", "被", "不是", "正确", "过期")


def is_chinese_mobile(digits: str) -> bool:
    """Whether an unformatted digit run is a mainland mobile number."""
    return _MOBILE.fullmatch(digits) is not None


def find_chinese_names(text: str) -> List[Tuple[int, int]]:
    """Spans of names a customer gives after "我叫", "我的名字是", "姓名："."""
    return [
        m.span("value")
        for m in _NAME_INTRO.finditer(text)
        if m.group("value")[0] not in _NOT_NAME_START
    ]


def find_chinese_secrets(text: str) -> List[Tuple[int, int]]:
    """Spans of codes and passwords after their Chinese keyword."""
    spans = [m.span("value") for m in _NUMERIC_SECRET.finditer(text)]
    for match in _WORD_SECRET.finditer(text):
        if not match.group("value").startswith(_DESCRIPTIVE + ("[",)):
            spans.append(match.span("value"))
    return spans
