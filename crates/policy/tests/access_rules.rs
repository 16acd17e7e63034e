//! Property tests of access rules (`warden_policy::access`) against a plain reference:
//! random allow-lists (IPv4 and IPv6, /0 to full length, host bits set or not), random login
//! hours in random time zones (windows past midnight, `24:00`, any set of days), random
//! second-factor requirements, random client addresses and instants.
//!
//! - `check_all` allows exactly when every rule's conditions hold; its refusal is the first
//!   rule's address or time refusal (address before time within a rule), and only when there
//!   is none, `MfaRequired`.
//! - `Snapshot::access_check` applies the user's own rules and those of their ACTIVE roles
//!   only: an expired assignment's rules do not count.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use jiff::tz::{Offset, TimeZone};
use proptest::prelude::*;
use proptest::sample::Index;
use warden_policy::access::{check_all, AccessDenial, AccessRules, LoginHours};
use warden_policy::{
    AccessOwner, Model, RoleAssignment, RoleDef, RoleId, Snapshot, Timestamp, UnitDef, UnitId,
    UserDef, UserId,
};

// ---------------------------------------------------------------------------------------------
// The reference

/// Whether `net` contains `addr`: the first `prefix` bits agree (host bits of `net` ignored).
/// An address of the other family is never contained.
fn reference_in_net(net: &IpNet, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpNet::V4(net), IpAddr::V4(addr)) => {
            let p = u32::from(net.prefix_len());
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(net.addr()) & mask == u32::from(addr) & mask
        }
        (IpNet::V6(net), IpAddr::V6(addr)) => {
            let p = u32::from(net.prefix_len());
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(net.addr()) & mask == u128::from(addr) & mask
        }
        _ => false,
    }
}

fn reference_address_ok(rules: &AccessRules, client: IpAddr) -> bool {
    rules.ip_allow.is_empty() || rules.ip_allow.iter().any(|n| reference_in_net(n, client))
}

const MINUTES_PER_DAY: i64 = 24 * 60;
const MINUTES_PER_WEEK: i64 = 7 * MINUTES_PER_DAY;

/// Whether `now` is in the weekly window, as access.rs documents it: on each day of `days`
/// (bit 0 = Monday), local wall-clock time, a window opens at `from` and lasts until `to`
/// (exclusive); with `to <= from` it runs past midnight into the next day. Measured on the
/// week of local wall-clock minutes, wrapping from Sunday night to Monday morning.
fn reference_in_hours(hours: &LoginHours, now: Timestamp) -> bool {
    let Ok(instant) = jiff::Timestamp::from_millisecond(now) else {
        return false;
    };
    let local = instant.to_zoned(hours.time_zone.clone());
    let weekday = i64::from(local.weekday().to_monday_one_offset()) - 1;
    let minute_of_week =
        weekday * MINUTES_PER_DAY + i64::from(local.hour()) * 60 + i64::from(local.minute());
    let (from, to) = (i64::from(hours.from), i64::from(hours.to));
    let length = if to > from {
        to - from
    } else {
        MINUTES_PER_DAY - from + to
    };
    (0..7).filter(|d| hours.days & (1 << d) != 0).any(|day| {
        let opens = day * MINUTES_PER_DAY + from;
        (minute_of_week - opens).rem_euclid(MINUTES_PER_WEEK) < length
    })
}

fn reference_time_ok(rules: &AccessRules, now: Timestamp) -> bool {
    rules
        .login_hours
        .as_ref()
        .is_none_or(|hours| reference_in_hours(hours, now))
}

fn reference_mfa_ok(rules: &AccessRules, has_mfa: bool) -> bool {
    has_mfa || !rules.mfa_required
}

