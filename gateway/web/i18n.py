"""The pages' words in Chinese (the default) and English. The matters' own titles, descriptions and choices
come from the catalogue; region names from gateway/regions.toml."""

from __future__ import annotations

from gateway.regions import region_name

LANGUAGES = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {
    "hall": ("网上办事大厅", "Online affairs hall"),
    "counter": ("受理窗口", "Service counter"),
    "backoffice": ("部门审批", "Department back office"),
    "govhub": ("一网通办", "govhub one-window service"),
    "skip": ("跳到正文", "Skip to content"),
    "catalogue": ("办事指南", "Services"),
    "my_cases": ("我的办件", "My cases"),
    "my_card": ("我的身份证", "My ID card"),
    "access_log": ("我的数据被谁查看", "Who looked at my data"),
    "progress": ("办件进度查询", "Track a case"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "signed_in_as": ("已登录", "Signed in as"),
    "language": ("语言", "Language"),
    "apply": ("在线申办", "Apply online"),
    "details": ("查看详情", "Details"),
    "materials": ("申请材料", "Materials"),
    "upload": ("在线上传", "upload"),
    "in_person": ("到窗口出示", "show at the counter"),
    "optional": ("选填", "optional"),
    "required": ("必填", "required"),
    "fees": ("收费标准", "Fees"),
    "free": ("不收费", "Free of charge"),
    "fee_depends": ("视情形，详见办事指南", "depending on the case; see the details"),
    "yuan": ("元", "yuan"),
    "statutory_days": ("法定办结时限", "Statutory time limit"),
    "days": ("日", "days"),
    "working_days": ("个工作日", "working days"),
    "quote_unavailable": (
        "暂时无法向主管部门查询，请稍后再试",
        "The department cannot be asked just now; try again later",
    ),
    "steps": ("办理环节", "Steps"),
    "department": ("部门", "Department"),
    "dept_identity": ("居民身份证管理部门", "ID card office"),
    "dept_residence": ("户政管理部门", "Household registration"),
    "dept_permits": ("出入境与外国人管理部门", "Permits and foreigners"),
    "applicable_from": ("可申办日期", "Can be applied for"),
    "from_date": ("{d} 起", "from {d}"),
    "until_date": ("至 {d}", "to {d}"),
    "list_sep": ("、", ", "),
    "not_available_today": ("今日不可申办", "cannot be applied for today"),
    "only_when": ("仅当勾选“{field}”时办理", "only when “{field}” is ticked"),
    "application_form": ("申请表", "Application form"),
    "contact": ("联系方式（用于办理进度通知）", "Contact (for progress messages)"),
    "phone": ("手机号码", "Mobile phone"),
    "email": ("电子邮箱", "E-mail"),
    "notify_language": ("通知语言", "Language of messages"),
    "submit": ("提交申请", "Submit the application"),
    "submitting": ("正在提交…", "Submitting…"),
    "form_has_errors": ("申请表有 {n} 处需要修改", "The form has {n} problem(s) to fix"),
    "already_uploaded": ("已上传，无需重新上传", "uploaded already, no need to upload again"),
    "choose_file": ("选择文件（PDF、JPEG 或 PNG）", "Choose a file (PDF, JPEG or PNG)"),
    "refused": ("申请未被受理", "The application was not accepted"),
    "receipt": ("受理回执", "Acknowledgement of receipt"),
    "print": ("打印回执", "Print the receipt"),
    "case_no": ("办件编号", "Case number"),
    "query_code": ("查询码", "Query code"),
    "query_code_once": (
        "请妥善保存查询码：系统只保存它的校验值，日后无法再次显示。凭办件编号和查询码可随时查询进度。",
        "Keep the query code: govhub keeps only a hash of it and cannot show it again later. With the case "
        "number and the code anyone can follow the case.",
    ),
    "matter": ("事项", "Matter"),
    "state": ("状态", "Status"),
    "submitted_on": ("申请日期", "Submitted on"),
    "expected_date": ("承诺办结日期", "Expected by"),
    "fee_charged": ("应缴费用", "Fee to pay"),
    "materials_received": ("已收材料", "Materials received"),
    "hall_code": ("服务大厅（区划代码）", "Service hall (region code)"),
    "service_hall": ("服务大厅", "Service hall"),
    "station_area": ("派出所所在区", "District of the police station"),
    "department_said": ("部门答复", "The department said"),
    "opened_by": ("受理人", "Served by"),
    "statutory_deadline": ("法定时限", "Deadline"),
    "overdue": ("已超期", "overdue"),
    "reason": ("原因", "Reason"),
    "withdraw": ("撤回申请", "Withdraw the application"),
    "withdraw_confirm": ("我确认撤回此申请", "I confirm I withdraw this application"),
    "rate": ("评价（好差评）", "Rate this service"),
    "rating": ("评分", "Rating"),
    "comment": ("意见（选填）", "Comment (optional)"),
    "send_rating": ("提交评价", "Send the rating"),
    "your_rating": ("您的评价", "Your rating"),
    "no_cases": ("暂无办件。", "No cases yet."),
    "more": ("下一页", "Next page"),
    "open_case": ("查看", "Open"),
    "card_status": ("证件状态", "Card status"),
    "card_number": ("证件号", "Card number"),
    "valid_until": ("有效期至", "Valid until"),
    "long_term": ("长期", "long-term"),
    "report_lost": ("挂失身份证", "Report my card lost"),
    "report_lost_hint": (
        "挂失后证件立即对所有核验方失效，此操作不能撤销。",
        "Once reported, the card is invalid for every checker at once; this cannot be undone.",
    ),
    "name": ("姓名", "Name"),
    "station": ("报失地派出所所在区（区划代码）", "District of the police station (region code)"),
    "lost_reported": ("已挂失：证件 {card} 于 {on} 登记。", "Reported: card {card} registered on {on}."),
    "found_cards": ("以我的名义登记的招领证件", "Found cards handed in under my name"),
    "no_found_cards": ("暂无招领证件。", "No found cards."),
    "found_on": ("拾获日期", "Found on"),
    "time": ("时间", "Time"),
    "organisation": ("机构", "Organisation"),
    "system": ("系统", "System"),
    "role": ("身份", "Role"),
    "purpose": ("事由", "Purpose"),
    "action": ("操作", "Action"),
    "outcome": ("结果", "Outcome"),
    "no_entries": ("暂无记录。", "No entries."),
    "look_up": ("查询", "Look up"),
    "no_such_case": ("没有与此编号和查询码相符的办件。", "No case with this number and query code."),
    "public_view_note": (
        "公开查询只显示办理状态，不含个人信息。",
        "The public view shows the status only, no personal data.",
    ),
    "id_number": ("公民身份号码", "Citizen ID number"),
    "dev_sign_in": ("开发环境登录", "Development sign-in"),
    "dev_sign_in_hint": (
        "本网关使用开发密钥：可为演示居民直接签发会话。正式环境请使用身份认证平台签发的令牌。",
        "This gateway uses its development secret, so a session can be minted for a demo resident. "
        "In production, sign in with a token from the identity provider.",
    ),
    # Shown only on the development sign-in. Synthetic people: three of the demo population that
    # `make seed` loads (services/residence/seed.py DEMO_PEOPLE), the same as in the README.
    "demo_residents": (
        "演示居民：120101198503120115（王津生，天津户籍，可在上海办理身份证异地换领）、"
        "360102199205200454（刘赣平，江西户籍）、310104197811300337（陈沪明，上海徐汇户籍）。",
        "Demo residents: 120101198503120115 (王津生, hukou in Tianjin: can renew the ID card in Shanghai), "
        "360102199205200454 (刘赣平, hukou in Jiangxi), "
        "310104197811300337 (陈沪明, hukou in Xuhui, Shanghai).",
    ),
    "demo_staff": ("任意工号，例如 window-07 或 psb-0042。", "Any staff number, e.g. window-07 or psb-0042."),
    "demo_hall": (
        "服务大厅的 6 位区划代码，例如 310104（徐汇区）。",
        "The hall's six-digit region code, e.g. 310104 (Xuhui).",
    ),
    "token_sign_in": ("使用身份认证平台令牌登录", "Sign in with a token from the identity provider"),
    "token_sign_in_hint": (
        "政务服务统一身份认证平台签发的访问令牌（JWT）。本系统不保存任何密码。",
        "The access token (JWT) issued by the identity provider. govhub stores no passwords.",
    ),
    "token": ("访问令牌", "Access token"),
    "staff_number": ("工号", "Staff number"),
    "sign_in_needed": ("请先登录。", "Please sign in first."),
    "session_expired": ("会话已过期，请重新登录。", "Your session has expired; please sign in again."),
    "csrf_failed": (
        "表单已过期，请重新打开页面后再提交。",
        "This form has expired; reload the page and send it again.",
    ),
    "wrong_role": ("此令牌的身份不能使用本页面。", "This token's role may not use these pages."),
    "error": ("出错了", "Something went wrong"),
    "unavailable": (
        "相关部门暂时无法响应，请稍后再试。您的数据未丢失。",
        "A department did not answer; please try again shortly. Nothing was lost.",
    ),
    "too_large": (
        "上传的文件过大，请分开上传或压缩后再试。",
        "The files sent are too large; send fewer or smaller.",
    ),
    "not_found": ("未找到。", "Not found."),
    "back": ("返回", "Back"),
    "queue": ("本大厅办件", "This hall's cases"),
    "all_states": ("全部状态", "All states"),
    "filter": ("筛选", "Filter"),
    "open_for_person": ("为现场办事群众受理", "Open a case for the person present"),
    "materials_checked": ("核验现场材料", "Materials checked at the window"),
    "mark_checked": ("记录已核验", "Record as checked"),
    "checked_on": ("核验日期", "checked on"),
    "pickup": ("领证交付", "Hand over at pickup"),
    "old_card_surrendered": ("已交回旧证", "Old card surrendered"),
    "hand_over": ("确认交付", "Hand over"),
    "handed_over": ("已交付。", "Handed over."),
    "not_ready": ("证件尚未全部制作完成，暂不能交付。", "Not every certificate is ready yet."),
    "pending_steps": ("待审批环节", "Steps waiting for a decision"),
    "approve": ("批准", "Approve"),
    "reject": ("不予批准", "Reject"),
    "produced": ("证件已制作", "Card produced"),
    "ready-for-pickup": ("可领取", "Ready for pickup"),
    "issue": ("签发证件", "Issue the permit"),
    "reject_reasons": (
        "不予批准的理由（每行一条，申请人可见）",
        "Reasons (one a line; the applicant reads them)",
    ),
    "decided": ("已提交决定：{case} {step} {decision}。", "Decision sent: {case} {step} {decision}."),
    "no_steps": ("没有待处理的环节。", "No steps waiting."),
    "step": ("环节", "Step"),
    "choose": ("请选择", "Choose"),
    "yes": ("是", "yes"),
    "applicant": ("申请人信息", "Applicant"),
    "notifications": ("办理通知", "Messages"),
    "rated": ("感谢您的评价。", "Thank you for your rating."),
    "withdrawn": ("已撤回。", "Withdrawn."),
    "withdrawing": (
        "已申请撤回，相关部门正在撤销。",
        "Withdrawal under way: the departments are cancelling.",
    ),
    "state_RECEIVED": ("已接收", "Received"),
    "state_IN_REVIEW": ("审核中", "In review"),
    "state_AWAITING_APPLICANT": ("待补正", "Waiting for you"),
    "state_APPROVED": ("已批准", "Approved"),
    "state_READY_FOR_PICKUP": ("待领取", "Ready for pickup"),
    "state_COMPLETED": ("已办结", "Completed"),
    "state_REJECTED": ("不予批准", "Rejected"),
    "state_WITHDRAWING": ("撤回中（部门正在撤销）", "Being withdrawn (departments are cancelling)"),
    "state_WITHDRAWN": ("已撤回", "Withdrawn"),
    "state_NEEDS_ATTENTION": ("处理中（工作人员已介入）", "Being handled (staff alerted)"),
    "step_PENDING": ("待办", "Waiting"),
    "step_RUNNING": ("提交中", "Being sent"),
    "step_ACCEPTED": ("部门已受理", "Accepted by the department"),
    "step_APPROVED": ("已批准", "Approved"),
    "step_READY": ("可领取", "Ready"),
    "step_DONE": ("已完成", "Done"),
    "step_REFUSED": ("不予批准", "Refused"),
    "step_SKIPPED": ("无需办理", "Not needed"),
    "step_CANCELLED": ("已取消", "Cancelled"),
    "step_NEEDS_ATTENTION": ("处理中（工作人员已介入）", "Being handled (staff alerted)"),
    "card_VALID": ("有效", "Valid"),
    "card_REPORTED_LOST": ("已挂失", "Reported lost"),
    "card_EXPIRED": ("已过期", "Expired"),
    "card_SUPERSEDED": ("已换发新证", "Replaced by a newer card"),
    "card_INVALIDATED": ("已作废", "Invalidated"),
    "found_AWAITING_OWNER": ("待认领", "Waiting for its owner"),
    "found_DESTROYED": ("已销毁", "Destroyed"),
    "found_RETURNED": ("已归还", "Returned"),
    "outcome_allowed": ("已允许", "allowed"),
    "outcome_denied": ("已拒绝", "denied"),
    "outcome_failed": ("未成功", "failed"),
    "access_log_hint": (
        "各部门和“一网通办”在查看或处理您的信息时都会留下记录；这里列出机构和事由，不显示工作人员个人信息。",
        "Every department and the one window record each look at your data; listed here by organisation and "
        "purpose, never by staff member.",
    ),
    "results": ("办理结果", "Results"),
    "rejection_reasons": ("不予批准的理由", "Reasons for the rejection"),
    "result_id_number": ("分配的公民身份号码", "ID number assigned"),
    "result_registration_number": ("登记编号", "Registration number"),
    "result_certificate_number": ("证明编号", "Certificate number"),
    "result_household_number": ("户号", "Household number"),
    "result_late": ("逾期申报", "Registered late"),
    "result_fee_fen": ("费用", "Fee"),
    "result_loss_report": ("原证挂失", "Old card reported lost"),
    "result_card_number": ("证件号", "Card number"),
    "result_ready_on": ("可领取日期", "Ready for pickup from"),
    "result_collect_at_region_code": ("领取地点", "Collect at"),
    "result_valid_from": ("有效期自", "Valid from"),
    "result_valid_until": ("有效期至", "Valid until"),
    "result_category": ("类别", "Category"),
    "result_permit_number": ("证件号码", "Permit number"),
    "result_cancellation_cause": ("注销原因", "Cause of cancellation"),
    "no": ("否", "no"),
    "reported_on": ("{d} 挂失", "reported on {d}"),
    "loss_report_withdrawn": ("挂失已撤销", "the loss report was withdrawn"),
    "reason_REJECTED_BY_DEPARTMENT": ("主管部门不予批准", "Rejected by the department"),
    "reason_CANCELLED_BY_DEPARTMENT": ("主管部门已取消", "Cancelled by the department"),
    "reason_WITHDRAWN_BY_APPLICANT": ("申请人已撤回", "Withdrawn by the applicant"),
    "reason_DEPARTMENT_UNAVAILABLE": ("暂时无法联系主管部门", "The department could not be reached"),
    "reason_UNDO_REFUSED": ("主管部门未能撤销此环节", "The department could not undo this step"),
    "next_step": ("下一步", "What to do next"),
    "bring_originals": (
        "请携带以下原件和本回执到 {hall} 服务大厅窗口，由工作人员核验：",
        "Bring these originals and this receipt to the {hall} service hall, where the counter checks them:",
    ),
    "bring_originals_any": (
        "请携带以下原件和本回执到服务大厅窗口，由工作人员核验：",
        "Bring these originals and this receipt to a service hall, where the counter checks them:",
    ),
    "ready_pickup_at": (
        "请携带回执到 {hall} 服务大厅领取。",
        "Collect it at the {hall} service hall with the receipt.",
    ),
}

# The API's field-error reasons a person reads beside the field; others show the API's own description.
REASONS: dict[str, tuple[str, str]] = {
    "REQUIRED": ("此项必填。", "This is required."),
    "BAD_LENGTH": ("身份号码应为 18 位。", "An ID number has 18 characters."),
    "BAD_CHARACTERS": ("身份号码只能是数字，末位可为 X。", "Only digits, and an X as the last character."),
    "BAD_CHECK_DIGIT": (
        "身份号码末位校验码不正确，请核对。",
        "The last character does not match the check digit; check the number.",
    ),
    "UNKNOWN_ADDRESS_CODE": (
        "身份号码前 6 位不是有效的行政区划代码。",
        "The first six digits are no county code.",
    ),
    "IMPOSSIBLE_DATE": ("身份号码中的出生日期不存在。", "The birth date in the number does not exist."),
    "FUTURE_BIRTH_DATE": ("身份号码中的出生日期晚于今天。", "The birth date in the number is in the future."),
    "NOT_A_DATE": ("请填写日期（年-月-日）。", "Enter a date (YYYY-MM-DD)."),
    "NOT_A_DATETIME": ("请填写日期和时间。", "Enter a date and a time."),
    "NOT_A_REGION_CODE": ("请填写 6 位行政区划代码。", "Enter a six-digit region code."),
    "NOT_AN_INTEGER": ("请填写整数。", "Enter a whole number."),
    "TOO_LONG": ("内容过长。", "This is too long."),
    "NOT_A_PHONE_NUMBER": ("请填写 6 至 15 位电话号码。", "Enter a phone number of 6 to 15 digits."),
    "NOT_AN_EMAIL": ("请填写有效的电子邮箱。", "Enter an e-mail address (name@example.org)."),
    "NOT_UPLOADED": ("文件未上传成功，请重新选择。", "The file did not arrive; choose it again."),
    "TYPE_NOT_ALLOWED": ("只接受 PDF、JPEG 或 PNG 文件。", "Only PDF, JPEG or PNG files are accepted."),
    # a department's refusal about one submitted field (the API names the field)
    "RESIDENCE_PERMIT_REQUIRED": (
        "须持有效的上海市居住证。",
        "A valid Shanghai residence permit is required.",
    ),
    "RESIDENCE_PERMIT_EXPIRED": (
        "居住证已过有效期，请核对有效期限。",
        "The residence permit has expired; check its valid-until date.",
    ),
    "RENEWAL_REASON_REQUIRED": ("请选择换领原因。", "Choose why the card is renewed."),
    "FEE_REDUCTION_NOT_APPLICABLE": ("此项减免不适用于本申请。", "This reduction does not apply here."),
    "HUKOU_RECORD_NOT_FOUND": ("户籍登记中没有此身份号码。", "The household register has no such ID number."),
    "HUKOU_NAME_MISMATCH": ("姓名与户籍登记不一致。", "The name differs from the household register's."),
    "CROSS_PROVINCE_NOT_OFFERED_HERE": (
        "此地不受理外省户籍居民的申请。",
        "Applications from other provinces are not accepted here.",
    ),
    "NOT_AT_HUKOU_STATION": (
        "临时身份证须在户籍所在地派出所办理。",
        "A temporary card is issued at the hukou police station.",
    ),
    "NOT_THE_TOKEN_HOLDER": (
        "在线只能为本人申请；为他人办理请到服务大厅窗口。",
        "Online you may apply only for yourself; for someone else, come to a service hall.",
    ),
}


def reason_text(lang: str, reason: str, description: str) -> str:
    pair = REASONS.get(reason)
    if pair is not None:
        return pair[1] if lang == "en" else pair[0]
    return description or reason


def reason_words(lang: str, code: str) -> str:
    """A case's or step's reason code in words where the pages know it, else the code itself."""
    return translate(lang, f"reason_{code}") if f"reason_{code}" in WORDS else code


def result_text(lang: str, key: str, value: object) -> str:
    """One of a step's results (``results`` in the API's case view) as a person reads it."""
    if key == "fee_fen" and isinstance(value, int):
        return f"¥{value / 100:.2f}" if value else translate(lang, "free")
    if isinstance(value, bool):
        return translate(lang, "yes" if value else "no")
    if key.endswith("region_code") and isinstance(value, str):
        return place(lang, value)
    if key == "loss_report" and isinstance(value, dict):
        if value.get("withdrawn"):
            return translate(lang, "loss_report_withdrawn")
        on = value.get("reported_on")
        return translate(lang, "reported_on", d=on) if on else translate(lang, "yes")
    return str(value)


def place(lang: str, code: str) -> str:
    """A region code with its name (gateway/regions.toml), or the code alone where it has none."""
    name = region_name(code, lang)
    if name == code:
        return code
    return f"{name} ({code})" if lang == "en" else f"{name}（{code}）"


def translate(lang: str, key: str, **values: object) -> str:
    pair = WORDS.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**values) if values else text
