//! The console's languages: English (the default, and the key of every text) and Simplified
//! Chinese (zh-CN), chosen per browser by the `warden_lang` cookie that `/lang/{code}` sets.
//!
//! A text is looked up by its English wording, so templates stay readable and a text without
//! a translation falls back to English rather than to a key. The Chinese vocabulary is the
//! seed document's (客户, 角色, 审批, 相关团队, 访问日志 …).

use axum::extract::Path;
use axum::http::header::{REFERER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use super::see_other;
use crate::auth::cookie_value;

/// The language cookie: a preference of the browser, not a secret (no server state changes
/// when it is set, so the switch is a plain link).
pub(crate) const LANG_COOKIE: &str = "warden_lang";

/// A language of the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Lang {
    #[default]
    En,
    ZhCn,
}

impl Lang {
    /// The language a request asks for through its cookie (English without one).
    pub fn of(headers: &HeaderMap) -> Lang {
        match cookie_value(headers, LANG_COOKIE).as_deref() {
            Some("zh-CN") => Lang::ZhCn,
            _ => Lang::En,
        }
    }

    /// The BCP 47 tag, for `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }
}

/// `english` in `lang`: its translation, or itself when there is none.
pub(crate) fn t(lang: Lang, english: &str) -> &str {
    match lang {
        Lang::En => english,
        Lang::ZhCn => zh(english).unwrap_or(english),
    }
}

/// The Simplified Chinese of an English text of the console.
fn zh(english: &str) -> Option<&'static str> {
    Some(match english {
        // Navigation and the page frame.
        "Dashboard" => "概览",
        "Customers" => "客户",
        "Approvals" => "审批",
        "Access reviews" => "权限审查",
        "Organisation" => "组织架构",
        "Roles" => "角色",
        "Sharing rules" => "共享规则",
        "Restrictions" => "限制规则",
        "Access rules" => "访问控制",
        "Access log" => "访问日志",
        "Signed in as" => "当前用户",
        "Sign out" => "退出",
        "Menu" => "菜单",
        "Language" => "语言",
        // Login.
        "Sign in" => "登录",
        "Username" => "用户名",
        "Password" => "密码",
        "Code" => "验证码",
        "Verify" => "验证",
        "Your account has a second factor. Enter the current code of your authenticator app (or one of your recovery codes)." => {
            "您的账户启用了多因素认证。请输入身份验证器应用中的当前验证码（或一个恢复码）。"
        }
        // Customers list and record.
        "New customer" => "新建客户",
        "Field" => "字段",
        "(any)" => "（任意）",
        "equals" => "等于",
        "Filter" => "筛选",
        "Clear" => "清除",
        "owner" => "负责人",
        "unit" => "部门",
        "masked" => "已脱敏",
        "No customers you may see match." => "没有您可查看的匹配客户。",
        "« First page" => "« 第一页",
        "Next page »" => "下一页 »",
        "« Customers" => "« 客户",
        "Fields" => "字段",
        "Edit" => "编辑",
        "Save" => "保存",
        "Reveal (logged)" => "显示完整值（记录日志）",
        "read-only" => "只读",
        "Why can I see this?" => "为什么我能看到这条记录？",
        "Only the fields you may change are offered. Some changes wait for an approver." => {
            "只列出您有权修改的字段。部分修改需要经过上级审批。"
        }
        "Shares and team" => "共享与相关团队",
        "Customer" => "客户",
        "version" => "版本",
        "updated" => "更新于",
        // Field names of customers.
        "name" => "名称",
        "email" => "邮箱",
        "phone" => "电话",
        "industry" => "行业",
        "region" => "地区",
        "status" => "状态",
        "credit_limit" => "信用额度",
        "bank_account" => "银行账户",
        "vip" => "重点客户",
        // Approvals.
        "Inbox" => "待我审批",
        "My requests" => "我的申请",
        "All" => "全部",
        "Policies" => "审批流程",
        "State" => "状态",
        "any" => "任意",
        "pending" => "待审批",
        "applied" => "已执行",
        "rejected" => "已拒绝",
        "conflict" => "冲突",
        "expired" => "已过期",
        "withdrawn" => "已撤回",
        "request" => "申请",
        "by" => "申请人",
        "approvers" => "审批人",
        "state" => "状态",
        "since" => "提交于",
        "record" => "记录",
        "Nothing here." => "暂无内容。",
        "More »" => "更多 »",
        "« Approvals" => "« 审批",
        "Request" => "申请",
        "operation" => "操作",
        "requested by" => "申请人",
        "deadline" => "截止时间",
        "reason" => "原因",
        "Proposed values" => "拟修改的值",
        "Steps" => "审批步骤",
        "Your decision" => "您的决定",
        "Comment (optional)" => "备注（可选）",
        "Approve" => "批准",
        "Reject" => "拒绝",
        "Withdraw my request" => "撤回我的申请",
        "History" => "历史",
        "Approval policies" => "审批流程",
        "New approval policy" => "新建审批流程",
        _ => return None,
    })
}

/// `GET /lang/{code}`: remembers the language in a cookie (a year) and goes back to the page
/// the switch was clicked on; only a path of this site is followed back, never another site.
pub(super) async fn switch(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let lang = if code == "zh-CN" { "zh-CN" } else { "en" };
    let back = headers
        .get(REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| reqwest::Url::parse(r).ok())
        .map(|url| match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .unwrap_or_else(|| "/".to_owned());
    let mut response = see_other(&back);
    let cookie = format!("{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Strict");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_its_own_key_and_chinese_falls_back_to_it() {
        assert_eq!(t(Lang::En, "Customers"), "Customers");
        assert_eq!(t(Lang::ZhCn, "Customers"), "客户");
        assert_eq!(t(Lang::ZhCn, "Shares and team"), "共享与相关团队");
        assert_eq!(t(Lang::ZhCn, "not translated"), "not translated");
    }

    #[test]
    fn the_cookie_chooses_the_language() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::of(&headers), Lang::En);
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_static("a=b; warden_lang=zh-CN"),
        );
        assert_eq!(Lang::of(&headers), Lang::ZhCn);
    }
}
