#!/usr/bin/env python3
"""Writes expected.json: the file names Python's email package reads from
each header form below, the expected values of TestFileNamesPython.

They come from an independent parser, not from ours: for each form,
get_filename() and the Content-Type name parameter under
email.policy.default, and the same under email.policy.compat32 (whose
encoded words are decoded with email.header.decode_header, as a mail
client shows them). Our ParseHeader must report every one of these names.

Regenerate after changing the forms (python3 3.11 or later):

    cd mimepart/testdata/names && python3 expected.py > expected.json
"""

import base64
import email
import email.policy
import json
import sys
from email.header import decode_header, make_header
from email.utils import collapse_rfc2231_value


def bword(charset, text):
    return "=?%s?B?%s?=" % (charset, base64.b64encode(text.encode(charset)).decode())


def qword(charset, text):
    return "=?%s?Q?%s?=" % (charset, "".join("=%02X" % c if c > 127 or c in b"=?_ " else chr(c) for c in text.encode(charset)))


def pct(charset, text):
    # RFC 2231 attribute-chars stay; tspecials, "*", "'", "%" and 8-bit are escaped.
    return "".join(chr(c) if chr(c).isalnum() and c < 128 or c in b".-_" else "%%%02X" % c for c in text.encode(charset))


OCTET = "application/octet-stream"
VIRUS = "\u0432\u0438\u0440\u0443\u0441.exe"  # "virus.exe" in Russian

# (id, Content-Type, Content-Disposition or None)
FORMS = [
    ("rfc2231-windows-1252", OCTET, "attachment; filename*=windows-1252''setup.exe"),
    ("junk-token-after", OCTET, 'attachment; filename="setup.exe"; x'),
    ("junk-value-after", OCTET, 'attachment; filename="setup.exe"; size=1 2'),
    ("rfc2047-windows-1251-b", OCTET, 'attachment; filename="%s"' % bword("windows-1251", VIRUS)),
    ("rfc2047-koi8-r-q", OCTET, 'attachment; filename="%s"' % qword("koi8-r", VIRUS)),
    ("rfc2231-iso-8859-1", OCTET, "attachment; filename*=iso-8859-1''" + pct("iso-8859-1", "r\u00e9sum\u00e9.exe")),
    ("rfc2231-continuations", OCTET, 'attachment; filename*0="set"; filename*1="up.exe"'),
    ("rfc2231-continuations-encoded", OCTET, "attachment; filename*0*=utf-8''%D1%84; filename*1=\".exe\""),
    ("rfc2231-koi8-r", OCTET, "attachment; filename*=koi8-r''" + pct("koi8-r", VIRUS)),
    ("duplicate-filename", OCTET, 'attachment; filename="a.txt"; filename="setup.exe"'),
    ("unquoted", OCTET, "attachment; filename=setup.exe"),
    ("unterminated-quote", OCTET, 'attachment; filename="setup.exe'),
    ("case-and-spaces", OCTET, 'attachment; FILENAME = "setup.exe"'),
    ("rfc2047-two-words", OCTET, 'attachment; filename="=?utf-8?Q?set?= =?utf-8?Q?up.exe?="'),
    ("rfc2047-unquoted", OCTET, "attachment; filename==?utf-8?B?c2V0dXAuZXhl?="),
    ("rfc2047-unknown-charset", OCTET, 'attachment; filename="=?x-unknown?Q?setup.exe?="'),
    ("rfc2231-language", OCTET, "attachment; filename*=us-ascii'en'setup.exe"),
    ("rfc2231-unknown-charset", OCTET, "attachment; filename*=x-unknown''setup.exe"),
    ("trailing-semicolon", OCTET, 'attachment; filename="setup.exe";'),
    ("windows-path", OCTET, 'attachment; filename="C:\\\\temp\\\\setup.exe"'),
    ("semicolon-in-quotes", OCTET, 'attachment; filename="a;b.exe"'),
    ("inline", OCTET, "inline; filename=setup.exe"),
    ("raw-utf8", OCTET, 'attachment; filename="%s"' % VIRUS),
    ("rfc2047-gb2312", OCTET, 'attachment; filename="%s"' % bword("gb2312", "\u6587\u4ef6.exe")),
    ("rfc2047-iso-2022-jp", OCTET, 'attachment; filename="%s"' % bword("iso-2022-jp", "\u30d5\u30a1\u30a4\u30eb.exe")),
    ("rfc2231-shift_jis", OCTET, "attachment; filename*=shift_jis''" + pct("shift_jis", "\u30d5\u30a1\u30a4\u30eb.exe")),
    ("name-only", OCTET + '; name="setup.exe"', None),
    ("name-only-rfc2047-windows-1251", OCTET + '; name="%s"' % bword("windows-1251", VIRUS), None),
    ("name-only-rfc2231-koi8-r", OCTET + "; name*=koi8-r''" + pct("koi8-r", VIRUS), None),
    ("name-only-junk-after", OCTET + '; name="setup.exe"; x', None),
    ("name-and-filename-differ", OCTET + '; name="setup.exe"', 'attachment; filename="readme.txt"'),
    ("both-rfc2231-and-plain", OCTET, "attachment; filename*=utf-8''" + pct("utf-8", "\u0444.exe") + '; filename="f.exe"'),
]


def decoded(s):
    """A compat32 value as a client shows it: its encoded words decoded."""
    if s is None:
        return None
    s = collapse_rfc2231_value(s)
    # compat32 keeps 8-bit header bytes as surrogates: read them as UTF-8.
    if any("\udc80" <= ch <= "\udcff" for ch in s):
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(s)))
    except Exception:  # an unknown charset: the raw form
        return s


def names(raw):
    out = []

    def add(n):
        # compat32 reads raw 8-bit header bytes as U+FFFD: that is no
        # name a client shows (the default policy reads them as UTF-8).
        if n and n not in out and "\ufffd" not in n:
            out.append(n)

    d = email.message_from_bytes(raw, policy=email.policy.default)
    add(d.get_filename())
    add(d["content-type"].params.get("name"))
    c = email.message_from_bytes(raw, policy=email.policy.compat32)
    add(decoded(c.get_filename()))
    add(decoded(c.get_param("name")))
    return out


def main():
    cases = []
    for ident, ctype, disp in FORMS:
        head = "Content-Type: %s\r\n" % ctype
        if disp is not None:
            head += "Content-Disposition: %s\r\n" % disp
        raw = (head + "\r\nx\r\n").encode("utf-8")
        cases.append({"id": ident, "content_type": ctype, "disposition": disp, "python": names(raw)})
    json.dump({"generator": "mimepart/testdata/names/expected.py", "python": sys.version.split()[0], "cases": cases},
              sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
