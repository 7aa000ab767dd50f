//! User and group names from /etc/passwd and /etc/group (no NSS).

use std::collections::HashMap;
use std::sync::OnceLock;

fn load(path: &str) -> (HashMap<u32, Vec<u8>>, HashMap<Vec<u8>, u32>) {
    let mut by_id = HashMap::new();
    let mut by_name = HashMap::new();
    if let Ok(text) = std::fs::read(path) {
        for line in text.split(|&b| b == b'\n') {
            let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
            if fields.len() < 3 {
                continue;
            }
            let Some(id) = std::str::from_utf8(fields[2])
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            by_id.entry(id).or_insert_with(|| fields[0].to_vec());
            by_name.entry(fields[0].to_vec()).or_insert(id);
        }
    }
    (by_id, by_name)
}

type Db = (HashMap<u32, Vec<u8>>, HashMap<Vec<u8>, u32>);

fn users() -> &'static Db {
    static U: OnceLock<Db> = OnceLock::new();
    U.get_or_init(|| load("/etc/passwd"))
}

fn groups() -> &'static Db {
    static G: OnceLock<Db> = OnceLock::new();
    G.get_or_init(|| load("/etc/group"))
}

/// Name of user `uid`, or empty.
pub fn user_name(uid: u32) -> Vec<u8> {
    users().0.get(&uid).cloned().unwrap_or_default()
}

/// Name of group `gid`, or empty.
pub fn group_name(gid: u32) -> Vec<u8> {
    groups().0.get(&gid).cloned().unwrap_or_default()
}

/// Id of user `name`, if the local database knows it.
pub fn user_id(name: &[u8]) -> Option<u32> {
    users().1.get(name).copied()
}

/// Id of group `name`, if the local database knows it.
pub fn group_id(name: &[u8]) -> Option<u32> {
    groups().1.get(name).copied()
}
