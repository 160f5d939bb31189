"""What went wrong with a firm's WhatsApp line, in one vocabulary.

Every failure the sidecar records (a dial error, a phone-side unlink, a ban, an expired QR,
a message that could not be sent) goes through :func:`classify` here and is stored as a code
beside the raw detail. People see the code's sentence, which says what to do; the raw detail
(Go error text, resolver addresses) is kept for an owner or admin who asks for it and is never
part of a status or a message that the REST API returns.
"""

from __future__ import annotations

import enum
import re


class Failure(str, enum.Enum):
    """The classes of failure; each has a sentence in :data:`SENTENCES`."""

    NO_ROUTE = "no_route"
    PROXY_UNREACHABLE = "proxy_unreachable"
    LOGGED_OUT = "logged_out"
    TEMP_BANNED = "temp_banned"
    STREAM_REPLACED = "stream_replaced"
    QR_TIMEOUT = "qr_timeout"
    CLIENT_OUTDATED = "client_outdated"
    CONNECTION_LOST = "connection_lost"
    PAIRING_FAILED = "pairing_failed"
    NOT_CONNECTED = "not_connected"
    SEND_FAILED = "send_failed"
    SEND_UNCERTAIN = "send_uncertain"
    SERVICE_DOWN = "service_down"
    FIRST_CONTACT_CAP = "first_contact_cap"
    UNKNOWN = "unknown"


# (English, Arabic): what happened and what to do about it.
SENTENCES: dict[Failure, tuple[str, str]] = {
    Failure.NO_ROUTE: (
        "This server can't reach WhatsApp: check its internet connection or the proxy setting. It keeps retrying by itself.",
        "لا يستطيع هذا الخادم الوصول إلى واتساب: تحقّق من اتصاله بالإنترنت أو من إعداد الوكيل (البروكسي). يعيد المحاولة تلقائيًا.",
    ),
    Failure.PROXY_UNREACHABLE: (
        "This server can't reach its proxy: check that the proxy is running and that the proxy address in the server's settings is right.",
        "لا يستطيع هذا الخادم الوصول إلى الوكيل (البروكسي): تأكّد أن الوكيل يعمل وأن عنوانه في إعدادات الخادم صحيح.",
    ),
    Failure.LOGGED_OUT: (
        "WhatsApp logged this device out (it was removed from the phone's linked devices): link again.",
        "سجّل واتساب خروج هذا الجهاز (أُزيل من الأجهزة المرتبطة في الهاتف): اربط الخط من جديد.",
    ),
    Failure.TEMP_BANNED: (
        "WhatsApp has temporarily banned this number: nothing can be sent until the ban ends, and the line reconnects by itself after it. Send fewer messages to people who have not saved the number.",
        "حظر واتساب هذا الرقم مؤقتًا: لا يمكن الإرسال حتى ينتهي الحظر، وسيعود الخط للاتصال تلقائيًا بعده. قلّل الرسائل إلى من لم يحفظوا الرقم.",
    ),
    Failure.FIRST_CONTACT_CAP: (
        "Not sent: today's cap on first messages to numbers that never wrote to the firm is reached (it protects the number from a ban). Send it again tomorrow, or ask an admin to raise the cap.",
        "لم تُرسل: بلغ المكتب الحد اليومي للرسائل الأولى إلى أرقام لم تراسله من قبل (يحمي الرقم من الحظر). أعد إرسالها غدًا أو اطلب من المسؤول رفع الحد.",
    ),
    Failure.STREAM_REPLACED: (
        "This line was opened from another server at the same time: make sure only one Watheeq server runs this firm's line.",
        "فُتح هذا الخط من خادم آخر في الوقت نفسه: تأكّد أن خادم وثيق واحدًا فقط يشغّل خط هذا المكتب.",
    ),
    Failure.QR_TIMEOUT: (
        "The QR code was not scanned in time: press Link WhatsApp to get a new one.",
        "لم يُمسح رمز QR في الوقت المحدد: اضغط «ربط واتساب» للحصول على رمز جديد.",
    ),
    Failure.CLIENT_OUTDATED: (
        "WhatsApp no longer accepts this version of the connection software: the server needs an update.",
        "لم يعد واتساب يقبل هذا الإصدار من برنامج الاتصال: يحتاج الخادم إلى تحديث.",
    ),
    Failure.CONNECTION_LOST: (
        "The connection to WhatsApp went silent: reconnecting now.",
        "انقطع الاتصال بواتساب دون إشعار: تجري إعادة الاتصال الآن.",
    ),
    Failure.PAIRING_FAILED: (
        "Linking did not complete on the phone: press Link WhatsApp and scan the new code.",
        "لم يكتمل الربط على الهاتف: اضغط «ربط واتساب» وامسح الرمز الجديد.",
    ),
    Failure.NOT_CONNECTED: (
        "The line was not connected when this message was due: it is sent once the line is back.",
        "لم يكن الخط متصلًا عند موعد هذه الرسالة: ستُرسل فور عودة الخط.",
    ),
    Failure.SEND_FAILED: (
        "WhatsApp did not accept this message: check the number, then send it again.",
        "لم يقبل واتساب هذه الرسالة: تحقّق من الرقم ثم أعد إرسالها.",
    ),
    Failure.SEND_UNCERTAIN: (
        "This message may not have been sent: the sender stopped while handing it to WhatsApp. Check the chat on the phone, then send it again or mark it as sent.",
        "ربما لم تُرسل هذه الرسالة: توقّف المُرسِل أثناء تسليمها إلى واتساب. راجع المحادثة في الهاتف، ثم أعد إرسالها أو علّمها كمرسلة.",
    ),
    Failure.SERVICE_DOWN: (
        "The WhatsApp service is not running on the server: messages are queued and sent once it runs again. Start the WhatsApp sidecar (or ask whoever runs the server).",
        "خدمة واتساب لا تعمل على الخادم: الرسائل في قائمة الانتظار وستُرسل فور عودتها. شغّل خدمة واتساب المرافقة (أو اطلب ذلك ممن يدير الخادم).",
    ),
    Failure.UNKNOWN: (
        "The WhatsApp line stopped for a reason that could not be identified: it keeps retrying by itself; an owner or admin can open the details.",
        "توقّف خط واتساب لسبب تعذّر تحديده: يعيد المحاولة تلقائيًا، ويمكن للمالك أو المسؤول الاطلاع على التفاصيل.",
    ),
}

