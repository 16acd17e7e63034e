//! Access rules: from where (IP allow-lists) and when (login hours, in a time zone) a user may
//! work, and whether a second factor is required. Rules attach to roles and to users; a user
//! passes when every rule that applies to them allows.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

use crate::Timestamp;

/// One set of access rules (of a role or of a user). Every part is optional: an empty
/// allow-list allows every address, no login hours allow every time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessRules {
    /// Client addresses allowed; empty means any.
    pub ip_allow: Vec<IpNet>,
    /// When the user may work; `None` means always.
    pub login_hours: Option<LoginHours>,
    /// Whether the user must have a second factor.
    pub mfa_required: bool,
}

/// A weekly window in a time zone: on `days`, from `from` (inclusive) to `to` (exclusive),
/// in minutes after local midnight. A window with `to <= from` runs past midnight into the
/// next day; `days` names the day it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginHours {
    pub time_zone: TimeZone,
    /// Bit `n` set: allowed on day `n`, Monday = 0 … Sunday = 6.
    pub days: u8,
    pub from: u16,
    pub to: u16,
}

/// Why access is refused now, from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDenial {
    /// The client address is outside an allow-list that applies.
    IpNotAllowed,
    /// It is outside login hours that apply.
    OutsideLoginHours,
    /// A rule requires a second factor and the user has none.
    MfaRequired,
}

impl AccessDenial {
    /// The stable error code of the API.
    pub fn code(self) -> &'static str {
        match self {
            AccessDenial::IpNotAllowed => "ip_not_allowed",
            AccessDenial::OutsideLoginHours => "outside_login_hours",
            AccessDenial::MfaRequired => "mfa_required",
        }
    }
}

/// Monday = 0 … Sunday = 6.
pub fn day_index(day: Weekday) -> u8 {
    (day.to_monday_zero_offset()) as u8
}

impl LoginHours {
    /// Whether the instant `now` (ms since the epoch) falls in the window.
    pub fn allows(&self, now: Timestamp) -> bool {
        let Ok(instant) = jiff::Timestamp::from_millisecond(now) else {
            return false;
        };
        let local = instant.to_zoned(self.time_zone.clone());
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        let today = day_index(local.weekday());
        let yesterday = (today + 6) % 7;
        let on = |day: u8| self.days & (1 << day) != 0;
        if self.from < self.to {
            on(today) && self.from <= minute && minute < self.to
        } else {
            // Past midnight: the evening part belongs to today's window, the morning part to
            // yesterday's.
            (on(today) && minute >= self.from) || (on(yesterday) && minute < self.to)
        }
    }
}

impl AccessRules {
    /// Whether these rules allow a request from `client` at `now`, for a user who has (or
    /// has not) a second factor.
    pub fn check(&self, client: IpAddr, now: Timestamp, has_mfa: bool) -> Result<(), AccessDenial> {
        if !self.ip_allow.is_empty() && !self.ip_allow.iter().any(|net| net.contains(&client)) {
            return Err(AccessDenial::IpNotAllowed);
        }
        if let Some(hours) = &self.login_hours {
            if !hours.allows(now) {
                return Err(AccessDenial::OutsideLoginHours);
            }
        }
        if self.mfa_required && !has_mfa {
            return Err(AccessDenial::MfaRequired);
        }
        Ok(())
    }
}

/// Every rule must allow; the first refusal (in the order given) is reported. Address and
/// time refusals take precedence over a missing second factor, so that a user outside their
/// network is not invited to enrol one.
pub fn check_all<'a>(
    rules: impl IntoIterator<Item = &'a AccessRules> + Clone,
    client: IpAddr,
    now: Timestamp,
    has_mfa: bool,
) -> Result<(), AccessDenial> {
    for rule in rules.clone() {
        rule.check(client, now, true)?;
    }
    for rule in rules {
        rule.check(client, now, has_mfa)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai_office_hours() -> LoginHours {
        LoginHours {
            time_zone: jiff::tz::db().get("Asia/Shanghai").expect("bundled"),
            days: 0b001_1111,
            from: 9 * 60,
            to: 18 * 60,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse::<jiff::Timestamp>()
            .expect("a time")
            .as_millisecond()
    }

    #[test]
    fn login_hours_follow_the_time_zone() {
        let hours = shanghai_office_hours();
        // 2026-11-30 is a Monday. 01:00 UTC is 09:00 in Shanghai.
        assert!(hours.allows(at("2026-11-30T01:00:00Z")));
        assert!(!hours.allows(at("2026-11-30T00:59:59Z")));
        assert!(hours.allows(at("2026-11-30T09:59:59Z")));
        assert!(
            !hours.allows(at("2026-11-30T10:00:00Z")),
            "18:00 is the end, exclusive"
        );
        // Saturday in Shanghai (Friday evening UTC).
        assert!(!hours.allows(at("2026-12-05T02:00:00Z")));
    }

    #[test]
    fn a_night_window_runs_past_midnight() {
        let night = LoginHours {
            time_zone: TimeZone::UTC,
            days: 1, // Monday only
            from: 22 * 60,
            to: 6 * 60,
        };
        assert!(night.allows(at("2026-11-30T23:00:00Z")), "Monday night");
        assert!(
            night.allows(at("2026-12-01T05:59:00Z")),
            "Tuesday morning belongs to Monday's window"
        );
        assert!(!night.allows(at("2026-12-01T23:00:00Z")), "Tuesday night");
        assert!(
            !night.allows(at("2026-11-30T05:00:00Z")),
            "Monday morning belongs to Sunday's window"
        );
    }

    #[test]
    fn rules_combine_by_all() {
        let office: IpAddr = "203.0.113.7".parse().expect("ip");
        let home: IpAddr = "198.51.100.1".parse().expect("ip");
        let ip_rule = AccessRules {
            ip_allow: vec!["203.0.113.0/24".parse().expect("net")],
            ..Default::default()
        };
        let mfa_rule = AccessRules {
            mfa_required: true,
            ..Default::default()
        };
        let open = AccessRules::default();
        let now = at("2026-11-30T03:00:00Z");
        assert_eq!(check_all([&open], home, now, false), Ok(()));
        assert_eq!(
            check_all([&open, &ip_rule], home, now, true),
            Err(AccessDenial::IpNotAllowed)
        );
        assert_eq!(check_all([&open, &ip_rule], office, now, false), Ok(()));
        assert_eq!(
            check_all([&mfa_rule, &ip_rule], home, now, false),
            Err(AccessDenial::IpNotAllowed),
            "address before factor"
        );
        assert_eq!(
            check_all([&mfa_rule, &ip_rule], office, now, false),
            Err(AccessDenial::MfaRequired)
        );
        assert_eq!(check_all([&mfa_rule, &ip_rule], office, now, true), Ok(()));
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(
            ip_rule.check(v6, now, true),
            Err(AccessDenial::IpNotAllowed)
        );
    }
}
