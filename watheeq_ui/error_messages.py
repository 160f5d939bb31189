"""Domain error messages in the chosen language.

(Sign-in failures are not here: the login form maps them to its own labels.)

Services raise their reasons in English (the API returns them as they are); the
dashboard shows them next to a field or in a toast, so it translates them here, keyed
by the English text. A message built from values (an extension number, a limit) is
keyed by its template, with the values carried over into the translation. A message
without a translation is shown in English rather than not at all.
"""

from __future__ import annotations

import re

from services.errors import DomainError

# English message or template -> Arabic; {name} marks a value taken from the message.
ARABIC: dict[str, str] = {
    # extensions form
    "choose a user": "اختر مستخدمًا",
    "an extension is 2 to 10 digits": "رقم التحويلة من 2 إلى 10 أرقام",
    "the extension is at most 16 characters": "رقم التحويلة 16 حرفًا على الأكثر",
    "the display name is at most 100 characters": "الاسم الظاهر 100 حرف على الأكثر",
    "the SIP password is {min} to {max} characters": "كلمة مرور SIP من {min} إلى {max} حرفًا",
    "a SIP password is required for a new extension": "كلمة مرور SIP مطلوبة للتحويلة الجديدة",
    "extension {number} is already assigned": "التحويلة {number} مسندة لمستخدم آخر بالفعل",
    "no user with this email in the firm": "لا يوجد مستخدم بهذا البريد في المكتب",
    # bulk assignment file (the column names stay as written in the file)
    "choose a CSV file": "اختر ملف CSV",
    "the file is larger than 1 MB": "حجم الملف أكبر من 1 ميغابايت",
    "the file is not UTF-8 text": "الملف ليس نصًا بترميز UTF-8",
    "the first line must name the columns: {columns}": "يجب أن يذكر السطر الأول أسماء الأعمدة: {columns}",
    "user not found": "المستخدم غير موجود",
    "extension not found": "التحويلة غير موجودة",
    "only an owner or an admin may manage users": "إدارة المستخدمين للمالك أو المسؤول فقط",
    "your role may not {action}": "دورك لا يسمح بهذا الإجراء",
    "you do not belong to this firm": "أنت لا تنتمي إلى هذا المكتب",
    # user accounts
    "only an owner may make someone an owner": "جعل أحد مالكًا للمالك فقط",
    "only an owner may change an owner's account": "تغيير حساب المالك للمالك فقط",
    "you cannot change your own role": "لا يمكنك تغيير دورك بنفسك",
    "you cannot disable your own account": "لا يمكنك تعطيل حسابك بنفسك",
    "the firm's last active owner cannot be demoted": "لا يمكن تخفيض دور آخر مالك نشط للمكتب",
    "the firm's last active owner cannot be disabled": "لا يمكن تعطيل آخر مالك نشط للمكتب",
    "a user with this email already exists": "يوجد مستخدم بهذا البريد بالفعل",
    "a name is at most 200 characters": "الاسم 200 حرف على الأكثر",
    "role must be one of OWNER, ADMIN, MANAGER, AGENT": "الدور أحد: مالك، مسؤول، مدير، موظف",
    "a password needs at least {n} characters": "كلمة المرور {n} أحرف على الأقل",
    "a password is at most {n} characters": "كلمة المرور {n} حرف على الأكثر",
    "the current password is not right": "كلمة المرور الحالية غير صحيحة",
    "choose a password different from the current one": "اختر كلمة مرور مختلفة عن الحالية",
    "change your own password from your account, with your current password": (
        "غيّر كلمة مرورك من صفحة حسابك بإدخال كلمة المرور الحالية"
    ),
    "too many failed sign-ins; wait before trying again": "محاولات فاشلة كثيرة؛ انتظر قبل المحاولة مجددًا",
    "this link is not valid: it has expired, was already used or was replaced": (
        "هذا الرابط غير صالح: انتهت مدته أو استُخدم أو استُبدل"
    ),
    # recordings
    "between {min} and {max} days": "بين {min} و{max} يومًا",
    "set the PBX settings first: recordings come from the PBX": "اضبط إعدادات المقسم أولًا: التسجيلات تأتي من المقسم",
    "search with at most 100 characters": "ابحث بـ 100 حرف على الأكثر",
    # PBX settings
    "the call-record source is none, lab or ucm": "مصدر سجلات المكالمات: لا شيء أو المختبر أو UCM",
    "the PBX lab is a source only for a PBX on this machine": "مختبر المقسم مصدر فقط لمقسم على هذا الجهاز",
    "the UCM API URL is at most 512 characters": "عنوان واجهة UCM ‏512 حرفًا على الأكثر",
    "the UCM API URL is https://host:port, e.g. https://192.168.1.10:8089": (
        "عنوان واجهة UCM بالشكل https://host:port، مثل https://192.168.1.10:8089"
    ),
    "the API user is 1 to 64 letters, digits or . _ @ -": "مستخدم الواجهة من 1 إلى 64 حرفًا أو رقمًا أو . _ @ -",
    "the API password is at most {n} characters": "كلمة مرور الواجهة {n} حرفًا على الأكثر",
    "the real-time output port is between 1024 and 65535": "منفذ الإخراج الفوري بين 1024 و 65535",
    "the UCM API URL is required for UCM call records": "عنوان واجهة UCM مطلوب لسجلات UCM",
    "the API user is required for UCM call records": "مستخدم الواجهة مطلوب لسجلات UCM",
    "the API password is required for UCM call records": "كلمة مرور الواجهة مطلوبة لسجلات UCM",
    "the PBX settings have not been set yet": "لم تُضبط إعدادات المقسم بعد",
    "the PBX host is required": "عنوان المقسم مطلوب",
    "give the host name or IP address only, without scheme or path": "أدخل اسم المضيف أو عنوان IP فقط، دون بروتوكول أو مسار",
    "not a valid host name or IP address": "ليس اسم مضيف أو عنوان IP صالحًا",
    "the port is between 1 and 65535": "المنفذ رقم بين 1 و65535",
    "the port is a number between 1 and 65535": "المنفذ رقم بين 1 و65535",
    "the WebSocket path starts with '/' and has no spaces": "مسار WebSocket يبدأ بـ '/' ولا يحتوي على مسافات",
    "a list of ICE servers is expected": "المتوقع قائمة بخوادم ICE",
    "each ICE server is an object with 'urls'": "كل خادم ICE كائن فيه 'urls'",
    "unknown ICE server field": "حقل غير معروف في خادم ICE",
    "pass the TURN credential separately; it is stored encrypted": "أدخل كلمة مرور TURN في حقلها الخاص؛ فهي تُحفظ مشفّرة",
    "one URL or a list of URLs is required": "مطلوب عنوان URL واحد أو قائمة عناوين",
    "each URL starts with stun:, turn: or turns:": "يبدأ كل عنوان بـ stun: أو turn: أو turns:",
    "the username is text of at most 256 characters": "اسم المستخدم نص من 256 حرفًا على الأكثر",
    "the TURN credential is at most 256 characters": "كلمة مرور TURN من 256 حرفًا على الأكثر",
    "the PBX is not configured for this firm yet": "لم تُضبط إعدادات المقسم لهذا المكتب بعد",
    # clients, phone numbers and email addresses
    "a client name is required": "اسم العميل مطلوب",
    "a client name is at most 200 characters": "اسم العميل 200 حرف على الأكثر",
    "a phone number is required": "رقم الهاتف مطلوب",
    "a phone number is at most 64 characters": "رقم الهاتف 64 حرفًا على الأكثر",
    "a phone number may contain only digits, spaces, dashes, brackets and a leading +": (
        "رقم الهاتف لا يحوي إلا أرقامًا ومسافات وشرطات وأقواسًا و+ في أوله"
    ),
    "'{number}' is not a valid phone number for region {region}": "'{number}' ليس رقم هاتف صالحًا في المنطقة {region}",
    "an email address is required": "البريد الإلكتروني مطلوب",
    "not a valid email address": "ليس بريدًا إلكترونيًا صالحًا",
    "client not found": "العميل غير موجود",
    "a case title is required": "عنوان القضية مطلوب",
    "a case title is at most 200 characters": "عنوان القضية 200 حرف على الأكثر",
    "a reference is at most 64 characters": "المرجع 64 حرفًا على الأكثر",
    # call notes and case link
    "write a note first": "اكتب ملاحظة أولًا",
    "choose a case": "اختر قضية",
    "the note is empty": "الملاحظة فارغة",
    "give a note or a case to link": "أدخل ملاحظة أو اختر قضية لربطها",
    "a note is at most {n} characters": "الملاحظة {n} حرف على الأكثر",
    "no such case in this firm": "لا توجد هذه القضية في المكتب",
    "the case belongs to another client than the call": "القضية تخص عميلًا غير عميل المكالمة",
    "case not found": "القضية غير موجودة",
    "call not found": "المكالمة غير موجودة",
    # call history filters
    "search by the digits of a number": "ابحث بأرقام الرقم",
    "a date such as 2025-01-31": "تاريخ مثل 2025-01-31",
    "the end date is on or after the start date": "تاريخ النهاية في يوم البداية أو بعده",
    "the start is before the end": "البداية قبل النهاية",
    # hardening: believable call times and figures, deleting calls
    "a date from 2000-01-01 to 2099-12-31": "تاريخ من 2000-01-01 إلى 2099-12-31",
    "a time on or after 2000-01-01 is required": "الوقت مطلوب في 2000-01-01 أو بعده",
    "a time in the future is not accepted (more than a day ahead of now)": "لا يُقبل وقت في المستقبل (أكثر من يوم بعد الآن)",
    "a date between 2000-01-01 and 2100-01-01 is required": "التاريخ مطلوب بين 2000-01-01 و2100-01-01",
    "an unanswered call has no answer time": "المكالمة التي لم يُرد عليها ليس لها وقت رد",
    "the answer time is set with the status ANSWERED": "يُضبط وقت الرد مع الحالة «تم الرد»",
    "the end time is set with the call's final status": "يُضبط وقت الانتهاء مع الحالة النهائية للمكالمة",
    "a call cannot end before it started or was answered": "لا يمكن أن تنتهي المكالمة قبل بدئها أو الرد عليها",
    "an unanswered call has no talk time": "المكالمة التي لم يُرد عليها ليس لها مدة محادثة",
    "talk time is known once the call has ended": "تُعرف مدة المحادثة بعد انتهاء المكالمة",
    "talk time is at most the time from answer to end ({n} s)": "مدة المحادثة لا تتجاوز المدة من الرد إلى الانتهاء ({n} ث)",
    "ring time is at most the time from start to answer or end ({n} s)": "مدة الرنين لا تتجاوز المدة من البدء إلى الرد أو الانتهاء ({n} ث)",
    # WhatsApp send
    "a message is required": "نص الرسالة مطلوب",
    "a message is at most {n} characters": "الرسالة {n} حرف على الأكثر",
    "give either a phone number or a client, not both": "أدخل رقم هاتف أو اختر عميلًا، لا الاثنين معًا",
    "this client has no valid phone number": "ليس لهذا العميل رقم هاتف صالح",
    "the WhatsApp line is not connected": "خط واتساب غير متصل",
    "only a message that may not have been sent can be sent again or marked as sent": (
        "لا يُعاد إرسال رسالة أو تُعلَّم كمُرسلة إلا إذا كان إرسالها غير مؤكد"
    ),
    "message not found": "الرسالة غير موجودة",
    "the message still cannot be stored; it stays among the dead letters": "ما زال تعذّر حفظ الرسالة؛ تبقى ضمن الرسائل المتعذّر حفظها",
    "dead letter not found": "الرسالة المتعذّر حفظها غير موجودة",
    "only a file that could not be downloaded can be downloaded again": "لا يُعاد تنزيل ملف إلا إذا تعذّر تنزيله",
    "the file is not stored": "الملف غير محفوظ",
    "the file is empty": "الملف فارغ",
    "the file is larger than the {n} MB limit": "الملف أكبر من الحد المسموح ({n} ميغابايت)",
    "the firm's storage for WhatsApp files is full": "امتلأت مساحة تخزين ملفات واتساب للمكتب",
    # a case's files
    "case file not found": "ملف القضية غير موجود",
    "this message has no stored file to save": "لا يوجد ملف محفوظ في هذه الرسالة لحفظه",
    "the case is not one of the message's client's cases": "هذه القضية ليست من قضايا عميل الرسالة",
    "this document is not on one of the client's cases": "هذا المستند ليس في إحدى قضايا العميل",
    "the file is kept on a case": "الملف محفوظ في قضية",
}

_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(_PLACEHOLDER.sub(lambda m: f"(?P<{m[1]}>.+?)", re.escape(template)))


_TEMPLATES = [(_pattern(en), ar) for en, ar in ARABIC.items() if "{" in en]


def error_text(lang: str, error: DomainError | str) -> str:
    """The reason of ``error`` (a domain error or its English message) in ``lang``; English when untranslated."""
    message = error.message if isinstance(error, DomainError) else error
    if lang != "ar":
        return message
    exact = ARABIC.get(message)
    if exact is not None:
        return exact
    for pattern, arabic in _TEMPLATES:
        match = pattern.fullmatch(message)
        if match:
            return arabic.format(**match.groupdict())
    return message
