"""HTTP reason phrases by status code, as Python 3.11's `http.HTTPStatus` has them.

A table rather than `http.HTTPStatus` itself: that enum (62 members, each with a description)
is ~0.1 MiB of every engine's memory after start (issue 22), where the phrases are what the
proxy's status lines and the control API's need. tests/control/test_reasons.py checks the table
against `HTTPStatus`.
"""

from __future__ import annotations

REASONS: dict[int, str] = {
    100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints', 200: 'OK',
    201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
    205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status', 208: 'Already Reported',
    226: 'IM Used', 300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found',
    303: 'See Other', 304: 'Not Modified', 305: 'Use Proxy', 307: 'Temporary Redirect',
    308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required',
    403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable',
    407: 'Proxy Authentication Required', 408: 'Request Timeout', 409: 'Conflict', 410: 'Gone',
    411: 'Length Required', 412: 'Precondition Failed', 413: 'Request Entity Too Large',
    414: 'Request-URI Too Long', 415: 'Unsupported Media Type',
    416: 'Requested Range Not Satisfiable', 417: 'Expectation Failed', 418: "I'm a Teapot",
    421: 'Misdirected Request', 422: 'Unprocessable Entity', 423: 'Locked',
    424: 'Failed Dependency', 425: 'Too Early', 426: 'Upgrade Required',
    428: 'Precondition Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
    451: 'Unavailable For Legal Reasons', 500: 'Internal Server Error', 501: 'Not Implemented',
    502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
    505: 'HTTP Version Not Supported', 506: 'Variant Also Negotiates', 507: 'Insufficient Storage',
    508: 'Loop Detected', 510: 'Not Extended', 511: 'Network Authentication Required',
}


def reason(status: int) -> str:
    """The status's reason phrase; "Unknown" for a code without one."""
    return REASONS.get(status, "Unknown")
