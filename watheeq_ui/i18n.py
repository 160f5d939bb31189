"""Every label of the dashboard in English and Arabic.

Components call :func:`t` and get a compile-time ternary on the chosen language, so
switching language sends one short string over the websocket, not a dictionary.
Event handlers that need a label in Python (toasts, chart titles) call :func:`tr`.
"""

from __future__ import annotations

import reflex as rx

from services.whatsapp.failures import SENTENCES, SERVICE_DOWN_SINCE
from services.whatsapp.guardrails import BAN_REASONS

from watheeq_ui.state.lang import LangState

LABELS: dict[str, tuple[str, str]] = {
    # key: (English, Arabic)
    "app_name": ("Watheeq", "وثيق"),
    "app_tagline": ("Calls and WhatsApp for your firm", "المكالمات وواتساب لمكتبك"),
    "sign_in": ("Sign in", "تسجيل الدخول"),
    "sign_in_title": ("Sign in to your firm", "الدخول إلى مكتبك"),
    "signing_in": ("Signing in…", "جارٍ الدخول…"),
    "email": ("Email", "البريد الإلكتروني"),
    "password": ("Password", "كلمة المرور"),
    "logout": ("Log out", "تسجيل الخروج"),
    "too_many_attempts": ("Too many attempts, wait {n} s", "محاولات كثيرة، انتظر {n} ث"),
    "wrong_login": ("Wrong email or password", "البريد الإلكتروني أو كلمة المرور غير صحيحة"),
    "account_disabled": ("This account is disabled", "هذا الحساب معطّل"),
    "session_expired": ("Your session has ended; sign in again", "انتهت جلستك؛ سجّل الدخول مجددًا"),
    "idle_logged_out": (
        "You were signed out after 30 minutes without activity",
        "تم تسجيل خروجك بعد ٣٠ دقيقة دون نشاط",
    ),
    "not_allowed": ("Not allowed", "غير مسموح"),
    "not_allowed_body": (
        "Your role may not open this page. Ask your firm's owner or admin if you need it.",
        "دورك لا يسمح بفتح هذه الصفحة. اطلب ذلك من مالك المكتب أو المسؤول إن احتجت إليها.",
    ),
    "back_home": ("Back to the dashboard", "العودة إلى لوحة المتابعة"),
    "loading": ("Loading…", "جارٍ التحميل…"),
    # the toasts' region, as screen readers announce it (ui polish)
    "notifications": ("Notifications", "الإشعارات"),
    # navigation
    "nav_dashboard": ("Dashboard", "لوحة المتابعة"),
    "nav_calls": ("Call history", "سجل المكالمات"),
    "nav_clients": ("Clients", "العملاء"),
    "nav_extensions": ("Extensions", "التحويلات"),
    "theme": ("Theme", "المظهر"),
    "language": ("العربية", "English"),
    "role_OWNER": ("Owner", "مالك"),
    "role_ADMIN": ("Admin", "مسؤول"),
    "role_MANAGER": ("Manager", "مدير"),
    "role_AGENT": ("Agent", "موظف"),
    # WhatsApp line
    "wa_line": ("WhatsApp line", "خط واتساب"),
    "wa_CONNECTED": ("Connected", "متصل"),
    "wa_CONNECTING": ("Connecting", "جارٍ الاتصال"),
    "wa_QR_PENDING": ("Waiting for QR scan", "بانتظار مسح الرمز"),
    "wa_DISCONNECTED": ("Not linked", "غير مرتبط"),
    "wa_ERROR": ("Error", "خطأ"),
    "wa_unknown": ("Unavailable", "غير متاح"),
    "simulator": ("simulator", "محاكاة"),
    # the WhatsApp page (wapkg: moved here from pages/whatsapp.py; message states are the msg_* labels)
    "nav_whatsapp": ("WhatsApp", "واتساب"),
    "wa_link": ("Link WhatsApp", "ربط واتساب"),
    "wa_unlink": ("Unlink", "إلغاء الربط"),
    "wa_unlink_confirm": ("Unlink the firm's WhatsApp line?", "إلغاء ربط خط واتساب للمكتب؟"),
    "wa_unlink_body": (
        "The device is logged out on the phone and its keys are deleted. Messages stay stored.",
        "سيُسجَّل خروج الجهاز من الهاتف وتُحذف مفاتيحه. تبقى الرسائل محفوظة.",
    ),
    "wa_not_linked_body": (
        "Link the firm's WhatsApp number to send and receive messages here.",
        "اربط رقم واتساب الخاص بالمكتب لإرسال الرسائل واستقبالها هنا.",
    ),
    "wa_admin_only": ("Only an owner or an admin can link the line.", "يستطيع المالك أو المسؤول فقط ربط الخط."),
    "wa_admin_linking": (
        "An owner or an admin is linking the line; the code to scan is shown only to them.",
        "يقوم المالك أو المسؤول بربط الخط؛ يظهر رمز المسح لهما فقط.",
    ),
    "wa_scan_title": ("Scan this code with the firm's phone", "امسح هذا الرمز بهاتف المكتب"),
    "wa_scan_steps": ("WhatsApp → Linked devices → Link a device", "واتساب ← الأجهزة المرتبطة ← ربط جهاز"),
    "wa_code_refresh": ("New code in {n} s", "رمز جديد خلال {n} ث"),
    "wa_code_refreshing": ("Waiting for a new code…", "بانتظار رمز جديد…"),
    "wa_starting": ("Starting the line…", "جارٍ تشغيل الخط…"),
    "wa_linked_as": ("Linked number", "الرقم المرتبط"),
    "wa_profile": ("WhatsApp name", "اسم واتساب"),
    "wa_since": ("Connected since", "متصل منذ"),
    "wa_error_title": ("The line is not connected", "الخط غير متصل"),
    "wa_next_retry": ("Next try at {x}", "المحاولة التالية عند {x}"),
    "wa_service_down_since": (SERVICE_DOWN_SINCE[0].replace("{since}", "{x}"), SERVICE_DOWN_SINCE[1].replace("{since}", "{x}")),
    "wa_service_down": ("service not running", "الخدمة متوقفة"),
    "wa_call": ("WhatsApp call", "مكالمة واتساب"),
    "wa_reject_calls": (
        "Decline WhatsApp calls with an automatic text (\"We can't take WhatsApp calls; we'll call you back\")",
        "رفض مكالمات واتساب برسالة تلقائية («لا نستقبل مكالمات واتساب؛ سنعاود الاتصال بك»)",
    ),
    "wa_guardrails": ("Protection against bans", "الحماية من الحظر"),
    "wa_guardrails_pace": (
        "Messages go out at a person's pace: read receipts, \"typing…\", random gaps; first messages to numbers that never wrote to the firm go slower and are capped per day.",
        "تُرسل الرسائل بوتيرة إنسان: إشعارات القراءة و«يكتب…» وفواصل عشوائية؛ والرسائل الأولى إلى أرقام لم تراسل المكتب أبطأ ولها حد يومي.",
    ),
    "wa_first_contacts_today": ("First contacts today: {x} of {y}", "الرسائل الأولى اليوم: {x} من {y}"),
    "wa_cap_save": ("Set daily cap", "تعيين الحد اليومي"),
    "wa_cap_hint": ("Daily cap on first messages to new numbers (0 to 1000).", "الحد اليومي للرسائل الأولى إلى أرقام جديدة (من 0 إلى 1000)."),
    "wa_cap_invalid": ("Enter a whole number from 0 to 1000.", "أدخل عددًا صحيحًا من 0 إلى 1000."),
    "wa_ban_paused": (
        "Sending paused: WhatsApp temporarily banned this number until {x}. Messages stay queued and go out after it.",
        "الإرسال متوقف: حظر واتساب هذا الرقم مؤقتًا حتى {x}. الرسائل في قائمة الانتظار وتُرسل بعده.",
    ),
    "wa_ingest": ("Messages received", "الرسائل الواردة"),
    "wa_received": ("Received", "وصلت"),
    "wa_stored": ("Stored", "حُفظت"),
    "wa_failed": ("Could not be stored", "تعذّر حفظها"),
    "wa_offline_sync": ("Last reconnect: {n} messages arrived while away ({x})", "آخر إعادة اتصال: وصلت {n} رسالة أثناء الانقطاع ({x})"),
    "wa_dead_letters": ("Messages that could not be stored", "رسائل تعذّر حفظها"),
    "wa_dead_letters_none": ("Every message received was stored.", "حُفظت كل الرسائل الواردة."),
    "wa_dead_letter_retry": ("Store again", "أعد الحفظ"),
    "wa_dead_letter_stored": ("Stored", "حُفظت"),
    "wa_attempts": ("{n} attempts", "{n} محاولات"),
    "wa_media_pending": ("Downloading the file…", "جارٍ تنزيل الملف…"),
    "wa_media_failed": ("Couldn't download the file", "تعذّر تنزيل الملف"),
    "wa_media_retry": ("Retry", "أعد المحاولة"),
    "wa_media_retrying": ("Downloading again", "يُعاد التنزيل"),
    "wa_media_too_large": ("The file is larger than the per-file limit (64 MB by default) and was not kept.", "الملف أكبر من الحد المسموح للملف الواحد (64 ميغابايت افتراضيًا) ولم يُحفظ."),
    "wa_media_over_quota": ("The firm's storage for WhatsApp files is full: this file was not kept.", "امتلأت مساحة تخزين ملفات واتساب للمكتب: لم يُحفظ هذا الملف."),
    "wa_media_open": ("Open", "فتح"),
    "wa_attach": ("Attach a file", "إرفاق ملف"),
    "wa_send_file": ("Send the file", "أرسل الملف"),
    # Failures: the sentence per code comes from services.whatsapp.failures; the raw detail
    # is behind this toggle, for owners and admins.
    "wa_details": ("Technical details", "التفاصيل التقنية"),
    "wa_hide_details": ("Hide technical details", "إخفاء التفاصيل التقنية"),
    "wa_cancel_link": ("Cancel", "إلغاء"),
    "wa_conversations": ("Conversations", "المحادثات"),
    "wa_no_messages": ("No messages yet", "لا توجد رسائل بعد"),
    "wa_send_title": ("Send a message", "إرسال رسالة"),
    "wa_to_client": ("To a client", "إلى عميل"),
    "wa_to_number": ("To a number", "إلى رقم"),
    "wa_choose_client": ("Choose a client", "اختر عميلًا"),
    "wa_number_placeholder": ("05x xxx xxxx or +9665…", "05x xxx xxxx أو ‎+9665…"),
    "wa_message": ("Message", "الرسالة"),
    "wa_send": ("Send", "إرسال"),
    "wa_queued": ("Queued: sent as soon as the line allows", "في قائمة الانتظار: تُرسل فور سماح الخط"),
    "wa_send_again": ("Send again", "أعد الإرسال"),
    "wa_mark_sent": ("Mark as sent", "علّمها كمُرسلة"),
    "wa_resent": ("Queued again", "أُعيدت إلى قائمة الإرسال"),
    "wa_marked_sent": ("Marked as sent", "عُلّمت كمُرسلة"),
    "wa_messages_count": ("{n} messages", "{n} رسالة"),
    # dashboard
    "today": ("Today", "اليوم"),
    "my_calls_today": ("My calls today", "مكالماتي اليوم"),
    "firm_calls_today": ("The firm's calls today", "مكالمات المكتب اليوم"),
    "total_calls": ("Total calls", "إجمالي المكالمات"),
    "inbound": ("Inbound", "واردة"),
    "outbound": ("Outbound", "صادرة"),
    "answered": ("Answered", "تم الرد"),
    "missed": ("Missed", "فائتة"),
    "answer_rate": ("Answer rate", "نسبة الرد"),
    "asa": ("Avg. speed of answer", "متوسط سرعة الرد"),
    "avg_talk": ("Avg. talk time", "متوسط مدة المحادثة"),
    "service_level": ("Service level", "مستوى الخدمة"),
    "calls_per_hour": ("Calls per hour today", "المكالمات لكل ساعة اليوم"),
    "last_30_days": ("Last 30 days", "آخر ٣٠ يومًا"),
    "per_agent": ("Per agent (last 30 days)", "حسب الموظف (آخر ٣٠ يومًا)"),
    "agent": ("Agent", "الموظف"),
    "talk_time": ("Talk time", "مدة المحادثة"),
    "hour": ("Hour", "الساعة"),
    "day": ("Day", "اليوم"),
    "calls": ("Calls", "المكالمات"),
    "no_data": ("No calls yet", "لا توجد مكالمات بعد"),
    # call history
    "date_from": ("From", "من"),
    "date_to": ("To", "إلى"),
    # date fields (ui polish): the value is written YYYY-MM-DD in both languages
    "date_placeholder": ("Choose a date", "اختر تاريخًا"),
    "clear_date": ("Clear the date", "مسح التاريخ"),
    "direction": ("Direction", "الاتجاه"),
    "status": ("Status", "الحالة"),
    "client": ("Client", "العميل"),
    "number": ("Number", "الرقم"),
    "search_number": ("Search a number", "ابحث عن رقم"),
    "any": ("Any", "الكل"),
    "all_agents": ("All agents", "كل الموظفين"),
    "all_clients": ("All clients", "كل العملاء"),
    "clear_filters": ("Clear", "مسح"),
    "export_csv": ("Export CSV", "تصدير CSV"),
    "exporting": ("Exporting… {n} rows", "جارٍ التصدير… {n} صف"),
    "export_ready": ("Export ready: {n} rows", "التصدير جاهز: {n} صف"),
    "started": ("Started", "البدء"),
    "duration": ("Duration", "المدة"),
    "case": ("Case", "القضية"),
    "calls_total": ("{n} calls", "{n} مكالمة"),
    "page_of": ("Page {p} of {n}", "صفحة {p} من {n}"),
    "previous": ("Previous", "السابق"),
    "next": ("Next", "التالي"),
    "newest_first": ("Newest first", "الأحدث أولًا"),
    "oldest_first": ("Oldest first", "الأقدم أولًا"),
    "call_details": ("Call details", "تفاصيل المكالمة"),
    # hardening: deleting a call logged in error (OWNER/ADMIN, from the call's side panel)
    "delete_call": ("Delete call", "حذف المكالمة"),
    "delete_call_confirm": (
        "Delete this call and its notes? This cannot be undone; the audit log keeps who deleted it.",
        "حذف هذه المكالمة وملاحظاتها؟ لا يمكن التراجع عن ذلك، ويحفظ سجل التدقيق من حذفها.",
    ),
    "call_deleted": ("Call deleted", "تم حذف المكالمة"),
    "remote_number": ("Remote number", "رقم الطرف الآخر"),
    "extension": ("Extension", "التحويلة"),
    "answered_at": ("Answered at", "وقت الرد"),
    "ended_at": ("Ended at", "وقت الانتهاء"),
    "ring_time": ("Ring time", "مدة الرنين"),
    "hangup_cause": ("Hang-up cause", "سبب الإنهاء"),
    "notes": ("Notes", "الملاحظات"),
    "add_note": ("Add note", "إضافة ملاحظة"),
    "note_placeholder": ("Write a note about this call", "اكتب ملاحظة عن هذه المكالمة"),
    "linked_case": ("Linked case", "القضية المرتبطة"),
    "link_case": ("Link case", "ربط القضية"),
    "no_case": ("No case", "بلا قضية"),
    "no_client_match": ("No client matched this number", "لا يوجد عميل بهذا الرقم"),
    "recordings": ("Recordings", "التسجيلات"),
    "no_recordings": ("No recordings", "لا توجد تسجيلات"),
    "recording_length": ("Length", "المدة"),
    "nav_recordings": ("Recordings", "التسجيلات"),
    "recording_retention": ("Retention", "مدة الاحتفاظ"),
    "recording_retention_hint": (
        "Call recordings older than this are deleted every day, except those of calls linked to a case on legal hold.",
        "تُحذف يوميًا تسجيلات المكالمات الأقدم من هذه المدة، إلا تسجيلات المكالمات المرتبطة بقضية عليها حجز قانوني.",
    ),
    "retention_days": ("Days to keep recordings (1–3650)", "أيام الاحتفاظ بالتسجيلات (١–٣٦٥٠)"),
    "legal_holds": ("Legal holds", "الحجز القانوني"),
    "legal_holds_hint": (
        "The recordings of a case on legal hold are kept past the retention period until the hold is released.",
        "تُحفظ تسجيلات القضية التي عليها حجز قانوني بعد انتهاء مدة الاحتفاظ إلى أن يُرفع الحجز.",
    ),
    "find_case": ("Find a case by title or reference", "ابحث عن قضية بالعنوان أو المرجع"),
    "search": ("Search", "بحث"),
    "reference": ("Reference", "المرجع"),
    "put_on_hold": ("Put on hold", "فرض الحجز"),
    "release_hold": ("Release hold", "رفع الحجز"),
    "no_legal_holds": ("No case is on legal hold", "لا توجد قضية عليها حجز قانوني"),
    "recording_audit": ("Who listened", "من استمع"),
    "recording_audit_hint": (
        "Every play and download of a recording, and each retention run (owners only).",
        "كل تشغيل أو تنزيل لتسجيل، وكل عملية حذف بعد مدة الاحتفاظ (للمالك فقط).",
    ),
    "audit_when": ("When", "الوقت"),
    "audit_who": ("Who", "من"),
    "audit_action": ("Action", "الإجراء"),
    "audit_call": ("Call", "المكالمة"),
    "audit_range": ("Bytes", "البايتات"),
    "no_audit_events": ("No recording has been played yet", "لم يُشغَّل أي تسجيل بعد"),
    "download": ("Download", "تنزيل"),
    "recording_pending": ("Recording is being fetched from the PBX…", "يجري جلب التسجيل من المقسم…"),
    "recording_purged": ("Recording deleted after the retention period", "حُذف التسجيل بعد انتهاء مدة الاحتفاظ"),
    "recording_failed": ("The PBX did not provide this recording", "لم يوفّر المقسم هذا التسجيل"),
    "call_legs": ("Legs of the call", "مراحل المكالمة"),
    "no_legs": ("The PBX has not reported this call yet", "لم يُرسل المقسم سجل هذه المكالمة بعد"),
    "leg_rang": ("rang {s}", "رنّ {s}"),
    "leg_talked": ("talked {s}", "تحدّث {s}"),
    "leg_not_answered": ("not answered", "لم يُجب"),
    "leg_transferred_by": ("transferred by {ext}", "حُوّلت من {ext}"),
    "cdr_feed": ("Call records from the PBX", "سجلات المكالمات من المقسم"),
    "cdr_feed_connected": ("Connected", "متصل"),
    "cdr_feed_disconnected": ("Not connected", "غير متصل"),
    "cdr_feed_not_started": ("Not started yet", "لم تبدأ بعد"),
    "cdr_last_record": ("last record {at}", "آخر سجل {at}"),
    "cdr_no_record_yet": ("no record yet", "لا سجلات بعد"),
    "cdr_records_today": ("records today: {n}", "سجلات اليوم: {n}"),
    "cdr_gaps_filled": ("gaps found and filled: {n}", "فجوات اكتُشفت وسُدّت: {n}"),
    "no_notes": ("No notes yet", "لا توجد ملاحظات بعد"),
    "close": ("Close", "إغلاق"),
    "saved": ("Saved", "تم الحفظ"),
    "no_calls_match": ("No calls match these filters", "لا توجد مكالمات تطابق هذه المرشحات"),
    "dir_INBOUND": ("Inbound", "واردة"),
    "dir_OUTBOUND": ("Outbound", "صادرة"),
    "st_RINGING": ("Ringing", "يرن"),
    "st_ANSWERED": ("Answered", "تم الرد"),
    "st_COMPLETED": ("Completed", "مكتملة"),
    "st_MISSED": ("Missed", "فائتة"),
    "st_REJECTED": ("Rejected", "مرفوضة"),
    "st_BUSY": ("Busy", "مشغول"),
    "st_FAILED": ("Failed", "فشلت"),
    "st_NO_ANSWER": ("No answer", "لا رد"),
    # extensions
    "extensions_title": ("SIP extensions", "تحويلات SIP"),
    "user": ("User", "المستخدم"),
    "display_name": ("Display name", "الاسم الظاهر"),
    "sip_password": ("SIP password", "كلمة مرور SIP"),
    "sip_password_hint": (
        "Write-only: leave empty to keep the current password",
        "للكتابة فقط: اتركها فارغة للإبقاء على كلمة المرور الحالية",
    ),
    "assign": ("Assign", "تعيين"),
    "assign_extension": ("Assign or change an extension", "تعيين تحويلة أو تغييرها"),
    "no_extension": ("No extension", "بلا تحويلة"),
    "edit": ("Edit", "تعديل"),
    "delete": ("Delete", "حذف"),
    "cancel": ("Cancel", "إلغاء"),
    "confirm_delete": ("Delete extension {x}?", "حذف التحويلة {x}؟"),
    "confirm_delete_body": (
        "The user's softphone stops working until a new extension is assigned.",
        "سيتوقف الهاتف الشبكي للمستخدم حتى تُعيَّن له تحويلة جديدة.",
    ),
    "choose_user": ("Choose a user", "اختر مستخدمًا"),
    "pbx_settings": ("PBX settings", "إعدادات المقسم"),
    "pbx_host": ("PBX host", "عنوان المقسم"),
    "wss_port": ("WSS port", "منفذ WSS"),
    "wss_path": ("WSS path", "مسار WSS"),
    "sip_domain": ("SIP domain", "نطاق SIP"),
    # PBX lab: the firm's public number (DID) that rings its ring group
    "pbx_did": ("Public number (DID)", "الرقم العام (DID)"),
    "pbx_did_hint": ("Calls to this number ring every agent of the firm", "المكالمات إلى هذا الرقم ترنّ لدى جميع موظفي المكتب"),
    # PBX lab / transport (dev PBX on loopback: plain ws; every other PBX: wss)
    "pbx_transport": ("Transport", "بروتوكول النقل"),
    "pbx_transport_wss": ("wss (TLS)", "wss (مشفّر TLS)"),
    "pbx_transport_ws": ("ws (PBX on this machine only)", "ws (لمقسم على هذا الجهاز فقط)"),
    "stun_servers": ("STUN servers (one per line)", "خوادم STUN (واحد في كل سطر)"),
    "turn_server": ("TURN server", "خادم TURN"),
    "turn_username": ("TURN username", "اسم مستخدم TURN"),
    "turn_credential": ("TURN credential", "كلمة مرور TURN"),
    "turn_credential_hint": ("Write-only: leave empty to keep it", "للكتابة فقط: اتركها فارغة للإبقاء عليها"),
    "save": ("Save", "حفظ"),
    # PBX settings: where the firm's call records come from (services/pbx/settings.py)
    "cdr_settings": ("Call records", "سجلات المكالمات"),
    "cdr_settings_hint": (
        "The PBX's own record of every call: history and statistics include calls no browser saw",
        "سجل المقسم لكل مكالمة: يشمل السجل والإحصاءات المكالمات التي لم يرها أي متصفح",
    ),
    "cdr_source": ("Source", "المصدر"),
    "cdr_source_none": ("None (softphones only)", "لا شيء (الهواتف الشبكية فقط)"),
    "cdr_source_lab": ("PBX lab (this machine)", "مختبر المقسم (هذا الجهاز)"),
    "cdr_source_ucm": ("Grandstream UCM (HTTPS API)", "Grandstream UCM (واجهة HTTPS)"),
    "cdr_api_url": ("UCM API URL", "عنوان واجهة UCM"),
    "cdr_api_user": ("API user", "مستخدم الواجهة"),
    "cdr_api_password": ("API password", "كلمة مرور الواجهة"),
    "cdr_api_password_hint": ("Write-only: leave empty to keep it", "للكتابة فقط: اتركها فارغة للإبقاء عليها"),
    "cdr_api_password_stored": ("A password is stored", "كلمة المرور محفوظة"),
    "cdr_realtime_port": ("Real-time output port", "منفذ الإخراج الفوري"),
    "cdr_realtime_port_hint": (
        "Where the UCM's CDR real-time output connects (TCP, JSON)",
        "المنفذ الذي يتصل به الإخراج الفوري لسجلات UCM (TCP، JSON)",
    ),
    "cdr_test": ("Test connection", "اختبار الاتصال"),
    "cdr_test_ok": ("Connected.", "تم الاتصال."),
    "cdr_test_auth_failed": ("Sign-in refused.", "رُفض تسجيل الدخول."),
    "cdr_test_unreachable": ("Not reachable.", "تعذّر الوصول."),
    "cdr_test_bad_response": ("Unexpected answer.", "رد غير متوقع."),
    "cdr_test_empty_page": ("Records missing.", "السجلات مفقودة."),
    "cdr_test_not_configured": ("Not set up.", "غير مُعدّ."),
    "cdr_test_failed": ("Connection failed.", "فشل الاتصال."),
    "bulk_assign": ("Bulk assign from CSV", "تعيين جماعي من ملف CSV"),
    "bulk_hint": (
        "Columns: email, extension, display_name, password (password only for a new extension)",
        "الأعمدة: email و extension و display_name و password (كلمة المرور للتحويلة الجديدة فقط)",
    ),
    "choose_csv": ("Choose a CSV file", "اختر ملف CSV"),
    "import": ("Import", "استيراد"),
    "row": ("Row", "الصف"),
    "result": ("Result", "النتيجة"),
    "done": ("Done", "تم"),
    "rejected": ("Rejected", "مرفوض"),
    "users_count": ("{n} users", "{n} مستخدم"),
    # user accounts: the users page (OWNER/ADMIN), the own-account page, the set-password page
    "nav_users": ("Users", "المستخدمون"),
    "nav_account": ("My account", "حسابي"),
    "users_title": ("Users of the firm", "مستخدمو المكتب"),
    "role": ("Role", "الدور"),
    "active": ("Active", "نشط"),
    "disabled": ("Disabled", "معطّل"),
    "last_sign_in": ("Last sign-in", "آخر دخول"),
    "never": ("Never", "لم يدخل بعد"),
    "full_name": ("Full name", "الاسم الكامل"),
    "add_user": ("Add a user", "إضافة مستخدم"),
    "add": ("Add", "إضافة"),
    "password_mode_link": ("Give a one-time link to set the password", "رابط لمرة واحدة لتعيين كلمة المرور"),
    "password_mode_password": ("Set a password now", "تعيين كلمة مرور الآن"),
    "disable": ("Disable", "تعطيل"),
    "enable": ("Enable", "تفعيل"),
    "reset_password": ("Reset password", "إعادة تعيين كلمة المرور"),
    "confirm_disable": ("Disable {x}?", "تعطيل {x}؟"),
    "confirm_disable_body": (
        "They are signed out everywhere at once and cannot sign in until enabled again.",
        "سيُسجَّل خروجه من كل مكان فورًا ولن يستطيع الدخول حتى يُفعَّل مجددًا.",
    ),
    "reset_password_for": ("Reset the password of {x}", "إعادة تعيين كلمة مرور {x}"),
    "reset_password_body": (
        "The old password stops working and every session of theirs ends.",
        "ستتوقف كلمة المرور القديمة وتنتهي كل جلساته.",
    ),
    "new_password": ("New password", "كلمة المرور الجديدة"),
    "confirm_password": ("Repeat the new password", "أعد كتابة كلمة المرور الجديدة"),
    "current_password": ("Current password", "كلمة المرور الحالية"),
    "passwords_differ": ("The two passwords differ", "كلمتا المرور غير متطابقتين"),
    "link_title": ("Set-password link for {x}", "رابط تعيين كلمة المرور لـ {x}"),
    "link_body": (
        "Give this link to the user. It works once, for 72 hours, and is shown only now.",
        "أعطِ هذا الرابط للمستخدم. يعمل مرة واحدة خلال ٧٢ ساعة، ولن يظهر مرة أخرى.",
    ),
    "copy": ("Copy", "نسخ"),
    "copied_close": ("I have copied it", "نسخته"),
    "you": ("you", "أنت"),
    "change_password": ("Change my password", "تغيير كلمة المرور"),
    "change_password_hint": (
        "Your other sessions end; this one stays signed in.",
        "تنتهي جلساتك الأخرى وتبقى هذه الجلسة.",
    ),
    "password_changed": ("Password changed", "تم تغيير كلمة المرور"),
    "sign_out_everywhere": ("Sign out everywhere", "تسجيل الخروج من كل مكان"),
    "sign_out_everywhere_hint": (
        "Ends every session of yours, in every browser and script, this one included.",
        "ينهي كل جلساتك في كل متصفح وبرنامج، بما فيها هذه.",
    ),
    "set_password_title": ("Set your password", "عيّن كلمة المرور"),
    "set_password_for": ("For {x}", "للحساب {x}"),
    "set_password_submit": ("Set password", "تعيين كلمة المرور"),
    "set_password_done": ("Your password is set. You can sign in now.", "تم تعيين كلمة المرور. يمكنك الدخول الآن."),
    "link_invalid": (
        "This link is not valid: it has expired, was already used or was replaced. Ask your firm's admin for a new one.",
        "هذا الرابط غير صالح: انتهت مدته أو استُخدم أو استُبدل. اطلب رابطًا جديدًا من مسؤول المكتب.",
    ),
    "go_to_sign_in": ("Go to sign in", "الذهاب إلى تسجيل الدخول"),
    # clients
    "clients_title": ("Clients", "العملاء"),
    "search_clients": ("Search by name or number", "ابحث بالاسم أو الرقم"),
    "name": ("Name", "الاسم"),
    "phone": ("Phone", "الهاتف"),
    "cases": ("Cases", "القضايا"),
    "timeline": ("Timeline", "السجل الزمني"),
    "timeline_empty": ("No calls or messages yet", "لا توجد مكالمات أو رسائل بعد"),
    "call": ("Call", "مكالمة"),
    "whatsapp": ("WhatsApp", "واتساب"),
    "clients_total": ("{n} clients", "{n} عميل"),
    "back_to_clients": ("All clients", "كل العملاء"),
    "open": ("Open", "فتح"),
    "messages_unavailable": (
        "WhatsApp messages are not available on this installation",
        "رسائل واتساب غير متاحة في هذا التثبيت",
    ),
    "client_not_found": ("This client does not exist", "هذا العميل غير موجود"),
    # case and message states, what a WhatsApp message carries (ui polish)
    "case_OPEN": ("Open", "مفتوحة"),
    "case_PENDING": ("Pending", "معلّقة"),
    "case_CLOSED": ("Closed", "مغلقة"),
    "msg_PENDING": ("Pending", "قيد الإرسال"),
    "msg_SENDING": ("Sending", "جارٍ الإرسال"),
    "msg_UNCERTAIN": ("May not have been sent", "ربما لم تُرسل"),
    "msg_SENT": ("Sent", "أُرسلت"),
    "msg_DELIVERED": ("Delivered", "وصلت"),
    "msg_READ": ("Read", "قُرئت"),
    "msg_FAILED": ("Failed", "فشلت"),
    "msg_RECEIVED": ("Received", "مستلمة"),
    "kind_call": ("WhatsApp voice call", "مكالمة واتساب صوتية"),
    "kind_image": ("Image", "صورة"),
    "kind_video": ("Video", "فيديو"),
    "kind_document": ("Document", "مستند"),
    "kind_audio": ("Audio", "مقطع صوتي"),
    "kind_voice": ("Voice note", "رسالة صوتية"),
    "kind_sticker": ("Sticker", "ملصق"),
    "kind_location": ("Location", "موقع"),
    "kind_contact": ("Contact", "جهة اتصال"),
    "kind_poll": ("Poll", "استطلاع"),
    "seconds_short": ("s", "ث"),
    # softphone and click-to-call
    "call_back": ("Call back", "معاودة الاتصال"),
    "call_client": ("Call", "اتصال"),
    "missed_to_call_back": ("Missed calls to call back", "مكالمات فائتة لمعاودة الاتصال"),
    "no_missed_calls": ("No missed calls today", "لا توجد مكالمات فائتة اليوم"),
    "sp_call_not_found": ("The call was not found.", "لم يتم العثور على المكالمة."),
    "sp_saved": ("Saved to the call.", "تم الحفظ في المكالمة."),
}

