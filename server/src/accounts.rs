//! Registered accounts: the `--accounts` file (one `NICK HASH` per line, argon2id
//! password hashes in PHC string format, `#` comments), the store sessions check
//! logins against (swapped whole on a SIGHUP reload), and the subcommands' edits of the
//! file (`server account add` / `remove`), written atomically.
//!
//! A login is checked in the worker that owns the connection: argon2 takes tens of
//! milliseconds at the default cost, during which that worker serves nobody else.
//! [`throttle`] bounds how often that can happen per account and per address, and a
//! hash whose cost is above [`MAX_MEMORY_KIB`] or [`MAX_PASSES`] is refused when the
//! file is read, so one login costs at most that much.
//!
//! Layout: [`Accounts`] (one parsed file), [`AccountStore`] (the current one, reloaded
//! on SIGHUP), [`HashCost`] and the file edits; `throttle`: [`LoginThrottle`].

pub(crate) mod throttle;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use parking_lot::RwLock;
use shared::Password;
use shared::names::{fold, validate_nick};

pub(crate) use throttle::LoginThrottle;

/// The most memory a stored hash may make one verification use (KiB): 64 MiB.
pub(crate) const MAX_MEMORY_KIB: u32 = 64 << 10;

/// The most passes a stored hash may make one verification run.
pub(crate) const MAX_PASSES: u32 = 10;

/// Why an accounts file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountsError {
    /// The file could not be read or written. Check the path and its permissions.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line is not `NICK HASH`, the nick breaks the naming rules, the hash is not an
    /// argon2id PHC string within the cost bounds, or the nick is there twice. Fix
    /// that line (or re-add the account).
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `account add` was given an invalid nick, an empty password, or a cost argon2
    /// refuses.
    #[error("{0}")]
    Invalid(String),
    /// `account remove` named a nick the file does not hold.
    #[error("{path}: no account {nick}")]
    NoSuchAccount {
        /// The file.
        path: PathBuf,
        /// The nick asked for.
        nick: String,
    },
}

/// The argon2id cost of new hashes (`server account add`). Verification uses the cost
/// stored in each hash, so lowering it affects only accounts added afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
}

impl Default for HashCost {
    /// argon2's recommended defaults: 19 MiB, 2 passes, 1 lane (tens of ms a login).
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
        }
    }
}

impl HashCost {
    /// The cheapest cost argon2 accepts, for tests: about 8 KiB and one pass. Never for
    /// real accounts.
    pub const TEST: HashCost = HashCost {
        memory_kib: Params::MIN_M_COST,
        passes: Params::MIN_T_COST,
    };

    /// An argon2id PHC string of `password` with a fresh random salt.
    pub fn hash(self, password: &Password) -> Result<String, AccountsError> {
        if self.memory_kib > MAX_MEMORY_KIB || self.passes > MAX_PASSES {
            return Err(AccountsError::Invalid(format!(
                "the cost is at most {MAX_MEMORY_KIB} KiB and {MAX_PASSES} passes, so the \
                 server can check it"
            )));
        }
        let params = Params::new(self.memory_kib, self.passes, 1, None)
            .map_err(|e| AccountsError::Invalid(format!("argon2 cost: {e}")))?;
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| AccountsError::Invalid(format!("argon2: {e}")))
    }
}

/// One parsed accounts file: folded nick to PHC hash.
#[derive(Default)]
pub(crate) struct Accounts {
    hashes: HashMap<String, String>,
}

/// Shows how many accounts there are, never the hashes (they are worth guarding too).
impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("accounts", &self.hashes.len())
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Reads and parses `path`.
    pub(crate) fn load(path: &Path) -> Result<Accounts, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Accounts::parse(&text, path)
    }

    /// Parses the text of an accounts file (`path` only names it in errors).
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Accounts, AccountsError> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let error = |reason: String| AccountsError::Parse {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let Some((nick, hash)) = parse_line(line).map_err(error)? else {
                continue;
            };
            if hashes
                .insert(fold(nick).into_owned(), hash.to_owned())
                .is_some()
            {
                return Err(error(format!("{nick} is listed twice")));
            }
        }
        Ok(Accounts { hashes })
    }

    /// Whether `folded` (a case-folded nick) is a registered account.
    pub(crate) fn is_registered(&self, folded: &str) -> bool {
        self.hashes.contains_key(folded)
    }

    /// Whether `password` is the password of the account `folded`. Unknown accounts
    /// are false. Runs argon2 (constant time in the library) only for known ones.
    pub(crate) fn verify(&self, folded: &str, password: &Password) -> bool {
        let Some(stored) = self.hashes.get(folded) else {
            return false;
        };
        // Every stored hash parsed when the file was read.
        let Ok(hash) = PasswordHash::new(stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &hash)
            .is_ok()
    }

    /// Registered accounts.
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }
}

