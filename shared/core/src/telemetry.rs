//! Telemetry v1: parsing a meter's MQTT message (or the IoT rule's output for it) into validated
//! [`Reading`]s and quarantine entries. See `docs/telemetry.md` for the contract.
//!
//! Parsing is one pass of `serde_json` into a borrowed struct whose fields are all optional, so a
//! missing field is reported by name instead of failing the whole parse, and a bad element of a
//! `readings` batch quarantines only that element. Only on an error is the message parsed a second
//! time (with `serde_path_to_error`) to name the offending field, so the hot path pays nothing.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::types::{Energy, InvalidEnergy, MeterId, MeterStatus, Reading, RelayState, Timestamp};
use crate::validation::{
    is_plausible_receive_time, Limits, QuarantineReason, Rejection, MAX_PAYLOAD_BYTES,
};

/// The telemetry version this platform understands.
pub const TELEMETRY_VERSION: u32 = 1;

/// How much of a refused payload is kept in quarantine when the whole would be too big to store.
const QUARANTINE_RAW_MAX: usize = 4 * 1024;

/// Quarantine key for messages whose meter cannot be told.
pub const UNKNOWN_METER_KEY: &str = "_unknown";

/// What the transport knows about a message besides its payload.
#[derive(Debug, Clone, Copy)]
pub struct MessageContext<'a> {
    /// The MQTT topic, if the payload does not carry `topic_meter_id` (the local rule bridge).
    pub topic: Option<&'a str>,
    /// Receive time to use when the payload carries no `received_ms`.
    pub received: Timestamp,
}

/// A message or reading that was refused, with everything an operator needs to see why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// Deterministic id (hash of meter, receive time, position and raw bytes): a redelivered or
    /// retried message overwrites its own entry instead of adding another.
    pub id: String,
    /// The meter id as the topic or payload gave it, or [`UNKNOWN_METER_KEY`].
    pub meter_key: String,
    /// When the platform received it.
    pub received: Timestamp,
    /// The named reason.
    pub reason: QuarantineReason,
    /// Which field, value or limit.
    pub detail: String,
    /// The raw payload (or the batch element), truncated to 4 KiB only if it was oversize.
    pub raw: String,
    /// Position in a `readings` batch, if the entry is one element of one.
    pub index: Option<u32>,
}

impl QuarantineEntry {
    /// A quarantine entry for a reading that parsed but was refused later (for example, its
    /// meter is unknown). The raw form is the reading re-encoded as telemetry v1.
    pub fn for_reading(reading: &Reading, rejection: Rejection) -> Self {
        let raw = encode_reading(reading);
        quarantine(
            Some(reading.meter_id.as_str()),
            reading.received,
            None,
            raw.as_bytes(),
            rejection,
        )
    }
}

/// Encodes a reading as a telemetry v1 JSON object (with `meter_id`), the form meters publish.
pub fn encode_reading(r: &Reading) -> String {
    let mut o = serde_json::Map::new();
    o.insert("v".into(), TELEMETRY_VERSION.into());
    o.insert("meter_id".into(), r.meter_id.as_str().into());
    if let Some(seq) = r.seq {
        o.insert("seq".into(), seq.into());
    }
    o.insert("ts".into(), r.ts.to_rfc3339().into());
    o.insert("energy_import_kwh".into(), r.energy_import.kwh().into());
    if let Some(e) = r.energy_export {
        o.insert("energy_export_kwh".into(), e.kwh().into());
    }
    for (k, v) in [
        ("power_w", r.power_w),
        ("voltage_v", r.voltage_v),
        ("current_a", r.current_a),
        ("power_factor", r.power_factor),
        ("frequency_hz", r.frequency_hz),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), v.into());
        }
    }
    o.insert("status".into(), r.status.as_str().into());
    if let Some(relay) = r.relay {
        o.insert("relay".into(), relay.as_str().into());
    }
    serde_json::Value::Object(o).to_string()
}

/// One parsed item of a message: a valid reading or a quarantine entry.
pub type ParsedItem = Result<Reading, QuarantineEntry>;

