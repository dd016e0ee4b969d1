//! The local outbox: where the alerts function's SMS and e-mail go when there is no SNS.
//!
//! Each message is printed to the console (one line) and appended to `outbox.jsonl` in the data
//! directory, one JSON object per line, so a test or a curious user can read exactly what would
//! have been sent. The alerts issue plugs its notifier in here; until then `meterflow up`
//! creates the outbox and nothing writes to it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One outgoing notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// `sms` or `email`.
    pub channel: String,
    /// Phone number or address.
    pub to: String,
    /// Subject line (e-mail) or a short title.
    pub subject: String,
    /// The text.
    pub body: String,
    /// When it was sent, simulated clock, epoch milliseconds.
    pub sent_ms: i64,
}

/// Why a message could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to the outbox {path}")]
pub struct OutboxError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Console + JSONL outbox.
pub struct Outbox {
    path: PathBuf,
    echo: bool,
    file: Mutex<()>,
}

impl Outbox {
    /// An outbox writing to `dir/outbox.jsonl`; `echo` also prints each message.
    pub fn new(dir: &Path, echo: bool) -> Self {
        Self {
            path: dir.join("outbox.jsonl"),
            echo,
            file: Mutex::new(()),
        }
    }

    /// The JSONL file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Delivers one message.
    pub fn send(&self, message: &OutboxMessage) -> Result<(), OutboxError> {
        let err = |source| OutboxError {
            path: self.path.display().to_string(),
            source,
        };
        let line = serde_json::to_string(message).map_err(|e| err(e.into()))?;
        let _guard = self.file.lock();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        writeln!(f, "{line}").map_err(err)?;
        if self.echo {
            eprintln!(
                "[outbox] {} to {}: {}",
                message.channel, message.to, message.subject
            );
        }
        Ok(())
    }

    /// Every message written so far.
    pub fn read_all(&self) -> Result<Vec<OutboxMessage>, OutboxError> {
        let err = |source| OutboxError {
            path: self.path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| err(e.into())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_messages_can_be_read_back_in_order() {
        let dir = std::env::temp_dir().join(format!("outbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let outbox = Outbox::new(&dir, false);
        let _ = std::fs::remove_file(outbox.path());
        for i in 0..2 {
            outbox
                .send(&OutboxMessage {
                    channel: "sms".into(),
                    to: "+61400000000".into(),
                    subject: format!("alert {i}"),
                    body: "Supply restored".into(),
                    sent_ms: i,
                })
                .unwrap();
        }
        let all = outbox.read_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].subject, "alert 1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
