//! [`Db`]: the demo's source of truth, an embedded SQLite database
//! (players, characters, inventories, zones, guilds, trades), created,
//! migrated and seeded on first open.
//!
//! One `Mutex<Connection>` per process, every call on tokio's blocking
//! pool (`spawn_blocking`): SQLite serialises writers anyway, and a demo
//! needs no pool. The file is `<data dir>/demo.sqlite3` in WAL mode; with
//! no data directory the database lives in memory (tests: one per state).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::players::{self, PlayerProfile};

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite refused the statement or the file.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory cannot be created.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The blocking task did not finish (the runtime is shutting down).
    #[error("the database task was cancelled")]
    Cancelled,
}

impl aeturnis_redis_core::Classify for DbError {
    /// A locked database is transient; anything else is the server's fault.
    fn class(&self) -> aeturnis_redis_core::ErrorClass {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    || e.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                aeturnis_redis_core::ErrorClass::Unavailable
            }
            _ => aeturnis_redis_core::ErrorClass::Internal,
        }
    }
}

/// The schema version [`Db::open`] migrates to (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE zones (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE guilds (id TEXT PRIMARY KEY, name TEXT NOT NULL, motd TEXT NOT NULL DEFAULT '');
CREATE TABLE players (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    guild TEXT REFERENCES guilds(id)
);
CREATE TABLE characters (
    player_id TEXT PRIMARY KEY REFERENCES players(id),
    class TEXT NOT NULL,
    level INTEGER NOT NULL,
    zone TEXT NOT NULL REFERENCES zones(id),
    x REAL NOT NULL DEFAULT 0,
    y REAL NOT NULL DEFAULT 0,
    -- stream id (ms, seq) of the last move written: older writes are ignored
    pos_ms INTEGER NOT NULL DEFAULT 0,
    pos_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE inventories (
    player_id TEXT NOT NULL REFERENCES players(id),
    item TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty >= 0),
    PRIMARY KEY (player_id, item)
);
-- the highest fencing token that wrote under each trade lock
CREATE TABLE trade_fences (resource TEXT PRIMARY KEY, last_fence INTEGER NOT NULL);
CREATE TABLE trades (
    id INTEGER PRIMARY KEY,
    from_player TEXT NOT NULL,
    to_player TEXT NOT NULL,
    item TEXT NOT NULL,
    fence INTEGER NOT NULL
);
";

/// A character's position, as movement writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Position {
    /// The player.
    pub player: String,
    /// The zone.
    pub zone: String,
    /// East–west coordinate.
    pub x: f64,
    /// North–south coordinate.
    pub y: f64,
}

impl Position {
    /// A position.
    #[must_use]
    pub fn new(player: &str, zone: &str, x: f64, y: f64) -> Self {
        Position {
            player: player.to_owned(),
            zone: zone.to_owned(),
            x,
            y,
        }
    }
}

/// A guild row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Guild {
    /// The guild id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Message of the day.
    pub motd: String,
    /// Member player ids, sorted.
    pub members: Vec<String>,
}

/// How a fenced trade write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TradeWrite {
    /// Recorded (the row id of the trade).
    Recorded(i64),
    /// Refused by the database: a write with this fence or a newer one was
    /// recorded already (the caller's lock was lost).
    StaleFence {
        /// The fence the database holds.
        current: u64,
    },
}