/// Where a topic's meter id is: `meters/{id}/telemetry`, or the Basic Ingest form
/// `$aws/rules/{rule}/meters/{id}/telemetry`.
pub fn meter_id_from_topic(topic: &str) -> Option<&str> {
    let rest = match topic.strip_prefix("$aws/rules/") {
        Some(r) => r.split_once('/')?.1,
        None => topic,
    };
    let id = rest.strip_prefix("meters/")?.strip_suffix("/telemetry")?;
    // A byte loop: ids are a few bytes long, shorter than `contains`'s search setup.
    (!id.is_empty() && !id.bytes().any(|b| b == b'/')).then_some(id)
}

/// Parses one message (an MQTT payload, or the IoT rule's output for it) into readings and
/// quarantine entries. Never fails: every outcome is one of the two.
pub fn parse_message(raw: &[u8], ctx: MessageContext<'_>, limits: &Limits) -> Vec<ParsedItem> {
    let mut out = Vec::with_capacity(1);
    parse_into(raw, ctx, limits, &mut out, 0, true);
    out
}

/// [`parse_message`] through `serde_json` alone, without the hand-written fast path: the
/// reference the fast path is tested and benchmarked against. Same results, slower.
pub fn parse_message_reference(
    raw: &[u8],
    ctx: MessageContext<'_>,
    limits: &Limits,
) -> Vec<ParsedItem> {
    let mut out = Vec::with_capacity(1);
    parse_into(raw, ctx, limits, &mut out, 0, false);
    out
}

/// [`parse_message`] appending to a caller's buffer, so a loop over many messages allocates
/// nothing per message.
pub fn parse_message_into(
    raw: &[u8],
    ctx: MessageContext<'_>,
    limits: &Limits,
    out: &mut Vec<ParsedItem>,
) {
    parse_into(raw, ctx, limits, out, 0, true);
}

fn parse_into(
    raw: &[u8],
    ctx: MessageContext<'_>,
    limits: &Limits,
    out: &mut Vec<ParsedItem>,
    depth: u8,
    fast_path: bool,
) {
    let topic_guess = ctx.topic.and_then(meter_id_from_topic);
    if raw.len() > MAX_PAYLOAD_BYTES {
        out.push(Err(quarantine(
            topic_guess,
            ctx.received,
            None,
            raw,
            Rejection::new(
                QuarantineReason::PayloadTooLarge,
                format!(
                    "payload is {} bytes; IoT Core's limit is {MAX_PAYLOAD_BYTES}",
                    raw.len()
                ),
            ),
        )));
        return;
    }
    // The common message, a single valid reading, straight into a `Reading`; every other
    // message (and every refusal) takes the general path below.
    if fast_path
        && crate::fastpath::reading_into(raw, topic_guess, ctx.received, limits, out).is_some()
    {
        return;
    }
    let wire: WireReading<'_> = match read_wire(raw, fast_path) {
        Ok(w) => w,
        Err(e) => {
            let rejection = classify_json_error(raw, &e);
            // A mistyped field spoils the typed parse, but the rule's own fields may still be
            // readable: file the entry under the right meter and receive time when they are.
            let rule: RuleFields<'_> = serde_json::from_slice(raw).unwrap_or_default();
            let meter = rule
                .topic_meter_id
                .as_deref()
                .or_else(|| rule.topic.as_deref().and_then(meter_id_from_topic))
                .or(topic_guess);
            let received = rule
                .received_ms
                .map(Timestamp::from_millis)
                .filter(|t| is_plausible_receive_time(*t))
                .unwrap_or(ctx.received);
            out.push(Err(quarantine(meter, received, None, raw, rejection)));
            return;
        }
    };
    let received = match wire.received_ms.map(Timestamp::from_millis) {
        Some(t) if is_plausible_receive_time(t) => t,
        _ => ctx.received,
    };

    // A non-JSON payload forwarded by an `encode(*, 'base64')` rule: unwrap it once.
    if let Some(b64) = wire.payload_b64.as_deref() {
        let topic = wire.topic.as_deref().or(ctx.topic);
        let inner_ctx = MessageContext { topic, received };
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(inner) if depth == 0 => parse_into(&inner, inner_ctx, limits, out, 1, fast_path),
            _ => out.push(Err(quarantine(
                topic.and_then(meter_id_from_topic),
                received,
                None,
                raw,
                Rejection::new(
                    QuarantineReason::SchemaViolation,
                    "field `payload_b64`: not a single level of standard base64",
                ),
            ))),
        }
        return;
    }

    let topic_meter: Option<&str> = wire
        .topic_meter_id
        .as_deref()
        .or_else(|| wire.topic.as_deref().and_then(meter_id_from_topic))
        .or(topic_guess);

    match &wire.readings {
        None => {
            let item = build_reading(&wire, None, topic_meter, received, limits).map_err(|rej| {
                quarantine(
                    topic_meter.or(wire.meter_id.as_deref()),
                    received,
                    None,
                    raw,
                    rej,
                )
            });
            out.push(item);
        }
        Some(elements) => {
            out.reserve(elements.len());
            for (i, element) in elements.iter().enumerate() {
                let index = u32::try_from(i).ok();
                let element_raw = element.get().as_bytes();
                let item = match read_wire(element_raw, fast_path) {
                    Ok(inner) if inner.readings.is_some() => Err(Rejection::new(
                        QuarantineReason::SchemaViolation,
                        "field `readings`: batches cannot be nested",
                    )),
                    Ok(inner) => build_reading(&inner, Some(&wire), topic_meter, received, limits),
                    Err(e) => Err(classify_json_error(element_raw, &e)),
                };
                out.push(item.map_err(|rej| {
                    quarantine(
                        topic_meter.or(wire.meter_id.as_deref()),
                        received,
                        index,
                        element_raw,
                        rej,
                    )
                }));
            }
        }
    }
}