/// `check_all` as documented: the first address or time refusal in the order given (address
/// before time within one rule), else a missing second factor, else allowed.
fn reference_check_all(
    rules: &[&AccessRules],
    client: IpAddr,
    now: Timestamp,
    has_mfa: bool,
) -> Result<(), AccessDenial> {
    for rule in rules {
        if !reference_address_ok(rule, client) {
            return Err(AccessDenial::IpNotAllowed);
        }
        if !reference_time_ok(rule, now) {
            return Err(AccessDenial::OutsideLoginHours);
        }
    }
    if rules.iter().any(|rule| !reference_mfa_ok(rule, has_mfa)) {
        return Err(AccessDenial::MfaRequired);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Time zones with DST, without, with half- and quarter-hour offsets, and the date line.
const ZONES: &[&str] = &[
    "UTC",
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "America/St_Johns",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "America/Santiago",
];

fn zone_strategy() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        3 => prop::sample::select(ZONES).prop_map(|name| jiff::tz::db().get(name).unwrap()),
        1 => (-(14 * 60)..=(14 * 60)).prop_map(|minutes: i32| {
            TimeZone::fixed(Offset::from_seconds(minutes * 60).unwrap())
        }),
    ]
}

/// Minutes after midnight, 0 to 24:00 inclusive, often on the hour or at the extremes.
fn clock_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(1440u16),
        (0u16..=24).prop_map(|h| h * 60),
        0u16..=1440,
    ]
}

fn hours_strategy() -> impl Strategy<Value = LoginHours> {
    (
        zone_strategy(),
        prop_oneof![Just(0x7fu8), Just(0x1fu8), any::<u8>()],
        clock_strategy(),
        clock_strategy(),
    )
        .prop_map(|(time_zone, days, from, to)| LoginHours {
            time_zone,
            days,
            from,
            to,
        })
}

/// An instant from 1900 to 2200 (DST rules change over that span), often near 2026.
fn instant_strategy() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        -2_208_988_800_000i64..7_258_118_400_000i64,
        1_767_225_600_000i64..1_798_761_600_000i64,
    ]
}

/// A prefix length: 0, the full length, or any.
#[derive(Debug, Clone, Copy)]
enum Prefix {
    Zero,
    Full,
    Any(u8),
}

impl Prefix {
    fn of(self, bits: u8) -> u8 {
        match self {
            Prefix::Zero => 0,
            Prefix::Full => bits,
            Prefix::Any(p) => p % (bits + 1),
        }
    }
}

fn prefix_strategy() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        Just(Prefix::Zero),
        Just(Prefix::Full),
        any::<u8>().prop_map(Prefix::Any),
    ]
}

/// Flips random bits of `addr` below the top `keep` bits.
fn perturb(addr: IpAddr, keep: Prefix, noise: u128) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::from(keep.of(32));
            let low = u32::MAX.checked_shr(keep).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (noise as u32 & low)))
        }
        IpAddr::V6(a) => {
            let keep = u32::from(keep.of(128));
            let low = u128::MAX.checked_shr(keep).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ (noise & low)))
        }
    }
}

/// A few base addresses that nets and clients are drawn around, so that matches are common.
fn bases_strategy() -> impl Strategy<Value = Vec<IpAddr>> {
    proptest::collection::vec(
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ],
        1..4,
    )
}

/// A net around one of the bases; host bits are sometimes set (the engine must ignore them).
#[derive(Debug, Clone)]
struct NetSpec {
    base: Index,
    prefix: Prefix,
    host_noise: Option<u128>,
}

impl NetSpec {
    fn build(&self, bases: &[IpAddr]) -> IpNet {
        let base = bases[self.base.index(bases.len())];
        let (bits, addr) = match base {
            IpAddr::V4(_) => (32, base),
            IpAddr::V6(_) => (128, base),
        };
        let prefix = self.prefix.of(bits);
        let addr = match self.host_noise {
            Some(noise) => perturb(addr, Prefix::Any(prefix), noise),
            None => addr,
        };
        match addr {
            IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, prefix).unwrap()),
            IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, prefix).unwrap()),
        }
    }
}

fn net_strategy() -> impl Strategy<Value = NetSpec> {
    (
        any::<Index>(),
        prefix_strategy(),
        proptest::option::of(any::<u128>()),
    )
        .prop_map(|(base, prefix, host_noise)| NetSpec {
            base,
            prefix,
            host_noise,
        })
}

/// One set of rules, its nets still to be placed around the bases.
#[derive(Debug, Clone)]
struct RulesSpec {
    ip_allow: Vec<NetSpec>,
    login_hours: Option<LoginHours>,
    mfa_required: bool,
}

impl RulesSpec {
    fn build(&self, bases: &[IpAddr]) -> AccessRules {
        AccessRules {
            ip_allow: self.ip_allow.iter().map(|n| n.build(bases)).collect(),
            login_hours: self.login_hours.clone(),
            mfa_required: self.mfa_required,
        }
    }
}