/// The SQLite database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating, migrating and seeding when new) `dir/demo.sqlite3`,
    /// or an in-memory database when `dir` is `None`.
    ///
    /// # Errors
    /// The directory or file cannot be created; SQLite refused the schema.
    pub fn open(dir: Option<&Path>) -> Result<Db, DbError> {
        let mut conn = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let conn = Connection::open(dir.join("demo.sqlite3"))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|_| DbError::Cancelled)?
        .map_err(DbError::from)
    }

    /// A player's profile (player, character and guild rows).
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn profile(&self, id: &str) -> Result<Option<PlayerProfile>, DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.query_row(
                "SELECT p.id, p.name, c.class, c.level, p.guild, c.zone
                 FROM players p JOIN characters c ON c.player_id = p.id WHERE p.id = ?1",
                [&id],
                |r| {
                    let mut p = PlayerProfile::new(
                        &r.get::<_, String>(0)?,
                        &r.get::<_, String>(1)?,
                        &r.get::<_, String>(2)?,
                        r.get(3)?,
                        r.get::<_, Option<String>>(4)?.as_deref(),
                    );
                    p.zone = r.get(5)?;
                    Ok(p)
                },
            )
            .optional()
        })
        .await
    }

    /// Updates a character's class and level; `false` when there is no
    /// such character.
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn set_character(&self, id: &str, class: &str, level: u32) -> Result<bool, DbError> {
        let (id, class) = (id.to_owned(), class.to_owned());
        self.run(move |c| {
            c.execute(
                "UPDATE characters SET class = ?2, level = ?3 WHERE player_id = ?1",
                params![id, class, level],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Writes positions, each with its stream id `(ms, seq)`: a write older
    /// than the stored one is ignored, so replaying a batch is harmless.
    /// One transaction per batch.
    ///
    /// # Errors
    /// A SQLite error (nothing of the batch is written).
    pub async fn write_positions(&self, batch: Vec<(Position, u64, u64)>) -> Result<(), DbError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE characters SET zone = ?2, x = ?3, y = ?4, pos_ms = ?5, pos_seq = ?6
                     WHERE player_id = ?1 AND (pos_ms, pos_seq) < (?5, ?6)",
                )?;
                for (p, ms, seq) in &batch {
                    let ms = i64::try_from(*ms).unwrap_or(i64::MAX);
                    let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
                    update.execute(params![p.player, p.zone, p.x, p.y, ms, seq])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// A character's stored position.
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn position(&self, id: &str) -> Result<Option<Position>, DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.query_row(
                "SELECT zone, x, y FROM characters WHERE player_id = ?1",
                [&id],
                |r| {
                    Ok(Position::new(
                        &id,
                        &r.get::<_, String>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                    ))
                },
            )
            .optional()
        })
        .await
    }

    /// Records a trade of `item` from `from` to `to` under the lock
    /// `resource` with fencing token `fence`. The fence is checked by the
    /// database (`UPDATE trade_fences ... WHERE last_fence < ?`): a stale
    /// holder's write changes no row and the transaction is rolled back.
    /// One unit of `item` moves between the inventories when `from` has it.
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn trade(
        &self,
        resource: &str,
        fence: u64,
        from: &str,
        to: &str,
        item: &str,
    ) -> Result<TradeWrite, DbError> {
        let (resource, from, to, item) = (
            resource.to_owned(),
            from.to_owned(),
            to.to_owned(),
            item.to_owned(),
        );
        let fence = i64::try_from(fence).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO trade_fences (resource, last_fence) VALUES (?1, 0)
                 ON CONFLICT (resource) DO NOTHING",
                [&resource],
            )?;
            let fenced = tx.execute(
                "UPDATE trade_fences SET last_fence = ?2 WHERE resource = ?1 AND last_fence < ?2",
                params![resource, fence],
            )?;
            if fenced == 0 {
                let current: i64 = tx.query_row(
                    "SELECT last_fence FROM trade_fences WHERE resource = ?1",
                    [&resource],
                    |r| r.get(0),
                )?;
                return Ok(TradeWrite::StaleFence {
                    current: u64::try_from(current).unwrap_or(0),
                });
            }
            let moved = tx.execute(
                "UPDATE inventories SET qty = qty - 1 WHERE player_id = ?1 AND item = ?2 AND qty > 0",
                params![from, item],
            )?;
            if moved > 0 {
                // to a player of the database only (logging in as anyone works)
                tx.execute(
                    "INSERT INTO inventories (player_id, item, qty)
                     SELECT ?1, ?2, 1 WHERE EXISTS (SELECT 1 FROM players WHERE id = ?1)
                     ON CONFLICT (player_id, item) DO UPDATE SET qty = qty + 1",
                    params![to, item],
                )?;
            }
            tx.execute(
                "INSERT INTO trades (from_player, to_player, item, fence) VALUES (?1, ?2, ?3, ?4)",
                params![from, to, item, fence],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(TradeWrite::Recorded(id))
        })
        .await
    }

    /// A player's inventory: `(item, quantity)` sorted by item.
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn inventory(&self, id: &str) -> Result<Vec<(String, u32)>, DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            let mut q = c.prepare_cached(
                "SELECT item, qty FROM inventories WHERE player_id = ?1 AND qty > 0 ORDER BY item",
            )?;
            let rows = q.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// A guild with its members.
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn guild(&self, id: &str) -> Result<Option<Guild>, DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            let Some((name, motd)) = c
                .query_row("SELECT name, motd FROM guilds WHERE id = ?1", [&id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?
            else {
                return Ok(None);
            };
            let mut q = c.prepare_cached("SELECT id FROM players WHERE guild = ?1 ORDER BY id")?;
            let members = q
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(Some(Guild {
                id,
                name,
                motd,
                members,
            }))
        })
        .await
    }

    /// Renames a guild; `false` when there is no such guild.
    ///
    /// # Errors
    /// A SQLite error.
    pub async fn rename_guild(&self, id: &str, name: &str) -> Result<bool, DbError> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.run(move |c| {
            c.execute(
                "UPDATE guilds SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map(|n| n > 0)
        })
        .await
    }
}

/// Creates the schema and the seed when `user_version` is 0.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA_V1)?;
    for (id, name) in players::ZONES {
        tx.execute("INSERT INTO zones VALUES (?1, ?2)", [id, name])?;
    }
    for (id, name, motd) in players::GUILDS {
        tx.execute("INSERT INTO guilds VALUES (?1, ?2, ?3)", [id, name, motd])?;
    }
    for p in players::seed() {
        tx.execute(
            "INSERT INTO players VALUES (?1, ?2, ?3)",
            params![p.id, p.name, p.guild],
        )?;
        tx.execute(
            "INSERT INTO characters (player_id, class, level, zone) VALUES (?1, ?2, ?3, ?4)",
            params![p.id, p.class, p.level, p.zone],
        )?;
        for (item, qty) in players::starting_inventory(&p.class) {
            tx.execute(
                "INSERT INTO inventories VALUES (?1, ?2, ?3)",
                params![p.id, item, qty],
            )?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}