/// `Ok(None)` for a blank or comment line, else the nick and its hash.
fn parse_line(line: &str) -> Result<Option<(&str, &str)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (Some(nick), Some(hash), None) = (words.next(), words.next(), words.next()) else {
        return Err("expected NICK HASH".to_owned());
    };
    validate_nick(nick).map_err(|e| format!("nick {nick}: {e}"))?;
    let parsed = PasswordHash::new(hash).map_err(|e| format!("hash of {nick}: {e}"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!("hash of {nick}: not argon2id"));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("hash of {nick}: {e}"))?;
    if params.m_cost() > MAX_MEMORY_KIB || params.t_cost() > MAX_PASSES {
        return Err(format!(
            "hash of {nick}: costs more than {MAX_MEMORY_KIB} KiB or {MAX_PASSES} passes"
        ));
    }
    Ok(Some((nick, hash)))
}

/// The accounts sessions check against: the file's current contents, replaced whole by
/// [`AccountStore::reload`]. Without `--accounts` it is empty and stays so.
#[derive(Debug, Default)]
pub(crate) struct AccountStore {
    path: Option<PathBuf>,
    /// The current accounts. Readers clone the `Arc` and let go of the lock before
    /// running argon2, so a reload never waits for a login, nor a login for a reload.
    current: RwLock<Arc<Accounts>>,
}

impl AccountStore {
    /// Loads `path`, if given.
    pub(crate) fn open(path: Option<PathBuf>) -> Result<AccountStore, AccountsError> {
        let accounts = match &path {
            Some(path) => Accounts::load(path)?,
            None => Accounts::default(),
        };
        Ok(AccountStore {
            path,
            current: RwLock::new(Arc::new(accounts)),
        })
    }

    /// A store holding `accounts` and no file, for tests.
    #[cfg(test)]
    pub(crate) fn with(accounts: Accounts) -> AccountStore {
        AccountStore {
            path: None,
            current: RwLock::new(Arc::new(accounts)),
        }
    }

    /// The accounts now.
    pub(crate) fn current(&self) -> Arc<Accounts> {
        Arc::clone(&self.current.read())
    }

    /// Reads the file again and, if it parses, uses it from now on; on failure the
    /// accounts in use stay. Returns how many accounts it holds.
    pub(crate) fn reload(&self) -> Result<usize, AccountsError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let accounts = Accounts::load(path)?;
        let n = accounts.len();
        *self.current.write() = Arc::new(accounts);
        Ok(n)
    }

    /// Whether the server has an accounts file.
    pub(crate) fn is_enabled(&self) -> bool {
        self.path.is_some()
    }
}

/// Adds the account `nick` to the file at `path` (created if missing), or replaces its
/// password, hashing `password` at `cost`. The file is rewritten atomically; its other
/// lines, comments included, are kept.
pub fn add_account(
    path: &Path,
    nick: &str,
    password: &Password,
    cost: HashCost,
) -> Result<(), AccountsError> {
    validate_nick(nick).map_err(|e| AccountsError::Invalid(format!("nick {nick}: {e}")))?;
    if password.expose().is_empty() {
        return Err(AccountsError::Invalid("the password is empty".to_owned()));
    }
    let text = read_or_empty(path)?;
    // Refuse to rewrite a file that does not parse: the error names the line.
    Accounts::parse(&text, path)?;
    let hash = cost.hash(password)?;
    let mut lines = without_account(&text, nick);
    lines.push(format!("{nick} {hash}"));
    write_atomically(path, &lines)
}

/// Removes the account `nick` from the file at `path`, rewriting it atomically.
pub fn remove_account(path: &Path, nick: &str) -> Result<(), AccountsError> {
    let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let accounts = Accounts::parse(&text, path)?;
    if !accounts.is_registered(&fold(nick)) {
        return Err(AccountsError::NoSuchAccount {
            path: path.to_owned(),
            nick: nick.to_owned(),
        });
    }
    write_atomically(path, &without_account(&text, nick))
}

fn read_or_empty(path: &Path) -> Result<String, AccountsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(AccountsError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The file's lines without the one of `nick` (compared case-folded).
fn without_account(text: &str, nick: &str) -> Vec<String> {
    let folded = fold(nick);
    text.lines()
        .filter(|line| !matches!(parse_line(line), Ok(Some((n, _))) if fold(n) == folded))
        .map(str::to_owned)
        .collect()
}

/// Writes `lines` to a temporary file beside `path` (mode 0600: the hashes are
/// secrets too), syncs it and renames it over `path`, so a reader (a SIGHUP reload)
/// sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, lines: &[String]) -> Result<(), AccountsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| AccountsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        for line in lines {
            writeln!(file, "{line}")?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// What sessions consult for logins: the accounts, the failure records, and the
/// server's login rules.
#[derive(Debug, Default)]
pub(crate) struct Logins {
    /// The registered accounts.
    pub(crate) store: AccountStore,
    /// Recent failures by account and address.
    pub(crate) throttle: LoginThrottle,
    /// `--require-login`: a session not logged in is served only the handshake, login,
    /// keepalives and goodbye.
    pub(crate) require_login: bool,
    /// `--allow-plaintext-login`: check passwords sent without TLS from any address,
    /// not only from loopback.
    pub(crate) allow_plaintext: bool,
}

#[cfg(test)]
mod tests;