fn rules_strategy() -> impl Strategy<Value = RulesSpec> {
    (
        prop_oneof![
            1 => Just(Vec::new()),
            2 => proptest::collection::vec(net_strategy(), 1..4),
        ],
        proptest::option::weighted(0.5, hours_strategy()),
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(ip_allow, login_hours, mfa_required)| RulesSpec {
            ip_allow,
            login_hours,
            mfa_required,
        })
}

/// The client: near a base, the IPv4-mapped IPv6 form of a base, or anywhere.
#[derive(Debug, Clone)]
enum ClientSpec {
    Near(Index, Prefix, u128),
    Mapped(Index),
    Anywhere(IpAddr),
}

impl ClientSpec {
    fn build(&self, bases: &[IpAddr]) -> IpAddr {
        match self {
            ClientSpec::Near(base, keep, noise) => {
                perturb(bases[base.index(bases.len())], *keep, *noise)
            }
            ClientSpec::Mapped(base) => match bases[base.index(bases.len())] {
                IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
                v6 => v6,
            },
            ClientSpec::Anywhere(a) => *a,
        }
    }
}

fn client_strategy() -> impl Strategy<Value = ClientSpec> {
    prop_oneof![
        4 => (any::<Index>(), prefix_strategy(), any::<u128>())
            .prop_map(|(b, k, n)| ClientSpec::Near(b, k, n)),
        1 => any::<Index>().prop_map(ClientSpec::Mapped),
        1 => any::<IpAddr>().prop_map(ClientSpec::Anywhere),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    rules: Vec<AccessRules>,
    client: IpAddr,
    now: Timestamp,
    has_mfa: bool,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        bases_strategy(),
        proptest::collection::vec(rules_strategy(), 0..5),
        client_strategy(),
        instant_strategy(),
        any::<bool>(),
    )
        .prop_map(|(bases, rules, client, now, has_mfa)| Case {
            rules: rules.iter().map(|r| r.build(&bases)).collect(),
            client: client.build(&bases),
            now,
            has_mfa,
        })
}

