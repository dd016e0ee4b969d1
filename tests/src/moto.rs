//! What every test against moto (the local AWS emulator `scripts/test` starts) needs: whether to
//! run at all, and table names no other case or run uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether to skip: no moto configured (`AWS_ENDPOINT_URL` unset). Under `CI` that is a failure,
/// not a skip, so a broken test script cannot pass by skipping.
pub fn skip_without_moto() -> bool {
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        return false;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "AWS_ENDPOINT_URL is not set: tests against DynamoDB need moto in CI \
             (scripts/test starts it and sets the variable)"
        );
    }
    eprintln!("skipping: AWS_ENDPOINT_URL not set (run scripts/test)");
    true
}

/// A table-name prefix starting with `tag` that no other case or test run uses, so cases run in
/// parallel on one moto server.
pub fn unique_prefix(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{nanos}-{n}-", std::process::id())
}
