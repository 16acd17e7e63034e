//! The record schema: each object's fields, their kinds, limits and sensitivity, and the
//! validation of input values. One source of truth for the store (columns), the service
//! (validation) and, later, field-level security.

use crate::ObjectType;

/// A field value as the engine, the store and the service see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Text(String),
    Integer(i64),
    Bool(bool),
}

/// The kind of a field, with its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Free text of at most `max_len` characters.
    Text { max_len: usize },
    /// An e-mail address.
    Email,
    /// A whole number in `min..=max`.
    Integer { min: i64, max: i64 },
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// `true` or `false`.
    Bool,
}

/// One field of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The API name and the column name.
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// Financial or contractual data: encrypted at rest and hidden unless granted.
    pub sensitive: bool,
    /// Shown to portal users (external users of a customer account). Sensitive fields and
    /// internal notes never are.
    pub portal: bool,
}

/// An object's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSchema {
    pub object: ObjectType,
    /// The table (fixed, never from input).
    pub table: &'static str,
    /// Whether records belong to a customer (`customer_id`).
    pub has_customer: bool,
    pub fields: &'static [FieldDef],
}

/// Why a value does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    pub field: String,
    pub message: String,
}

const fn text(name: &'static str, max_len: usize) -> FieldDef {
    FieldDef {
        name,
        kind: FieldKind::Text { max_len },
        required: false,
        sensitive: false,
        portal: true,
    }
}

const fn required(mut field: FieldDef) -> FieldDef {
    field.required = true;
    field
}

const fn sensitive(mut field: FieldDef) -> FieldDef {
    field.sensitive = true;
    field.portal = false;
    field
}

/// A field for the organisation's own eyes: never shown to portal users.
const fn internal(mut field: FieldDef) -> FieldDef {
    field.portal = false;
    field
}

const fn of_kind(name: &'static str, kind: FieldKind) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: false,
        sensitive: false,
        portal: true,
    }
}

const MONEY: FieldKind = FieldKind::Integer {
    min: 0,
    max: 1_000_000_000_000,
};

const CUSTOMER_FIELDS: &[FieldDef] = &[
    required(text("name", 200)),
    of_kind("email", FieldKind::Email),
    text("phone", 40),
    text("industry", 80),
    text("region", 80),
    of_kind(
        "status",
        FieldKind::Choice(&["prospect", "active", "inactive"]),
    ),
    sensitive(of_kind("credit_limit", MONEY)),
    sensitive(text("bank_account", 64)),
    // A key account: restriction rules can keep it from everyone outside a role.
    internal(of_kind("vip", FieldKind::Bool)),
];

const CONTACT_FIELDS: &[FieldDef] = &[
    required(text("name", 200)),
    of_kind("email", FieldKind::Email),
    text("phone", 40),
    text("title", 120),
];

const DEAL_FIELDS: &[FieldDef] = &[
    required(text("name", 200)),
    of_kind("amount", MONEY),
    of_kind(
        "stage",
        FieldKind::Choice(&["prospecting", "proposal", "negotiation", "won", "lost"]),
    ),
    of_kind("close_date", FieldKind::Date),
];

const CONTRACT_FIELDS: &[FieldDef] = &[
    required(text("name", 200)),
    sensitive(of_kind("value", MONEY)),
    sensitive(text("terms", 4000)),
    of_kind("start_date", FieldKind::Date),
    of_kind("end_date", FieldKind::Date),
    of_kind(
        "status",
        FieldKind::Choice(&["draft", "active", "expired", "terminated"]),
    ),
];

const ACTIVITY_FIELDS: &[FieldDef] = &[
    required(text("name", 200)),
    of_kind(
        "kind",
        FieldKind::Choice(&["call", "meeting", "email", "task"]),
    ),
    of_kind("due_date", FieldKind::Date),
    of_kind("done", FieldKind::Bool),
    internal(text("notes", 4000)),
];

const SCHEMAS: [ObjectSchema; ObjectType::COUNT] = [
    ObjectSchema {
        object: ObjectType::Customers,
        table: "customers",
        has_customer: false,
        fields: CUSTOMER_FIELDS,
    },
    ObjectSchema {
        object: ObjectType::Contacts,
        table: "contacts",
        has_customer: true,
        fields: CONTACT_FIELDS,
    },
    ObjectSchema {
        object: ObjectType::Deals,
        table: "deals",
        has_customer: true,
        fields: DEAL_FIELDS,
    },
    ObjectSchema {
        object: ObjectType::Contracts,
        table: "contracts",
        has_customer: true,
        fields: CONTRACT_FIELDS,
    },
    ObjectSchema {
        object: ObjectType::Activities,
        table: "activities",
        has_customer: true,
        fields: ACTIVITY_FIELDS,
    },
];

/// The schema of `object`.
pub fn schema(object: ObjectType) -> &'static ObjectSchema {
    &SCHEMAS[object.index()]
}