# A WhatsApp failure's sentence per class lives with the classes (services.whatsapp.failures).
LABELS.update({f"wa_fail_{code.value}": texts for code, texts in SENTENCES.items()})
LABELS.update({f"wa_ban_{name}": texts for name, texts in BAN_REASONS.items()})

LANGS = ("en", "ar")


def tr(lang: str, key: str, **values: object) -> str:
    """The label ``key`` in ``lang`` (Python side: toasts, charts), with ``{name}`` filled in."""
    en, ar = LABELS[key]
    text = ar if lang == "ar" else en
    return text.format(**values) if values else text


def t(key: str) -> rx.Var:
    """The label ``key`` as a Var that follows the chosen language in the browser."""
    en, ar = LABELS[key]
    return rx.cond(LangState.is_ar, ar, en)


def t_fmt(key: str, **values: rx.Var | str | int) -> rx.Var:
    """A label with ``{name}`` placeholders filled from Vars, in the chosen language."""

    def build(text: str) -> rx.Var:
        parts: list[rx.Var | str] = []
        rest = text
        while "{" in rest:
            before, _, tail = rest.partition("{")
            name, _, rest = tail.partition("}")
            if before:
                parts.append(before)
            var = rx.Var.create(values[name])
            # to_string() would JSON-quote a string; only numbers need converting.
            parts.append(var if isinstance(var, rx.vars.StringVar) else var.to_string())
        if rest:
            parts.append(rest)
        result = rx.Var.create("")
        for part in parts:
            result = result + part  # type: ignore[operator]
        return result

    en, ar = LABELS[key]
    return rx.cond(LangState.is_ar, build(ar), build(en))
