//! The vocabulary of permissions: objects, actions, data scopes and functional permissions,
//! with their stable names (used in the database, the API and policy files).

use std::fmt;

/// A name that is not part of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order (also the engine's table order).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// How many values there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Position in [`Self::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }

            /// Parses a stable name.
            pub fn parse(text: &str) -> Result<Self, UnknownName> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { kind: $kind, name: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

named_enum!(
    /// The kinds of CRM record.
    ObjectType, "object", {
        Customers => "customers",
        Contacts => "contacts",
        Deals => "deals",
        Contracts => "contracts",
        Activities => "activities",
    }
);

named_enum!(
    /// What can be done to a record.
    Action, "action", {
        Read => "read",
        Create => "create",
        Update => "update",
        Delete => "delete",
        Export => "export",
        Share => "share",
        Approve => "approve",
    }
);

named_enum!(
    /// Functional (non-record) permissions.
    Permission, "permission", {
        ManageUsers => "manage_users",
        ManageRoles => "manage_roles",
        ViewAudit => "view_audit",
        ManageSettings => "manage_settings",
    }
);

named_enum!(
    /// What a role lets its holders do with one field of the records it reaches, weakest first:
    /// `hidden` (absent from every answer), `masked` (a partial value; the full one only through
    /// the logged `reveal`), `read`, `write`. Several roles reaching the same record combine to
    /// the strongest.
    FieldAccess, "field access", {
        Hidden => "hidden",
        Masked => "masked",
        Read => "read",
        Write => "write",
    }
);

/// The data scope of a grant: which records, relative to the user, it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Records the user owns.
    Own,
    /// Records owned by the user or anyone below them in the reporting line; `depth` limits how
    /// many levels down (1 = direct reports only), `None` means all levels.
    Subordinates { depth: Option<u32> },
    /// Records of the user's own unit.
    Unit,
    /// Records of the user's unit and every unit below it.
    UnitTree,
    /// Every record.
    All,
    /// For a portal user: the records of the customer account they belong to. Covers nothing
    /// for anyone else.
    Account,
}

impl Scope {
    /// The stable name, without the depth.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Subordinates { .. } => "subordinates",
            Scope::Unit => "unit",
            Scope::UnitTree => "unit_tree",
            Scope::All => "all",
            Scope::Account => "account",
        }
    }

    /// Parses a stable name with its optional depth (only `subordinates` takes one).
    pub fn parse(name: &str, depth: Option<u32>) -> Result<Self, UnknownName> {
        let scope = match name {
            "own" => Scope::Own,
            "subordinates" => Scope::Subordinates { depth },
            "unit" => Scope::Unit,
            "unit_tree" => Scope::UnitTree,
            "all" => Scope::All,
            "account" => Scope::Account,
            _ => {
                return Err(UnknownName {
                    kind: "scope",
                    name: name.to_owned(),
                })
            }
        };
        if depth.is_some() && !matches!(scope, Scope::Subordinates { .. }) {
            return Err(UnknownName {
                kind: "scope with a depth",
                name: name.to_owned(),
            });
        }
        Ok(scope)
    }

    /// The depth of a `subordinates` scope.
    pub fn depth(self) -> Option<u32> {
        match self {
            Scope::Subordinates { depth } => depth,
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Subordinates { depth: Some(d) } => write!(f, "subordinates (depth {d})"),
            other => f.write_str(other.name()),
        }
    }
}

/// How access to an object's records is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// By the object's own grants, on the record's own owner and unit.
    OwnGrants,
    /// By the record's customer: reading needs `read` on the customer, exporting `export`,
    /// sharing `share`, approving `approve`, and every change (create, update, delete) needs
    /// `update` on the customer.
    ByCustomer,
}

impl Action {
    /// The action on the customer that controls a child record's `self` action.
    pub fn on_controlling_customer(self) -> Action {
        match self {
            Action::Read => Action::Read,
            Action::Export => Action::Export,
            Action::Share => Action::Share,
            Action::Approve => Action::Approve,
            Action::Create | Action::Update | Action::Delete => Action::Update,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in ObjectType::ALL {
            assert_eq!(ObjectType::parse(o.as_str()), Ok(*o));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Ok(*a));
        }
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Ok(*p));
        }
        assert_eq!(
            Scope::parse("subordinates", Some(1)),
            Ok(Scope::Subordinates { depth: Some(1) })
        );
        assert!(Scope::parse("own", Some(1)).is_err());
        assert!(Scope::parse("everyone", None).is_err());
        assert_eq!(ObjectType::parse("Customers").unwrap_err().kind, "object");
    }
}