/// Reads one JSON object: through the fast path, which fills the struct in place (no copy of
/// its ~340 bytes on return), unless it declines; then through `serde_json`.
fn read_wire(bytes: &[u8], fast_path: bool) -> Result<WireReading<'_>, serde_json::Error> {
    let mut w = WireReading::default();
    if fast_path && crate::fastpath::parse_flat_into(bytes, &mut w).is_some() {
        return Ok(w);
    }
    serde_json::from_slice(bytes)
}

/// Turns one wire reading (with batch-level defaults from `outer`) into a validated reading.
fn build_reading(
    w: &WireReading<'_>,
    outer: Option<&WireReading<'_>>,
    topic_meter: Option<&str>,
    received: Timestamp,
    limits: &Limits,
) -> Result<Reading, Rejection> {
    let schema = |detail: String| Rejection::new(QuarantineReason::SchemaViolation, detail);
    let version = w.v.or(outer.and_then(|o| o.v));
    match version {
        None => return Err(schema("missing required field `v`".into())),
        Some(TELEMETRY_VERSION) => {}
        Some(other) => {
            return Err(Rejection::new(
                QuarantineReason::UnsupportedVersion,
                format!("v = {other}; this platform understands v = {TELEMETRY_VERSION}"),
            ))
        }
    }
    let payload_meter = w
        .meter_id
        .as_deref()
        .or(outer.and_then(|o| o.meter_id.as_deref()));
    let meter_str = match (topic_meter, payload_meter) {
        (Some(t), Some(p)) if t != p => {
            return Err(Rejection::new(
                QuarantineReason::MeterIdMismatch,
                format!("payload meter_id {p:?} differs from the topic's {t:?}"),
            ))
        }
        (Some(t), _) => t,
        (None, Some(p)) => p,
        (None, None) => {
            return Err(schema(
                "no meter id: the event has no topic_meter_id and the payload no meter_id".into(),
            ))
        }
    };
    let meter_id =
        MeterId::parse(meter_str).map_err(|e| schema(format!("field `meter_id`: {e}")))?;
    let ts = match &w.ts {
        None => return Err(schema("missing required field `ts`".into())),
        Some(WireTs::Millis(ms)) => Timestamp::from_millis(*ms),
        Some(WireTs::Text(s)) => match crate::fastpath::rfc3339_fast(s) {
            Some(t) => t,
            None => Timestamp::parse_rfc3339(s).map_err(|e| schema(format!("field `ts`: {e}")))?,
        },
    };
    let energy_import = match w.energy_import_kwh {
        None => return Err(schema("missing required field `energy_import_kwh`".into())),
        Some(kwh) => energy_field("energy_import_kwh", kwh)?,
    };
    let energy_export = w
        .energy_export_kwh
        .map(|kwh| energy_field("energy_export_kwh", kwh))
        .transpose()?;
    for (field, value) in [
        ("power_w", w.power_w),
        ("voltage_v", w.voltage_v),
        ("current_a", w.current_a),
        ("power_factor", w.power_factor),
        ("frequency_hz", w.frequency_hz),
    ] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(Rejection::new(
                QuarantineReason::NonFiniteNumber,
                format!("field `{field}` is not a finite number"),
            ));
        }
    }
    let relay = match w.relay.as_deref() {
        None => None,
        Some(s) => Some(RelayState::parse(s).ok_or_else(|| {
            schema(format!(
                "field `relay`: {s:?} is neither \"closed\" nor \"open\""
            ))
        })?),
    };
    let reading = Reading {
        meter_id,
        ts,
        seq: w.seq,
        received,
        energy_import,
        energy_export,
        power_w: w.power_w,
        voltage_v: w.voltage_v,
        current_a: w.current_a,
        power_factor: w.power_factor,
        frequency_hz: w.frequency_hz,
        status: w
            .status
            .as_deref()
            .map(MeterStatus::parse)
            .unwrap_or_default(),
        relay,
    };
    limits.check(&reading)?;
    Ok(reading)
}

