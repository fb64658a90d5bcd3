//! The demo's stand-in for a database: a few player profiles in memory.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A player's public profile, as the "database" stores it and the cache
/// holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlayerProfile {
    /// The player id (the user name used to log in).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Character class.
    pub class: String,
    /// Level.
    pub level: u32,
    /// Guild, if any.
    pub guild: Option<String>,
}

impl PlayerProfile {
    /// A profile.
    #[must_use]
    pub fn new(id: &str, name: &str, class: &str, level: u32, guild: Option<&str>) -> Self {
        PlayerProfile {
            id: id.to_owned(),
            name: name.to_owned(),
            class: class.to_owned(),
            level,
            guild: guild.map(str::to_owned),
        }
    }
}

/// The seeded "database": `alice`, `bob`, `carol`, `dave` and `eve`.
pub(crate) fn seed() -> HashMap<String, PlayerProfile> {
    [
        PlayerProfile::new(
            "alice",
            "Ælfrida the Bold",
            "paladin",
            42,
            Some("Dawnguard"),
        ),
        PlayerProfile::new("bob", "Bob of the Marsh", "ranger", 17, None),
        PlayerProfile::new("carol", "Carolus", "mage", 33, Some("Dawnguard")),
        PlayerProfile::new("dave", "Dave", "rogue", 8, None),
        PlayerProfile::new("eve", "Eve Nightshade", "warlock", 51, Some("Umbra")),
    ]
    .into_iter()
    .map(|p| (p.id.clone(), p))
    .collect()
}
