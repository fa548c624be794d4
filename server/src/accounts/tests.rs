//! The accounts file: parsing (errors name the line), hashing and verifying, and the
//! atomic edits of `account add` / `remove`.

use super::*;

fn pw(s: &str) -> Password {
    Password::new(s)
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("accounts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join("accounts")
}

#[test]
fn a_file_parses_with_comments_and_blank_lines_and_verifies_case_folded() {
    let hash = HashCost::TEST.hash(&pw("s3cret pw")).unwrap_or_default();
    let text = format!("# accounts\n\n  Alice {hash}  \n");
    let accounts = Accounts::parse(&text, Path::new("f")).unwrap_or_default();
    assert_eq!(accounts.len(), 1);
    assert!(accounts.is_registered("alice"));
    assert!(accounts.verify("alice", &pw("s3cret pw")));
    assert!(!accounts.verify("alice", &pw("s3cret")));
    assert!(!accounts.verify("bob", &pw("s3cret pw")));
    let shown = format!("{accounts:?}");
    assert!(!shown.contains("argon2"), "{shown}");
}

#[test]
fn parse_errors_name_the_line_and_the_fault() {
    let good = HashCost::TEST.hash(&pw("x")).unwrap_or_default();
    let argon2i = good.replace("$argon2id$", "$argon2i$");
    let cases = [
        ("# c\nalice\n".to_owned(), 2, "expected NICK HASH"),
        (format!("alice {good} extra\n"), 1, "expected NICK HASH"),
        (format!("\n\nbad/nick {good}\n"), 3, "nick bad/nick"),
        ("alice notahash\n".to_owned(), 1, "hash of alice"),
        (format!("alice {argon2i}\n"), 1, "not argon2id"),
        (format!("alice {good}\nALICE {good}\n"), 2, "listed twice"),
        (
            format!("alice {}\n", good.replace("m=8,", "m=1000000,")),
            1,
            "costs more",
        ),
    ];
    for (text, line, reason) in cases {
        match Accounts::parse(&text, Path::new("acc")) {
            Err(e @ AccountsError::Parse { line: l, .. }) => {
                assert_eq!(l, line, "{e}");
                let shown = e.to_string();
                assert!(shown.starts_with(&format!("acc:{line}: ")), "{shown}");
                assert!(shown.contains(reason), "{shown} lacks {reason}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn add_and_remove_rewrite_the_file_keeping_other_lines() {
    let path = temp_path("edit");
    add_account(&path, "alice", &pw("one"), HashCost::TEST).unwrap_or_else(|e| panic!("{e}"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.insert_str(0, "# operators\n");
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    add_account(&path, "bob", &pw("two"), HashCost::TEST).unwrap_or_else(|e| panic!("{e}"));
    // Adding again replaces the password.
    add_account(&path, "ALICE", &pw("three"), HashCost::TEST).unwrap_or_else(|e| panic!("{e}"));
    let accounts = Accounts::load(&path).unwrap_or_default();
    assert_eq!(accounts.len(), 2);
    assert!(accounts.verify("alice", &pw("three")));
    assert!(!accounts.verify("alice", &pw("one")));
    assert!(accounts.verify("bob", &pw("two")));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(text.starts_with("# operators\n"), "{text}");
    assert!(
        !text.contains("three"),
        "the password itself is never written"
    );

    remove_account(&path, "Bob").unwrap_or_else(|e| panic!("{e}"));
    let accounts = Accounts::load(&path).unwrap_or_default();
    assert_eq!(accounts.len(), 1);
    assert!(matches!(
        remove_account(&path, "bob"),
        Err(AccountsError::NoSuchAccount { .. })
    ));
    assert!(matches!(
        add_account(&path, "no spaces", &pw("x"), HashCost::TEST),
        Err(AccountsError::Invalid(_))
    ));
    assert!(matches!(
        add_account(&path, "carol", &pw(""), HashCost::TEST),
        Err(AccountsError::Invalid(_))
    ));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0);
    assert_eq!(mode & 0o777, 0o600);
    let leftovers = std::fs::read_dir(path.parent().unwrap_or(&path))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 1, "no temporary file is left behind");
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
}

#[test]
fn a_reload_that_fails_keeps_the_accounts_in_use() {
    let path = temp_path("reload");
    add_account(&path, "alice", &pw("one"), HashCost::TEST).unwrap_or_else(|e| panic!("{e}"));
    let store = AccountStore::open(Some(path.clone())).unwrap_or_default();
    assert!(store.current().is_registered("alice"));
    add_account(&path, "bob", &pw("two"), HashCost::TEST).unwrap_or_else(|e| panic!("{e}"));
    assert!(!store.current().is_registered("bob"));
    assert_eq!(store.reload().ok(), Some(2));
    assert!(store.current().is_registered("bob"));
    std::fs::write(&path, "garbage\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.reload(),
        Err(AccountsError::Parse { line: 1, .. })
    ));
    assert!(store.current().verify("bob", &pw("two")));
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
}

#[test]
fn the_default_cost_is_argon2s_recommended_one() {
    assert_eq!(
        HashCost::default(),
        HashCost {
            memory_kib: 19 * 1024,
            passes: 2
        }
    );
}