fn energy_field(field: &str, kwh: f64) -> Result<Energy, Rejection> {
    Energy::from_kwh(kwh).map_err(|e| match e {
        InvalidEnergy::NotFinite => Rejection::new(
            QuarantineReason::NonFiniteNumber,
            format!("field `{field}` is not a finite number"),
        ),
        InvalidEnergy::Negative(v) => Rejection::new(
            QuarantineReason::ValueOutOfRange,
            format!("{field} = {v} is negative; a cumulative register never is"),
        ),
        InvalidEnergy::TooLarge(v) => Rejection::new(
            QuarantineReason::ValueOutOfRange,
            format!("{field} = {v} is beyond any register"),
        ),
    })
}

/// Names what is wrong with JSON that failed to parse into `T`.
fn classify_json_error(raw: &[u8], err: &serde_json::Error) -> Rejection {
    let msg = err.to_string();
    if msg.contains("number out of range") || contains_non_finite_literal(raw) {
        return Rejection::new(
            QuarantineReason::NonFiniteNumber,
            format!("NaN, Infinity or an out-of-range number: {msg}"),
        );
    }
    if err.is_syntax() || err.is_eof() || err.is_io() {
        return Rejection::new(QuarantineReason::MalformedJson, msg);
    }
    // A type error: parse again, this time tracking the path, to say which field.
    let mut de = serde_json::Deserializer::from_slice(raw);
    let detail = match serde_path_to_error::deserialize::<_, WireReading<'_>>(&mut de) {
        Err(e) if e.path().to_string() != "." => {
            format!(
                "field `{}`: {}",
                e.path(),
                strip_position(&e.inner().to_string())
            )
        }
        _ => strip_position(&msg),
    };
    Rejection::new(QuarantineReason::SchemaViolation, detail)
}

/// serde_json appends " at line L column C"; the field path says more to an operator.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Whether the bytes hold a bare NaN or Infinity token (JSON has neither; some firmware sends
/// them anyway).
fn contains_non_finite_literal(raw: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in raw.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'N' if raw[i..].starts_with(b"NaN") => return true,
            b'I' if raw[i..].starts_with(b"Infinity") => return true,
            _ => {}
        }
    }
    false
}

