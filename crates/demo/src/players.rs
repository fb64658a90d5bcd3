//! The seed of the demo's database: players with their characters,
//! guilds, zones and starting inventories; and [`PlayerProfile`], the row
//! the profile endpoint serves and the cache holds.

use serde::{Deserialize, Serialize};

/// A player's public profile, as the database stores it and the cache
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
    /// The zone the character is in.
    pub zone: String,
}

impl PlayerProfile {
    /// A profile in the starting zone (`meadow`).
    #[must_use]
    pub fn new(id: &str, name: &str, class: &str, level: u32, guild: Option<&str>) -> Self {
        PlayerProfile {
            id: id.to_owned(),
            name: name.to_owned(),
            class: class.to_owned(),
            level,
            guild: guild.map(str::to_owned),
            zone: "meadow".to_owned(),
        }
    }
}

/// Zones: `(id, name)`.
pub(crate) const ZONES: [(&str, &str); 3] = [
    ("meadow", "Whispering Meadow"),
    ("marsh", "Sunken Marsh"),
    ("keep", "Ember Keep"),
];

/// Guilds: `(id, name, message of the day)`.
pub(crate) const GUILDS: [(&str, &str, &str); 2] = [
    ("Dawnguard", "The Dawnguard", "Raid at dusk."),
    ("Umbra", "Umbra", "Stay in the shadows."),
];

/// The seeded players: `alice`, `bob`, `carol`, `dave` and `eve`.
pub(crate) fn seed() -> Vec<PlayerProfile> {
    let mut bob = PlayerProfile::new("bob", "Bob of the Marsh", "ranger", 17, None);
    bob.zone = "marsh".to_owned();
    let mut eve = PlayerProfile::new("eve", "Eve Nightshade", "warlock", 51, Some("Umbra"));
    eve.zone = "keep".to_owned();
    vec![
        PlayerProfile::new(
            "alice",
            "Ælfrida the Bold",
            "paladin",
            42,
            Some("Dawnguard"),
        ),
        bob,
        PlayerProfile::new("carol", "Carolus", "mage", 33, Some("Dawnguard")),
        PlayerProfile::new("dave", "Dave", "rogue", 8, None),
        eve,
    ]
}

/// What a new character of `class` carries: `(item, quantity)`.
pub(crate) fn starting_inventory(class: &str) -> [(&'static str, u32); 2] {
    let weapon = match class {
        "paladin" => "sword",
        "ranger" => "bow",
        "mage" | "warlock" => "staff",
        _ => "dagger",
    };
    [(weapon, 1), ("potion", 3)]
}
