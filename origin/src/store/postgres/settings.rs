//! Workspace cache settings, persisted as one JSON row per workspace.

use chrono::{DateTime, Utc};
use shared::settings::CacheSettings;
use shared::WorkspaceId;
use sqlx::types::Json;
use sqlx::PgPool;

use crate::error::{Error, Result};

pub async fn load(db: &PgPool, ws: &WorkspaceId) -> Result<CacheSettings> {
    let row: Option<Json<CacheSettings>> =
        sqlx::query_scalar("SELECT settings FROM workspace_cache_settings WHERE workspace_id = $1")
            .bind(ws.as_str())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|j| j.0).unwrap_or_default())
}

pub async fn save(
    db: &PgPool,
    ws: &WorkspaceId,
    settings: &CacheSettings,
) -> Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "INSERT INTO workspace_cache_settings (workspace_id, settings, updated_at) VALUES ($1, $2, now()) \
         ON CONFLICT (workspace_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now() \
         RETURNING updated_at",
    )
    .bind(ws.as_str())
    .bind(Json(settings))
    .fetch_one(db)
    .await
    .map_err(Error::settings)
}