fn quarantine(
    meter: Option<&str>,
    received: Timestamp,
    index: Option<u32>,
    raw: &[u8],
    rejection: Rejection,
) -> QuarantineEntry {
    let meter_key = match meter {
        Some(m) if MeterId::parse(m).is_ok() => m.to_owned(),
        _ => UNKNOWN_METER_KEY.to_owned(),
    };
    let mut h = Fnv64::new();
    h.write(meter_key.as_bytes());
    h.write(&received.millis().to_le_bytes());
    h.write(&index.map_or(u64::MAX, u64::from).to_le_bytes());
    h.write(raw);
    let kept = if raw.len() > MAX_PAYLOAD_BYTES {
        &raw[..QUARANTINE_RAW_MAX]
    } else {
        raw
    };
    QuarantineEntry {
        id: format!("{:016x}", h.finish()),
        meter_key,
        received,
        reason: rejection.reason,
        detail: rejection.detail,
        raw: String::from_utf8_lossy(kept).into_owned(),
        index,
    }
}

/// 64-bit FNV-1a: a stable, dependency-free hash for quarantine ids (not for security).
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The wire form of a reading, or of the rule's output around one. Every field is optional so
/// that missing fields are named by [`build_reading`] rather than failing the parse.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireReading<'a> {
    pub(crate) v: Option<u32>,
    #[serde(borrow)]
    pub(crate) meter_id: Option<Cow<'a, str>>,
    pub(crate) seq: Option<u64>,
    #[serde(borrow)]
    pub(crate) ts: Option<WireTs<'a>>,
    pub(crate) energy_import_kwh: Option<f64>,
    pub(crate) energy_export_kwh: Option<f64>,
    pub(crate) power_w: Option<f64>,
    pub(crate) voltage_v: Option<f64>,
    pub(crate) current_a: Option<f64>,
    pub(crate) power_factor: Option<f64>,
    pub(crate) frequency_hz: Option<f64>,
    #[serde(borrow)]
    pub(crate) status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) relay: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) readings: Option<Vec<&'a RawValue>>,
    // Added by the IoT rule (`topic(2) AS topic_meter_id, timestamp() AS received_ms`).
    #[serde(borrow)]
    pub(crate) topic_meter_id: Option<Cow<'a, str>>,
    pub(crate) received_ms: Option<i64>,
    // A rule may pass the whole topic instead, and wrap non-JSON payloads in base64.
    #[serde(borrow)]
    pub(crate) topic: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) payload_b64: Option<Cow<'a, str>>,
}

/// Only the fields the IoT rule adds, for filing a message whose payload does not parse.
#[derive(Default, Deserialize)]
struct RuleFields<'a> {
    #[serde(borrow)]
    topic_meter_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    topic: Option<Cow<'a, str>>,
    received_ms: Option<i64>,
}