impl ObjectSchema {
    /// The position and definition of a field.
    pub fn field(&self, name: &str) -> Option<(usize, &'static FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }
}

impl FieldDef {
    /// What a role gets of this field when it has no rule for it: sensitive fields are hidden
    /// unless a role grants them, every other field follows the role's record grants.
    pub fn default_access(&self) -> crate::FieldAccess {
        if self.sensitive {
            crate::FieldAccess::Hidden
        } else {
            crate::FieldAccess::Write
        }
    }

    /// Checks and normalises a value for this field (`Null` clears an optional field).
    pub fn validate(&self, value: Value) -> Result<Value, InvalidValue> {
        let invalid = |message: String| InvalidValue {
            field: self.name.to_owned(),
            message,
        };
        match (&self.kind, value) {
            (_, Value::Null) if self.required => Err(invalid("is required".into())),
            (_, Value::Null) => Ok(Value::Null),
            (FieldKind::Text { max_len }, Value::Text(text)) => {
                let text = text.trim().to_owned();
                if self.required && text.is_empty() {
                    return Err(invalid("must not be empty".into()));
                }
                if text.chars().count() > *max_len {
                    return Err(invalid(format!("must be at most {max_len} characters")));
                }
                if text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t')
                {
                    return Err(invalid("must not contain control characters".into()));
                }
                Ok(Value::Text(text))
            }
            (FieldKind::Email, Value::Text(text)) => {
                let text = text.trim().to_owned();
                let valid = text.len() <= 254
                    && text.split_once('@').is_some_and(|(local, domain)| {
                        !local.is_empty()
                            && domain.contains('.')
                            && !domain.starts_with('.')
                            && !domain.ends_with('.')
                            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
                            && !domain.contains('@')
                    });
                if valid {
                    Ok(Value::Text(text))
                } else {
                    Err(invalid("must be an e-mail address".into()))
                }
            }
            (FieldKind::Integer { min, max }, Value::Integer(n)) => {
                if n < *min || n > *max {
                    Err(invalid(format!("must be between {min} and {max}")))
                } else {
                    Ok(Value::Integer(n))
                }
            }
            (FieldKind::Choice(choices), Value::Text(text)) => {
                if choices.contains(&text.as_str()) {
                    Ok(Value::Text(text))
                } else {
                    Err(invalid(format!("must be one of {}", choices.join(", "))))
                }
            }
            (FieldKind::Date, Value::Text(text)) => {
                if is_date(&text) {
                    Ok(Value::Text(text))
                } else {
                    Err(invalid("must be a date YYYY-MM-DD".into()))
                }
            }
            (FieldKind::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
            (kind, _) => Err(invalid(format!("must be {}", kind.describe()))),
        }
    }
}

impl FieldKind {
    /// What a value of this kind looks like, for error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            FieldKind::Text { .. } | FieldKind::Choice(_) => "a string",
            FieldKind::Email => "an e-mail address",
            FieldKind::Integer { .. } => "a whole number",
            FieldKind::Date => "a date YYYY-MM-DD",
            FieldKind::Bool => "true or false",
        }
    }
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && year >= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer_field(name: &str) -> &'static FieldDef {
        schema(ObjectType::Customers).field(name).unwrap().1
    }

    #[test]
    fn every_object_starts_with_a_required_name() {
        for object in ObjectType::ALL {
            let first = schema(*object).fields[0];
            assert_eq!(first.name, "name");
            assert!(first.required);
            assert_eq!(schema(*object).object, *object);
        }
    }

    #[test]
    fn validation_names_the_field_and_the_rule() {
        let name = customer_field("name");
        assert_eq!(
            name.validate(Value::Text("  Acme ".into())),
            Ok(Value::Text("Acme".into()))
        );
        assert_eq!(
            name.validate(Value::Text("   ".into()))
                .unwrap_err()
                .to_string(),
            "name: must not be empty"
        );
        assert_eq!(
            name.validate(Value::Null).unwrap_err().to_string(),
            "name: is required"
        );
        let credit = customer_field("credit_limit");
        assert!(credit.sensitive);
        assert!(credit.validate(Value::Integer(-1)).is_err());
        assert_eq!(
            credit
                .validate(Value::Text("10".into()))
                .unwrap_err()
                .to_string(),
            "credit_limit: must be a whole number"
        );
        let email = customer_field("email");
        assert!(email.validate(Value::Text("a@b.example".into())).is_ok());
        for bad in ["a@b", "@b.c", "a b@c.d", "a@.c", "a@b.c."] {
            assert!(email.validate(Value::Text(bad.into())).is_err(), "{bad}");
        }
        let status = customer_field("status");
        assert!(status.validate(Value::Text("active".into())).is_ok());
        assert!(status.validate(Value::Text("Active".into())).is_err());
    }

    #[test]
    fn dates_are_real_calendar_days() {
        for good in ["2024-02-29", "2026-12-31", "2000-02-29"] {
            assert!(is_date(good), "{good}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-1-01",
            "2026-01-32",
            "２０２６-01-01",
            "0000-01-01",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