# Go's net errors seen through whatsmeow's websocket dial (checked against neonize 0.5.2 here).
_PROXY_DIAL = re.compile(r"(proxyconnect tcp|socks connect tcp \S+): dial tcp")
_DNS = re.compile(r"\blookup \S+( on \S+)?: ")
_NETWORK = (
    "network is unreachable",
    "no route to host",
    "connection refused",
    "connection reset",
    "i/o timeout",
    "tls handshake timeout",
    "failed to dial whatsapp web websocket",
    "websocket dial",
)


def classify(detail: str | None, hint: Failure | str | None = None, *, default: Failure = Failure.UNKNOWN) -> Failure:
    """The class of a failure: ``hint`` when the gateway knew it (a structured event), else read
    from the raw ``detail``. Anything unrecognised is ``default`` (UNKNOWN for the line,
    SEND_FAILED for a message), never guessed."""
    if hint:
        try:
            return Failure(hint)
        except ValueError:
            pass
    text = (detail or "").lower()
    if not text:
        return default
    if _PROXY_DIAL.search(text):
        return Failure.PROXY_UNREACHABLE
    if _DNS.search(text) or any(marker in text for marker in _NETWORK):
        return Failure.NO_ROUTE
    if "stream replaced" in text:
        return Failure.STREAM_REPLACED
    if "temporarily banned" in text or "temp ban" in text:
        return Failure.TEMP_BANNED
    if "logged out" in text or "unlinked" in text or "main device gone" in text:
        return Failure.LOGGED_OUT
    if "outdated" in text:
        return Failure.CLIENT_OUTDATED
    if "qr expired" in text:
        return Failure.QR_TIMEOUT
    if "went silent" in text:
        return Failure.CONNECTION_LOST
    if "pairing failed" in text:
        return Failure.PAIRING_FAILED
    if "not connected" in text:
        return Failure.NOT_CONNECTED
    return default


SERVICE_DOWN_SINCE = (
    "WhatsApp service not running since {since}; messages are queued and sent once it runs again.",
    "خدمة واتساب متوقفة منذ {since}؛ الرسائل في قائمة الانتظار وستُرسل فور عودتها.",
)


def service_down_sentence(since: str | None, lang: str = "en") -> str:
    """The service-down sentence with the time it stopped (already formatted), when known."""
    if not since:
        return sentence(Failure.SERVICE_DOWN, lang) or ""
    return SERVICE_DOWN_SINCE[1 if lang == "ar" else 0].format(since=since)


def sentence(code: Failure | str | None, lang: str = "en") -> str | None:
    """What to tell a person about ``code``, in English or Arabic (``lang`` = "ar")."""
    if not code:
        return None
    try:
        texts = SENTENCES[Failure(code)]
    except ValueError:
        texts = SENTENCES[Failure.UNKNOWN]
    return texts[1] if lang == "ar" else texts[0]
