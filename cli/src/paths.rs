//! Where the command line keeps its data by default.

use std::path::PathBuf;

/// `$XDG_DATA_HOME/meterflow` (`~/.local/share/meterflow` on Linux, the platform's equivalent
/// elsewhere), or `./meterflow-data` where the platform has no data directory.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("meterflow"))
        .unwrap_or_else(|| PathBuf::from("meterflow-data"))
}