/// `ts` is RFC 3339 text or epoch milliseconds.
#[derive(Debug)]
pub(crate) enum WireTs<'a> {
    Text(Cow<'a, str>),
    Millis(i64),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireTs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(WireTs::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(WireTs::Text(Cow::Owned(s.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WireTs::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(WireTs::Millis)
                    .map_err(|_| E::custom("epoch milliseconds out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(WireTs::Millis(v as i64))
                } else {
                    Err(E::custom("epoch milliseconds must be a whole number"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_800_000_000; // 2025-11-22T08:26:40Z

    fn ctx() -> MessageContext<'static> {
        MessageContext {
            topic: Some("meters/m-1/telemetry"),
            received: Timestamp::from_millis(NOW),
        }
    }

    fn parse(raw: &str) -> Vec<ParsedItem> {
        parse_message(raw.as_bytes(), ctx(), &Limits::default())
    }

    fn reason_of(raw: &str) -> (QuarantineReason, String) {
        let items = parse(raw);
        assert_eq!(items.len(), 1, "{items:?}");
        match items.into_iter().next() {
            Some(Err(q)) => (q.reason, q.detail),
            other => panic!("expected a quarantine entry, got {other:?}"),
        }
    }

    const GOOD: &str = r#"{"v":1,"ts":"2025-11-22T08:15:00Z","energy_import_kwh":1234.5,"power_w":420.5,"voltage_v":231.2,"current_a":1.9,"power_factor":0.97,"frequency_hz":50.01,"status":"ok","relay":"closed","seq":17}"#;

    #[test]
    fn a_valid_reading_parses_with_every_field() {
        let items = parse(GOOD);
        let r = items[0].as_ref().unwrap();
        assert_eq!(r.meter_id.as_str(), "m-1");
        assert_eq!(r.energy_import, Energy::from_mwh(1_234_500_000));
        assert_eq!(r.seq, Some(17));
        assert_eq!(r.relay, Some(RelayState::Closed));
        assert_eq!(r.received, Timestamp::from_millis(NOW));
        assert_eq!(
            r.ts,
            Timestamp::parse_rfc3339("2025-11-22T08:15:00Z").unwrap()
        );
    }

    #[test]
    fn the_rule_output_supplies_meter_and_receive_time() {
        let raw = r#"{"v":1,"ts":1763799300000,"energy_import_kwh":1,"topic_meter_id":"abc","received_ms":1763799400000}"#;
        let items = parse_message(
            raw.as_bytes(),
            MessageContext {
                topic: None,
                received: Timestamp::from_millis(0),
            },
            &Limits::default(),
        );
        let r = items[0].as_ref().unwrap();
        assert_eq!(r.meter_id.as_str(), "abc");
        assert_eq!(r.received.millis(), 1_763_799_400_000);
    }

    #[test]
    fn basic_ingest_topics_name_the_meter_too() {
        assert_eq!(
            meter_id_from_topic("$aws/rules/meterflow_ingest/meters/X9/telemetry"),
            Some("X9")
        );
        assert_eq!(meter_id_from_topic("meters/X9/telemetry"), Some("X9"));
        assert_eq!(meter_id_from_topic("meters/X9/commands"), None);
        assert_eq!(meter_id_from_topic("meters//telemetry"), None);
    }

    #[test]
    fn a_batch_quarantines_only_its_bad_elements() {
        let raw = r#"{"v":1,"readings":[
            {"ts":"2025-11-22T08:00:00Z","energy_import_kwh":1.0},
            {"ts":"2025-11-22T08:15:00Z","energy_import_kwh":"x"},
            {"ts":"2025-11-22T08:30:00Z","energy_import_kwh":1.2}]}"#;
        let items = parse(raw);
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[2].is_ok());
        let q = items[1].as_ref().unwrap_err();
        assert_eq!(q.reason, QuarantineReason::SchemaViolation);
        assert_eq!(q.index, Some(1));
        assert!(q.detail.contains("energy_import_kwh"), "{}", q.detail);
    }

    #[test]
    fn malformed_json_is_quarantined_as_such() {
        assert_eq!(
            reason_of(r#"{"v":1,"ts":"#).0,
            QuarantineReason::MalformedJson
        );
        assert_eq!(reason_of("hello").0, QuarantineReason::MalformedJson);
    }

    #[test]
    fn a_missing_field_is_a_schema_violation_naming_it() {
        let (reason, detail) = reason_of(r#"{"v":1,"energy_import_kwh":1}"#);
        assert_eq!(reason, QuarantineReason::SchemaViolation);
        assert!(detail.contains("`ts`"), "{detail}");
        let (_, detail) = reason_of(r#"{"v":1,"ts":1763799300000}"#);
        assert!(detail.contains("energy_import_kwh"), "{detail}");
    }

    #[test]
    fn a_mistyped_rule_output_is_still_filed_under_its_meter_and_receive_time() {
        let raw = r#"{"v":1,"ts":1763799300000,"energy_import_kwh":"lots","topic_meter_id":"m-9","received_ms":1763799400000}"#;
        let items = parse_message(
            raw.as_bytes(),
            MessageContext {
                topic: None,
                received: Timestamp::from_millis(NOW),
            },
            &Limits::default(),
        );
        let q = items[0].as_ref().unwrap_err();
        assert_eq!(q.reason, QuarantineReason::SchemaViolation);
        assert_eq!(q.meter_key, "m-9");
        assert_eq!(q.received.millis(), 1_763_799_400_000);
    }

    #[test]
    fn a_wrong_type_is_a_schema_violation_naming_the_field() {
        let (reason, detail) =
            reason_of(r#"{"v":1,"ts":1763799300000,"energy_import_kwh":1,"voltage_v":"high"}"#);
        assert_eq!(reason, QuarantineReason::SchemaViolation);
        assert!(detail.starts_with("field `voltage_v`"), "{detail}");
        let (_, detail) =
            reason_of(r#"{"v":1,"ts":1763799300000,"energy_import_kwh":1,"relay":"half"}"#);
        assert!(detail.contains("relay"), "{detail}");
    }

    #[test]
    fn an_unknown_version_is_unsupported() {
        assert_eq!(
            reason_of(r#"{"v":2,"ts":1763799300000,"energy_import_kwh":1}"#).0,
            QuarantineReason::UnsupportedVersion
        );
    }

    #[test]
    fn a_payload_meter_id_differing_from_the_topic_is_a_mismatch() {
        assert_eq!(
            reason_of(r#"{"v":1,"meter_id":"other","ts":1763799300000,"energy_import_kwh":1}"#).0,
            QuarantineReason::MeterIdMismatch
        );
    }

    #[test]
    fn nan_infinity_and_overflowing_numbers_are_non_finite() {
        for raw in [
            r#"{"v":1,"ts":1763799300000,"energy_import_kwh":NaN}"#,
            r#"{"v":1,"ts":1763799300000,"energy_import_kwh":1,"power_w":Infinity}"#,
            r#"{"v":1,"ts":1763799300000,"energy_import_kwh":1e999}"#,
        ] {
            assert_eq!(reason_of(raw).0, QuarantineReason::NonFiniteNumber, "{raw}");
        }
    }

    #[test]
    fn a_nan_inside_a_string_is_not_mistaken_for_a_number() {
        assert!(!contains_non_finite_literal(br#"{"status":"NaN"}"#));
        assert!(contains_non_finite_literal(br#"{"a":"x","b":NaN}"#));
    }

    #[test]
    fn negative_and_impossible_values_are_out_of_range() {
        assert_eq!(
            reason_of(r#"{"v":1,"ts":1763799300000,"energy_import_kwh":-5}"#).0,
            QuarantineReason::ValueOutOfRange
        );
        assert_eq!(
            reason_of(r#"{"v":1,"ts":1763799300000,"energy_import_kwh":5,"voltage_v":5000}"#).0,
            QuarantineReason::ValueOutOfRange
        );
    }

    #[test]
    fn future_and_ancient_timestamps_are_refused() {
        assert_eq!(
            reason_of(r#"{"v":1,"ts":"2025-11-22T09:30:00Z","energy_import_kwh":5}"#).0,
            QuarantineReason::ClockSkew
        );
        assert_eq!(
            reason_of(r#"{"v":1,"ts":"2020-01-01T00:00:00Z","energy_import_kwh":5}"#).0,
            QuarantineReason::TooOld
        );
    }

    #[test]
    fn an_oversize_payload_is_refused_before_parsing() {
        let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES));
        let items = parse(&big);
        let q = items[0].as_ref().unwrap_err();
        assert_eq!(q.reason, QuarantineReason::PayloadTooLarge);
        assert_eq!(q.raw.len(), QUARANTINE_RAW_MAX);
        assert_eq!(q.meter_key, "m-1");
    }

    #[test]
    fn a_base64_envelope_is_unwrapped_and_its_garbage_named() {
        let env = r#"{"payload_b64":"bm90IGpzb24=","topic":"meters/m-7/telemetry","received_ms":1763799400000}"#;
        let items = parse_message(
            env.as_bytes(),
            MessageContext {
                topic: None,
                received: Timestamp::from_millis(NOW),
            },
            &Limits::default(),
        );
        let q = items[0].as_ref().unwrap_err();
        assert_eq!(q.reason, QuarantineReason::MalformedJson);
        assert_eq!(q.meter_key, "m-7");
        assert_eq!(q.raw, "not json");
    }

    #[test]
    fn quarantine_ids_are_stable_across_redelivery() {
        let a = reason_of_id(r#"{"v":9}"#);
        let b = reason_of_id(r#"{"v":9}"#);
        assert_eq!(a, b);
        assert_ne!(a, reason_of_id(r#"{"v":8}"#));
    }

    fn reason_of_id(raw: &str) -> String {
        parse(raw)[0].as_ref().unwrap_err().id.clone()
    }
}
