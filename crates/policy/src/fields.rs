//! Field-level security: what one user may do with each field of one record, and the masked
//! form of a value.
//!
//! Each role says, per object and field, `hidden`, `masked`, `read` or `write` (the schema's
//! default where it says nothing: sensitive fields hidden, the rest writable). A role's field
//! rules apply only to the records its grants reach: for a read, a field's level is the
//! strongest among the user's active roles whose *read* grant covers the record; for a write,
//! among those whose *update* (or *create*) grant covers it. So a user who is a Sales Rep for
//! their own customers and Finance for everyone cannot use the Rep's `write` on `name` to rename
//! customers that only Finance reaches.

use crate::explain::FieldExplanation;
use crate::schema::{schema, FieldDef, Value};
use crate::{Action, FieldAccess, ObjectType, RecordRef, Snapshot, Timestamp, UserId};

/// The level of every field of one object, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLevels {
    object: ObjectType,
    levels: Box<[FieldAccess]>,
}

impl FieldLevels {
    /// Every field at `level`.
    pub fn uniform(object: ObjectType, level: FieldAccess) -> FieldLevels {
        FieldLevels {
            object,
            levels: vec![level; schema(object).fields.len()].into_boxed_slice(),
        }
    }

    /// The object these levels are for.
    pub fn object(&self) -> ObjectType {
        self.object
    }

    /// The level of the field at schema position `index` (hidden when out of range).
    pub fn at(&self, index: usize) -> FieldAccess {
        self.levels
            .get(index)
            .copied()
            .unwrap_or(FieldAccess::Hidden)
    }

    /// The level of a named field, if the object has it.
    pub fn of(&self, field: &str) -> Option<FieldAccess> {
        schema(self.object).field(field).map(|(i, _)| self.at(i))
    }

    /// Each field with its level, in schema order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static FieldDef, FieldAccess)> + '_ {
        schema(self.object)
            .fields
            .iter()
            .zip(self.levels.iter().copied())
    }

    fn raise(&mut self, levels: &[FieldAccess]) {
        for (mine, theirs) in self.levels.iter_mut().zip(levels) {
            *mine = (*mine).max(*theirs);
        }
    }

    fn lower(&mut self, levels: &[FieldAccess]) {
        for (mine, theirs) in self.levels.iter_mut().zip(levels) {
            *mine = (*mine).min(*theirs);
        }
    }
}

