//! The embedded MQTT broker (rumqttd): what AWS IoT Core's message broker is in the cloud.
//!
//! It listens for MQTT 3.1.1 clients on the configured address (127.0.0.1 by default, so only
//! this machine can publish unless the user binds wider), and gives the rule bridge an
//! in-process link, so the bridge's subscription costs no socket.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Largest MQTT payload the broker accepts. Above AWS IoT Core's 128 KB so that an oversize
/// message still reaches ingest and is quarantined with a named reason instead of vanishing
/// with a dropped connection.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Something else already listens on the MQTT address.
    #[error(
        "cannot listen for MQTT on {addr} (is another broker running? pick another --mqtt-port)"
    )]
    AddressInUse {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The broker's threads could not be started.
    #[error("the MQTT broker failed to start")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The broker started but never accepted a connection.
    #[error("the MQTT broker did not come up on {0} within 10 s")]
    NotReady(SocketAddr),
}

/// A running broker: its address and the rule bridge's link into it.
pub struct EmbeddedBroker {
    /// Where MQTT clients connect.
    pub addr: SocketAddr,
    /// The bridge's link: subscribe and receive in-process.
    pub link: (LinkTx, LinkRx),
    /// A second in-process link for publishing device commands (relay, thresholds).
    pub commands: LinkTx,
    /// Its receiving half, kept alive so the router keeps the link.
    pub commands_rx: LinkRx,
}

fn config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD_BYTES,
        // Per-connection QoS 1 window: enough for a publisher multiplexing many meters.
        max_inflight_count: 1_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "meterflow-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            // Messages handed to a subscriber per scheduling round.
            max_outgoing_packet_count: 5_000,
            // The commit log a slow subscriber reads from: 8 × 16 MiB (about 400,000 typical
            // readings) bounds memory while leaving the bridge far more slack than it needs.
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 8,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    }
}

/// Starts the broker on `addr` and waits until it accepts connections.
pub fn start(addr: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    // rumqttd binds in its own thread and only logs a failure there; probing first turns a
    // busy port into a clear error for the user.
    TcpListener::bind(addr)
        .map_err(|source| BrokerError::AddressInUse { addr, source })
        .map(drop)?;
    let mut broker = Broker::new(config(addr));
    let link = broker
        .link("meterflow-rule-bridge")
        .map_err(|e| BrokerError::Start(Box::new(e)))?;
    let (commands, commands_rx) = broker
        .link("meterflow-commands")
        .map_err(|e| BrokerError::Start(Box::new(e)))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(Box::new(e)))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let probe_addr = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    while TcpStream::connect_timeout(&probe_addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(BrokerError::NotReady(addr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(EmbeddedBroker {
        addr,
        link,
        commands,
        commands_rx,
    })
}

/// A free TCP port on 127.0.0.1 (for tests and `--mqtt-port 0`).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
