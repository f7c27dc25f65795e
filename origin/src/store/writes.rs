//! Contact writes. Each runs in a transaction that tells the change trigger to stay
//! quiet (the caller invalidates synchronously, before it answers) and returns the
//! boards it touched, which are what the caller invalidates.

use serde::Deserialize;
use shared::model::Contact;
use shared::{BoardId, ContactId, InputError, UserId, WorkspaceId};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};

use super::contacts::{ContactRow, CONTACT_COLUMNS};
use crate::error::{Error, Result};

/// Present-and-null (clear the field) differs from absent (leave it) in a PATCH.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The writable fields of a contact; every one is optional so that one type serves
/// create (with `board_id`, `column_id` and `name` required), PATCH and move.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactFields {
    pub board_id: Option<i64>,
    pub column_id: Option<i64>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub company: Option<Option<String>>,
    pub status: Option<String>,
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub assigned_to: Option<Option<String>>,
    pub needs_response: Option<bool>,
    pub follow_up: Option<bool>,
    pub favorite: Option<bool>,
    pub archived: Option<bool>,
    pub sentiment: Option<String>,
    pub custom_attributes: Option<serde_json::Value>,
}

/// A move between columns (and maybe boards).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub column_id: i64,
    pub board_id: Option<i64>,
}

impl From<Move> for ContactFields {
    fn from(m: Move) -> Self {
        Self {
            board_id: m.board_id,
            column_id: Some(m.column_id),
            ..Self::default()
        }
    }
}

fn one_of(name: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), InputError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(InputError::new(
            "invalid_field",
            format!("{name} must be one of: {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn max_len(name: &str, value: Option<&str>, max: usize) -> Result<(), InputError> {
    match value {
        Some(v) if v.chars().count() > max => Err(InputError::new(
            "invalid_field",
            format!("{name} must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// The value of a nullable field when it is set to something.
fn inner(v: &Option<Option<String>>) -> Option<&str> {
    v.as_ref().and_then(|v| v.as_deref())
}

impl ContactFields {
    pub fn validate(&self) -> Result<(), InputError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(InputError::new("invalid_field", "name must not be blank"));
            }
        }
        max_len("name", self.name.as_deref(), 200)?;
        max_len("email", inner(&self.email), 320)?;
        max_len("phone", inner(&self.phone), 64)?;
        max_len("company", inner(&self.company), 200)?;
        if inner(&self.email).is_some_and(|e| !e.contains('@')) {
            return Err(InputError::new("invalid_field", "email must contain '@'"));
        }
        one_of("status", self.status.as_deref(), &["open", "closed"])?;
        one_of(
            "priority",
            self.priority.as_deref(),
            &["high", "medium", "low"],
        )?;
        one_of(
            "sentiment",
            self.sentiment.as_deref(),
            &["positive", "neutral", "negative"],
        )?;
        if let Some(user) = inner(&self.assigned_to) {
            UserId::parse(user)?;
        }
        if let Some(attrs) = &self.custom_attributes {
            if !attrs.is_object() || attrs.to_string().len() > 16 * 1024 {
                return Err(InputError::new(
                    "invalid_field",
                    "custom_attributes must be a JSON object of at most 16 KiB",
                ));
            }
        }
        Ok(())
    }
}

async fn quiet_tx(db: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('edgecache.skip_notify', 'on', true)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// A foreign-key violation here means a board or column outside the workspace.
fn reference_error(e: sqlx::Error) -> Error {
    match e.as_database_error() {
        Some(db) if db.is_foreign_key_violation() => Error::bad_request(
            "invalid_reference",
            "board_id and column_id must name a board of this workspace and a column of that board",
        ),
        _ => Error::Database(e),
    }
}

pub async fn create(db: &PgPool, ws: &WorkspaceId, f: ContactFields) -> Result<Contact> {
    f.validate()?;
    let (Some(board), Some(column), Some(name)) = (f.board_id, f.column_id, &f.name) else {
        return Err(Error::bad_request(
            "invalid_field",
            "board_id, column_id and name are required",
        ));
    };
    let mut tx = quiet_tx(db).await?;
    let row: ContactRow = sqlx::query_as(&format!(
        "INSERT INTO contacts (workspace_id, board_id, column_id, name, email, phone, company, status, \
         priority, assigned_to, needs_response, follow_up, favorite, archived, sentiment, custom_attributes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'open'), coalesce($9, 'medium'), $10, \
         coalesce($11, false), coalesce($12, false), coalesce($13, false), coalesce($14, false), \
         coalesce($15, 'neutral'), coalesce($16, '{{}}'::jsonb)) RETURNING {CONTACT_COLUMNS}"
    ))
    .bind(ws.as_str())
    .bind(board)
    .bind(column)
    .bind(name.trim())
    .bind(f.email.flatten())
    .bind(f.phone.flatten())
    .bind(f.company.flatten())
    .bind(&f.status)
    .bind(&f.priority)
    .bind(f.assigned_to.flatten())
    .bind(f.needs_response)
    .bind(f.follow_up)
    .bind(f.favorite)
    .bind(f.archived)
    .bind(&f.sentiment)
    .bind(&f.custom_attributes)
    .fetch_one(&mut *tx)
    .await
    .map_err(reference_error)?;
    tx.commit().await?;
    Ok(row.into())
}

/// Applies a PATCH or a move; returns the contact and the board it was on before.
pub async fn update(
    db: &PgPool,
    ws: &WorkspaceId,
    id: ContactId,
    f: ContactFields,
) -> Result<(Contact, BoardId)> {
    f.validate()?;
    let mut tx = quiet_tx(db).await?;
    let from: Option<i64> = sqlx::query_scalar(
        "SELECT board_id FROM contacts WHERE workspace_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(ws.as_str())
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    let from = from.ok_or(Error::NotFound("contact"))?;
    if f.board_id.is_some_and(|b| b != from) && f.column_id.is_none() {
        return Err(Error::bad_request(
            "invalid_field",
            "a move to another board needs its column_id",
        ));
    }
    let mut qb = QueryBuilder::<Postgres>::new(
        "UPDATE contacts SET updated_at = now(), last_activity_at = now()",
    );
    macro_rules! set {
        ($($field:ident),+) => {$(
            if let Some(v) = f.$field {
                qb.push(concat!(", ", stringify!($field), " = ")).push_bind(v);
            }
        )+};
    }
    set!(
        board_id,
        column_id,
        name,
        email,
        phone,
        company,
        status,
        priority,
        assigned_to
    );
    set!(
        needs_response,
        follow_up,
        favorite,
        archived,
        sentiment,
        custom_attributes
    );
    qb.push(" WHERE workspace_id = ").push_bind(ws.as_str());
    qb.push(" AND id = ").push_bind(id.0);
    qb.push(" RETURNING ").push(CONTACT_COLUMNS);
    let row: ContactRow = qb
        .build_query_as()
        .fetch_one(&mut *tx)
        .await
        .map_err(reference_error)?;
    tx.commit().await?;
    Ok((row.into(), BoardId(from)))
}

/// Deletes a contact; returns the board it was on.
pub async fn delete(db: &PgPool, ws: &WorkspaceId, id: ContactId) -> Result<BoardId> {
    let mut tx = quiet_tx(db).await?;
    let board: Option<i64> = sqlx::query_scalar(
        "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2 RETURNING board_id",
    )
    .bind(ws.as_str())
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    board.map(BoardId).ok_or(Error::NotFound("contact"))
}