/// The masked form of a value: its last four characters behind `••••`, or `••••` alone when
/// it has four or fewer (a short value masked "partially" would be shown whole). `None` for
/// an empty field, which has nothing to hide.
pub fn mask(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::Text(text) => text.clone(),
        Value::Integer(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 4 {
        return Some("••••".to_owned());
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    Some(format!("••••{tail}"))
}

impl Snapshot {
    /// The level of every field of `record` for `user` doing `action` at `now`: per field, the
    /// strongest level among the active roles whose `action` grant covers the record. A record
    /// reached only through a share, a team place or a sharing rule gets the user's
    /// [`Snapshot::field_floor`] (the schema's defaults when no role grants the action at all):
    /// a share opens the record, never more of it than the user's roles show anywhere. All
    /// hidden when nothing reaches it. A portal user never gets a field that is not
    /// portal-visible.
    ///
    /// Read a field's value when its level under [`Action::Read`] is `read` or `write` (masked:
    /// the masked form); write it when its level under [`Action::Update`] (or
    /// [`Action::Create`]) is `write`.
    pub fn field_levels(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        record: &RecordRef<'_>,
        now: Timestamp,
    ) -> FieldLevels {
        let mut levels = FieldLevels::uniform(object, FieldAccess::Hidden);
        // A restriction or the portal bound may refuse what a grant reaches: then nothing.
        if !self.check(user, action, object, record, now).is_allowed() {
            return levels;
        }
        let roles = self.roles_reaching(user, action, object, Some(record), now);
        if roles.is_empty() {
            levels = self.floor_or_defaults(user, action, object, now);
        } else {
            for (role, _) in roles {
                levels.raise(&role.fields[object.index()]);
            }
        }
        self.portal_cap(user, &mut levels);
        levels
    }

    /// The field floor, or the schema's defaults when no role grants the action.
    fn floor_or_defaults(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        now: Timestamp,
    ) -> FieldLevels {
        if self
            .roles_reaching(user, action, object, None, now)
            .is_empty()
        {
            FieldLevels {
                object,
                levels: schema(object)
                    .fields
                    .iter()
                    .map(FieldDef::default_access)
                    .collect(),
            }
        } else {
            self.field_floor(user, action, object, now)
        }
    }

    /// Hides from a portal user every field that is not portal-visible.
    fn portal_cap(&self, user: UserId, levels: &mut FieldLevels) {
        if self.is_portal(user) {
            for (level, def) in levels.levels.iter_mut().zip(schema(levels.object).fields) {
                if !def.portal {
                    *level = FieldAccess::Hidden;
                }
            }
        }
    }

    /// The level every record the user may `action` is sure to have: per field, the weakest
    /// level among the active roles that grant `action` on the object at any scope (all hidden
    /// when none does). Filtering or sorting a list by a field needs `read` here, or the order
    /// or the matches would tell the value of a field hidden on some of the records.
    pub fn field_floor(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        now: Timestamp,
    ) -> FieldLevels {
        let roles = self.roles_reaching(user, action, object, None, now);
        if roles.is_empty() {
            return FieldLevels::uniform(object, FieldAccess::Hidden);
        }
        let mut levels = FieldLevels::uniform(object, FieldAccess::Write);
        for (role, _) in roles {
            levels.lower(&role.fields[object.index()]);
        }
        self.portal_cap(user, &mut levels);
        levels
    }

    /// The strongest level per field that any record the user may `action` can have: per
    /// field, the strongest level among the active roles that grant `action` on the object at
    /// any scope (all hidden when none does). What-if compares it before and after a change to
    /// say which fields a role edit opens or closes for a user, with no record read.
    pub fn field_ceiling(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        now: Timestamp,
    ) -> FieldLevels {
        let mut levels = FieldLevels::uniform(object, FieldAccess::Hidden);
        for (role, _) in self.roles_reaching(user, action, object, None, now) {
            levels.raise(&role.fields[object.index()]);
        }
        self.portal_cap(user, &mut levels);
        levels
    }

    /// Every field of `record` with what `user` may do with it and which role says so.
    pub(crate) fn field_explanations(
        &self,
        user: UserId,
        object: ObjectType,
        record: &RecordRef<'_>,
        now: Timestamp,
    ) -> Vec<FieldExplanation> {
        let readers = self.roles_reaching(user, Action::Read, object, Some(record), now);
        let writers = self.roles_reaching(user, Action::Update, object, Some(record), now);
        let read_levels = self.field_levels(user, Action::Read, object, record, now);
        let write_levels = self.field_levels(user, Action::Update, object, record, now);
        let may_update = self
            .check(user, Action::Update, object, record, now)
            .is_allowed();
        let portal = self.is_portal(user);
        schema(object)
            .fields
            .iter()
            .enumerate()
            .map(|(index, def)| {
                // The first role (lowest id) giving the strongest level is the one named.
                let strongest = |roles: &[(&crate::snapshot::RoleNode, _)]| {
                    roles
                        .iter()
                        .map(|(role, _)| (role.fields[object.index()][index], role.id))
                        .fold(
                            None,
                            |best: Option<(FieldAccess, crate::RoleId)>, item| match best {
                                Some(b) if b.0 >= item.0 => Some(b),
                                _ => Some(item),
                            },
                        )
                };
                let read = read_levels.at(index);
                let writable = may_update && write_levels.at(index) == FieldAccess::Write;
                FieldExplanation {
                    field: def.name,
                    sensitive: def.sensitive,
                    default: def.default_access(),
                    read,
                    read_by: strongest(&readers)
                        .filter(|_| read > FieldAccess::Hidden)
                        .map(|(_, role)| role),
                    writable,
                    write_by: strongest(&writers)
                        .filter(|_| writable)
                        .map(|(_, role)| role),
                    through_sharing: readers.is_empty() && read > FieldAccess::Hidden,
                    portal_hidden: portal && !def.portal,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_last_four_characters() {
        assert_eq!(
            mask(&Value::Text("CN12 3456 7890 1234".into())).as_deref(),
            Some("••••1234")
        );
        assert_eq!(mask(&Value::Integer(250_000)).as_deref(), Some("••••0000"));
        assert_eq!(mask(&Value::Text("1234".into())).as_deref(), Some("••••"));
        assert_eq!(
            mask(&Value::Text("中文银行账号".into())).as_deref(),
            Some("••••银行账号")
        );
        assert_eq!(mask(&Value::Null), None);
    }

    #[test]
    fn access_levels_are_ordered_weakest_first() {
        use FieldAccess::*;
        assert!(Hidden < Masked && Masked < Read && Read < Write);
        assert_eq!(FieldAccess::parse("masked"), Ok(Masked));
        assert!(FieldAccess::parse("secret").is_err());
    }
}