// ---------------------------------------------------------------------------------------------
// Properties of `check_all`

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn check_all_agrees_with_the_reference(case in case_strategy()) {
        let Case { rules, client, now, has_mfa } = &case;
        let (client, now, has_mfa) = (*client, *now, *has_mfa);
        for rule in rules {
            if let Some(hours) = &rule.login_hours {
                prop_assert_eq!(
                    hours.allows(now),
                    reference_in_hours(hours, now),
                    "LoginHours::allows of {:?} at {}",
                    hours,
                    jiff::Timestamp::from_millisecond(now).unwrap().to_zoned(hours.time_zone.clone())
                );
            }
            for net in &rule.ip_allow {
                prop_assert_eq!(net.contains(&client), reference_in_net(net, client), "{} in {}", client, net);
            }
        }

        let actual = check_all(rules, client, now, has_mfa);
        let every_rule_holds = rules.iter().all(|r| {
            reference_address_ok(r, client) && reference_time_ok(r, now) && reference_mfa_ok(r, has_mfa)
        });
        prop_assert_eq!(actual.is_ok(), every_rule_holds, "allowed exactly when every rule holds");
        let place_or_time_refused = rules
            .iter()
            .any(|r| !reference_address_ok(r, client) || !reference_time_ok(r, now));
        if place_or_time_refused {
            prop_assert_ne!(actual, Err(AccessDenial::MfaRequired), "address and time before the factor");
        }
        let refs: Vec<&AccessRules> = rules.iter().collect();
        prop_assert_eq!(actual, reference_check_all(&refs, client, now, has_mfa));

        // Whether it allows does not depend on the order of the rules.
        let reversed: Vec<&AccessRules> = rules.iter().rev().collect();
        prop_assert_eq!(check_all(reversed, client, now, has_mfa).is_ok(), actual.is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// `Snapshot::access_check`: the user's rules and their active roles' rules

const UNIT: UnitId = UnitId(1);

fn role_id(i: usize) -> RoleId {
    RoleId(i as i64 * 5 + 3)
}

fn user_id(i: usize) -> UserId {
    UserId(i as i64 * 7 + 2)
}

#[derive(Debug, Clone)]
struct UserSpec {
    rules: Option<RulesSpec>,
    /// Role (by index) and expiry relative to now (`None`: never).
    roles: Vec<(Index, Option<i64>)>,
    has_mfa: bool,
    disabled: bool,
}

#[derive(Debug, Clone)]
struct Org {
    model: Model,
    client: IpAddr,
    now: Timestamp,
    /// Per user: the rules that apply (own first, then active roles) and whether they have MFA.
    expected: Vec<(UserId, Vec<AccessRules>, bool)>,
}

fn expiry_strategy() -> impl Strategy<Value = Option<i64>> {
    proptest::option::weighted(
        0.6,
        prop_oneof![Just(0i64), Just(1), Just(-1), -86_400_000i64..86_400_000],
    )
}

fn org_strategy() -> impl Strategy<Value = Org> {
    (
        bases_strategy(),
        proptest::collection::vec(proptest::option::weighted(0.7, rules_strategy()), 1..5),
        proptest::collection::vec(
            (
                proptest::option::weighted(0.3, rules_strategy()),
                proptest::collection::vec((any::<Index>(), expiry_strategy()), 0..4),
                any::<bool>(),
                proptest::bool::weighted(0.1),
            )
                .prop_map(|(rules, roles, has_mfa, disabled)| UserSpec {
                    rules,
                    roles,
                    has_mfa,
                    disabled,
                }),
            1..6,
        ),
        client_strategy(),
        instant_strategy(),
    )
        .prop_map(|(bases, role_rules, users, client, now)| {
            let role_rules: Vec<Option<AccessRules>> = role_rules
                .iter()
                .map(|r| r.as_ref().map(|r| r.build(&bases)))
                .collect();
            let mut model = Model {
                epoch: 1,
                units: vec![UnitDef {
                    id: UNIT,
                    name: "Unit".into(),
                    parent: None,
                }],
                ..Model::default()
            };
            for (i, rules) in role_rules.iter().enumerate() {
                model.roles.push(RoleDef {
                    id: role_id(i),
                    name: format!("role{i}"),
                    grants: Vec::new(),
                    permissions: Vec::new(),
                    fields: Vec::new(),
                });
                if let Some(rules) = rules {
                    model
                        .access_rules
                        .push((AccessOwner::Role(role_id(i)), rules.clone()));
                }
            }
            let mut expected = Vec::new();
            for (i, user) in users.iter().enumerate() {
                let assignments: Vec<(usize, Option<Timestamp>)> = user
                    .roles
                    .iter()
                    .map(|(role, expiry)| (role.index(role_rules.len()), expiry.map(|d| now + d)))
                    .collect();
                model.users.push(UserDef {
                    id: user_id(i),
                    username: format!("user{i}"),
                    unit: UNIT,
                    manager: None,
                    disabled: user.disabled,
                    portal_account: None,
                    roles: assignments
                        .iter()
                        .map(|(role, expires_at)| RoleAssignment {
                            role: role_id(*role),
                            expires_at: *expires_at,
                        })
                        .collect(),
                });
                let own = user.rules.as_ref().map(|r| r.build(&bases));
                if let Some(own) = &own {
                    model
                        .access_rules
                        .push((AccessOwner::User(user_id(i)), own.clone()));
                }
                if user.has_mfa {
                    model.mfa_enrolled.push(user_id(i));
                }
                // Active: no expiry, or expiring after now (the expiry itself is excluded).
                let applying: Vec<AccessRules> = own
                    .into_iter()
                    .chain(
                        assignments
                            .iter()
                            .filter(|(_, expires_at)| expires_at.is_none_or(|e| now < e))
                            .filter_map(|(role, _)| role_rules[*role].clone()),
                    )
                    .collect();
                expected.push((user_id(i), applying, user.has_mfa));
            }
            Org {
                model,
                client: client.build(&bases),
                now,
                expected,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn access_check_applies_own_and_active_role_rules_only(org in org_strategy()) {
        let snapshot = Snapshot::compile(&org.model).unwrap();
        for (user, applying, has_mfa) in &org.expected {
            let actual = snapshot.access_check(*user, org.client, org.now);
            let refs: Vec<&AccessRules> = applying.iter().collect();
            let expected = reference_check_all(&refs, org.client, org.now, *has_mfa);
            prop_assert_eq!(
                actual.is_ok(),
                expected.is_ok(),
                "{:?}: allowed exactly when every applying rule holds ({:?} vs {:?})",
                user,
                actual,
                expected
            );
            match actual {
                Ok(()) => {}
                Err(AccessDenial::MfaRequired) => prop_assert_eq!(expected, Err(AccessDenial::MfaRequired)),
                Err(AccessDenial::IpNotAllowed) => prop_assert!(
                    applying.iter().any(|r| !reference_address_ok(r, org.client)),
                    "{:?}: IpNotAllowed, but every applying allow-list admits {}", user, org.client
                ),
                Err(AccessDenial::OutsideLoginHours) => prop_assert!(
                    applying.iter().any(|r| !reference_time_ok(r, org.now)),
                    "{:?}: OutsideLoginHours, but every applying window is open", user
                ),
            }
            prop_assert_eq!(snapshot.has_mfa(*user), *has_mfa);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Examples

/// One user holding one role whose rule admits nobody from `client`, until `expires_at`.
fn one_user_one_role(expires_at: Option<Timestamp>) -> Snapshot {
    let model = Model {
        epoch: 1,
        units: vec![UnitDef {
            id: UNIT,
            name: "Unit".into(),
            parent: None,
        }],
        users: vec![UserDef {
            id: user_id(0),
            username: "user0".into(),
            unit: UNIT,
            manager: None,
            disabled: false,
            portal_account: None,
            roles: vec![RoleAssignment {
                role: role_id(0),
                expires_at,
            }],
        }],
        roles: vec![RoleDef {
            id: role_id(0),
            name: "office only".into(),
            grants: Vec::new(),
            permissions: Vec::new(),
            fields: vec![],
        }],
        access_rules: vec![(
            AccessOwner::Role(role_id(0)),
            AccessRules {
                ip_allow: vec!["203.0.113.0/24".parse().unwrap()],
                login_hours: None,
                mfa_required: true,
            },
        )],
        mfa_enrolled: Vec::new(),
        ..Model::default()
    };
    Snapshot::compile(&model).unwrap()
}

#[test]
fn an_expired_assignment_brings_no_rules() {
    let home: IpAddr = "198.51.100.1".parse().unwrap();
    let office: IpAddr = "203.0.113.9".parse().unwrap();
    let now: Timestamp = 1_764_000_000_000;
    let user = user_id(0);
    for expires_at in [None, Some(now + 1)] {
        let snapshot = one_user_one_role(expires_at);
        assert_eq!(
            snapshot.access_check(user, home, now),
            Err(AccessDenial::IpNotAllowed),
            "active until {expires_at:?}"
        );
        assert_eq!(
            snapshot.access_check(user, office, now),
            Err(AccessDenial::MfaRequired),
            "active until {expires_at:?}"
        );
    }
    for expires_at in [now, now - 1, 0] {
        let snapshot = one_user_one_role(Some(expires_at));
        assert_eq!(
            snapshot.access_check(user, home, now),
            Ok(()),
            "expired at {expires_at}: the role's rules must not apply"
        );
    }
}

#[test]
fn the_reference_reads_windows_as_documented() {
    let at = |text: &str| text.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    // Monday 22:00 to 06:00, UTC; 2026-11-30 is a Monday.
    let night = LoginHours {
        time_zone: TimeZone::UTC,
        days: 1,
        from: 22 * 60,
        to: 6 * 60,
    };
    assert!(reference_in_hours(&night, at("2026-11-30T23:00:00Z")));
    assert!(reference_in_hours(&night, at("2026-12-01T05:59:00Z")));
    assert!(!reference_in_hours(&night, at("2026-12-01T06:00:00Z")));
    assert!(!reference_in_hours(&night, at("2026-11-30T05:00:00Z")));
    // Sunday night into Monday morning wraps the week.
    let sunday_night = LoginHours {
        days: 1 << 6,
        ..night
    };
    assert!(reference_in_hours(
        &sunday_night,
        at("2026-11-30T01:00:00Z")
    ));
    assert!(!reference_in_hours(
        &sunday_night,
        at("2026-11-30T23:00:00Z")
    ));
}
