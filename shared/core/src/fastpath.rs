//! A hand-written fast path for the common telemetry message: one flat JSON object of numbers
//! and plain strings, with a canonical RFC 3339 or epoch-millisecond `ts`.
//!
//! Why hand-written: ingest's budget is about a microsecond per reading on one core, and on this
//! project's 2-core machines `serde_json` spends about 1.2 µs deserialising a 230-byte reading
//! into a typed struct (`sonic-rs` measured about the same), much of it in generic visitor
//! plumbing and float conversion this fixed shape does not need. `meterflow bench ingest`
//! measures both paths in the same run (`fast_path_speedup_vs_serde`: 1.1–2.0× for parse and
//! validate together, depending on how noisy the machine is).
//!
//! It has two layers. [`reading_into`] turns the usual message — a single reading that passes
//! validation — straight into a [`Reading`], with no intermediate wire struct: about 3,400
//! instructions a reading where the struct-filling scanner below and `build_reading` took about
//! 5,000 (callgrind), which is most of what ingest spends per reading in memory. Anything else
//! it declines, and [`parse_flat_into`] fills a `WireReading` for `build_reading`, so refused
//! messages get their named error and batch elements their batch defaults.
//!
//! Both scanners handle only what they are sure of and return `None` for anything else —
//! escapes, nesting, booleans, duplicate or mistyped fields, numbers out of range,
//! non-canonical timestamps — so the `serde_json` path still parses (and names the error of)
//! every other message. The tests below and `tests/tests/schema_fixtures.rs` check that every
//! path reads every sample and simulated message identically.

use std::borrow::Cow;

use crate::telemetry::{meter_id_from_topic, ParsedItem, WireReading, WireTs, TELEMETRY_VERSION};
use crate::types::{Energy, MeterId, MeterStatus, Reading, RelayState, Timestamp};
use crate::validation::{is_plausible_receive_time, Limits};

/// Parses a flat telemetry object, or returns `None` to defer to `serde_json`.
#[cfg(test)]
pub(crate) fn parse_flat(raw: &[u8]) -> Option<WireReading<'_>> {
    let mut w = WireReading::default();
    parse_flat_into(raw, &mut w).map(|()| w)
}

/// Parses a flat telemetry object into `w` (which must start as the default), or returns
/// `None` to defer to `serde_json` (`w` then holds a partial parse to be discarded).
pub(crate) fn parse_flat_into<'a>(raw: &'a [u8], w: &mut WireReading<'a>) -> Option<()> {
    // One UTF-8 check of the whole message (cheaper than one per string, measured), after
    // which strings are cut from it without further checks.
    let text = std::str::from_utf8(raw).ok()?;
    let mut c = Cursor {
        s: text,
        b: raw,
        i: 0,
    };
    let mut seen: u32 = 0;
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.peek()? == b'}' {
        c.i += 1;
        return c.end().then_some(());
    }
    loop {
        c.ws();
        let field = match c.known_key() {
            Some(f) => f,
            None => match c.plain_string()? {
                // `readings` and `payload_b64` take the general path; so does anything nested.
                "readings" | "payload_b64" => return None,
                _ => OTHER,
            },
        };
        c.ws();
        c.eat(b':')?;
        c.ws();
        let bit = match field {
            OTHER => {
                c.skip_scalar()?;
                OTHER
            }
            F_V => {
                w.v = Some(u32::try_from(c.opt_uint()?.unwrap_or(u64::MAX)).ok()?);
                0
            }
            F_METER_ID => {
                w.meter_id = c.opt_str()?.map(Cow::Borrowed);
                1
            }
            F_SEQ => {
                w.seq = c.opt_uint()?;
                2
            }
            F_TS => {
                w.ts = match c.peek()? {
                    b'"' => Some(WireTs::Text(Cow::Borrowed(c.plain_string()?))),
                    b'n' => c.null()?,
                    _ => Some(WireTs::Millis(c.int()?)),
                };
                3
            }
            F_ENERGY_IMPORT_KWH => {
                w.energy_import_kwh = c.opt_f64()?;
                4
            }
            F_ENERGY_EXPORT_KWH => {
                w.energy_export_kwh = c.opt_f64()?;
                5
            }
            F_POWER_W => {
                w.power_w = c.opt_f64()?;
                6
            }
            F_VOLTAGE_V => {
                w.voltage_v = c.opt_f64()?;
                7
            }
            F_CURRENT_A => {
                w.current_a = c.opt_f64()?;
                8
            }
            F_POWER_FACTOR => {
                w.power_factor = c.opt_f64()?;
                9
            }
            F_FREQUENCY_HZ => {
                w.frequency_hz = c.opt_f64()?;
                10
            }
            F_STATUS => {
                w.status = c.opt_str()?.map(Cow::Borrowed);
                11
            }
            F_RELAY => {
                w.relay = c.opt_str()?.map(Cow::Borrowed);
                12
            }
            F_TOPIC_METER_ID => {
                w.topic_meter_id = c.opt_str()?.map(Cow::Borrowed);
                13
            }
            F_RECEIVED_MS => {
                w.received_ms = match c.peek()? {
                    b'n' => c.null()?,
                    _ => Some(c.int()?),
                };
                14
            }
            F_TOPIC => {
                w.topic = c.opt_str()?.map(Cow::Borrowed);
                15
            }
            _ => return None,
        };
        if bit != OTHER {
            // serde rejects a repeated field; let it say so.
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
        }
        c.ws();
        match c.peek()? {
            b',' => c.i += 1,
            b'}' => {
                c.i += 1;
                return c.end().then_some(());
            }
            _ => return None,
        }
    }
}

/// Reads a flat telemetry object straight into a valid [`Reading`], or returns `None` for
/// anything else: a message this scanner is not sure of, or one that would be refused. The
/// general path ([`parse_flat_into`], then `serde_json`) then reads it again and names the
/// error, so this one never has to; it is only ever a shortcut to the same result.
///
/// `topic_meter` is the meter id from the transport's topic, if any.
#[cfg(test)]
pub(crate) fn reading(
    raw: &[u8],
    topic_meter: Option<&str>,
    received: Timestamp,
    limits: &Limits,
) -> Option<Reading> {
    let mut out = Vec::new();
    reading_into(raw, topic_meter, received, limits, &mut out)?;
    out.pop().and_then(Result::ok)
}

/// [`reading`], appended to `out`: built in place there (a reading is 192 bytes, and each copy
/// of it on the way out of a function showed in the profile). `None`, with `out` as it was,
/// when the general path must read the message.
pub(crate) fn reading_into(
    raw: &[u8],
    topic_meter: Option<&str>,
    received: Timestamp,
    limits: &Limits,
    out: &mut Vec<ParsedItem>,
) -> Option<()> {
    let f = scan_flat(raw)?;
    if f.v != Some(u64::from(TELEMETRY_VERSION)) {
        return None;
    }
    let received = match f.received_ms.map(Timestamp::from_millis) {
        Some(t) if is_plausible_receive_time(t) => t,
        _ => received,
    };
    // The same precedence as `telemetry::parse_into`: the rule's fields, then the topic.
    let topic_meter = match (f.topic_meter_id, f.topic) {
        (Some(id), _) => Some(id),
        (None, Some(topic)) => meter_id_from_topic(topic),
        (None, None) => None,
    }
    .or(topic_meter);
    let meter = match (topic_meter, f.meter_id) {
        (Some(t), Some(p)) if t.as_bytes() != p => return None,
        (Some(t), _) => t,
        (None, p) => std::str::from_utf8(p?).ok()?,
    };
    let meter_id = MeterId::parse(meter).ok()?;
    let ts = f.ts?;
    let energy_import = Energy::from_kwh(f.energy_import_kwh?).ok()?;
    let energy_export = match f.energy_export_kwh {
        Some(kwh) => Some(Energy::from_kwh(kwh).ok()?),
        None => None,
    };
    out.push(Ok(Reading {
        meter_id,
        ts,
        seq: f.seq,
        received,
        energy_import,
        energy_export,
        power_w: f.power_w,
        voltage_v: f.voltage_v,
        current_a: f.current_a,
        power_factor: f.power_factor,
        frequency_hz: f.frequency_hz,
        status: f.status.map(MeterStatus::parse).unwrap_or_default(),
        relay: f.relay,
    }));
    if let Some(Ok(r)) = out.last() {
        if limits.check(r).is_err() {
            out.pop();
            return None;
        }
    }
    Some(())
}

/// The fields of a flat message as [`reading`] needs them: text borrowed and checked, numbers
/// converted (and finite), `ts` already an instant.
#[derive(Default)]
struct Flat<'a> {
    v: Option<u64>,
    /// Bytes, not yet text: it usually equals the topic's id, which is text already.
    meter_id: Option<&'a [u8]>,
    seq: Option<u64>,
    ts: Option<Timestamp>,
    energy_import_kwh: Option<f64>,
    energy_export_kwh: Option<f64>,
    power_w: Option<f64>,
    voltage_v: Option<f64>,
    current_a: Option<f64>,
    power_factor: Option<f64>,
    frequency_hz: Option<f64>,
    status: Option<&'a str>,
    relay: Option<RelayState>,
    topic_meter_id: Option<&'a str>,
    received_ms: Option<i64>,
    topic: Option<&'a str>,
}

/// Scans a flat object for [`reading`]. It is [`parse_flat_into`] pared down to what the
/// common message needs, at a few instructions a byte: keys are recognised by their first
/// byte and one fixed-length comparison, `ts` text is converted while it is scanned, the usual
/// `status` and `relay` words are matched in place, and numbers are accumulated in one loop.
/// It declines a little more than [`parse_flat_into`] (numbers with exponents, `ts` text that
/// is not canonical RFC 3339, a `relay` that is neither state), leaving those to it.
fn scan_flat(raw: &[u8]) -> Option<Flat<'_>> {
    let mut c = Scan { b: raw, i: 0 };
    let mut f = Flat::default();
    let mut seen: u32 = 0;
    c.ws();
    c.eat(b'{')?;
    loop {
        c.ws();
        let field = c.key()?;
        c.colon()?;
        if c.peek()? == b'n' {
            // A null known field is absent, as serde reads an `Option`; an unknown one skipped.
            c.null()?;
        } else {
            match field {
                F_V => f.v = Some(c.unsigned()?),
                F_METER_ID => f.meter_id = Some(c.string()?),
                F_SEQ => f.seq = Some(c.unsigned()?),
                F_TS => {
                    f.ts = Some(if c.peek()? == b'"' {
                        c.ts_text()?
                    } else {
                        Timestamp::from_millis(c.int()?)
                    });
                }
                F_ENERGY_IMPORT_KWH => f.energy_import_kwh = Some(c.decimal()?),
                F_ENERGY_EXPORT_KWH => f.energy_export_kwh = Some(c.decimal()?),
                F_POWER_W => f.power_w = Some(c.decimal()?),
                F_VOLTAGE_V => f.voltage_v = Some(c.decimal()?),
                F_CURRENT_A => f.current_a = Some(c.decimal()?),
                F_POWER_FACTOR => f.power_factor = Some(c.decimal()?),
                F_FREQUENCY_HZ => f.frequency_hz = Some(c.decimal()?),
                F_STATUS => f.status = Some(c.status()?),
                F_RELAY => f.relay = Some(c.relay()?),
                F_TOPIC_METER_ID => f.topic_meter_id = Some(c.text()?),
                F_RECEIVED_MS => f.received_ms = Some(c.int()?),
                F_TOPIC => f.topic = Some(c.text()?),
                _ => {
                    if c.peek()? == b'"' {
                        c.text()?;
                    } else {
                        c.decimal()?;
                    }
                }
            }
        }
        if field != OTHER {
            // serde rejects a repeated field; let it say so.
            if seen & (1 << field) != 0 {
                return None;
            }
            seen |= 1 << field;
        }
        match c.after_ws()? {
            b',' => c.i += 1,
            b'}' => {
                c.i += 1;
                c.ws();
                return (c.i == raw.len()).then_some(f);
            }
            _ => return None,
        }
    }
}

/// The byte cursor of [`scan_flat`]. It checks UTF-8 only in the strings it returns as text:
/// everything else it accepts is ASCII it matched byte by byte, and the usual message has one
/// such string (`meter_id`), cheaper to check alone than the whole message.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, without consuming it. (Compact JSON has none, so
    /// the first test settles it.)
    fn after_ws(&mut self) -> Option<u8> {
        match self.peek()? {
            b' ' | b'\n' | b'\r' | b'\t' => {
                self.ws();
                self.peek()
            }
            byte => Some(byte),
        }
    }

    /// The `:` after a key, and the whitespace around it.
    fn colon(&mut self) -> Option<()> {
        if self.after_ws()? != b':' {
            return None;
        }
        self.i += 1;
        self.after_ws().map(|_| ())
    }

    fn null(&mut self) -> Option<()> {
        self.b.get(self.i..self.i + 4).filter(|s| *s == b"null")?;
        self.i += 4;
        Some(())
    }

    /// Whether `word` (a key or value with its closing quote) comes next; consumes it if so.
    /// The length is a constant at every call, so the comparison compiles to a few loads.
    fn word(&mut self, word: &[u8]) -> bool {
        let matched = self.b.get(self.i..self.i + word.len()) == Some(word);
        if matched {
            self.i += word.len();
        }
        matched
    }

    /// A key and its field id (`OTHER` for an unknown key); `None` for a key only the general
    /// path handles (`readings`, `payload_b64`), or for no plain string at all. (Forced
    /// inline like the number readers below: as calls, callgrind counted ~300 more
    /// instructions a reading, the cursor going through memory; inlining more than these
    /// three added instructions instead.)
    #[inline(always)]
    fn key(&mut self) -> Option<u8> {
        self.eat(b'"')?;
        let known = match self.peek()? {
            b'v' if self.word(b"v\"") => F_V,
            b'v' if self.word(b"voltage_v\"") => F_VOLTAGE_V,
            b'm' if self.word(b"meter_id\"") => F_METER_ID,
            b's' if self.word(b"seq\"") => F_SEQ,
            b's' if self.word(b"status\"") => F_STATUS,
            b't' if self.word(b"ts\"") => F_TS,
            b't' if self.word(b"topic_meter_id\"") => F_TOPIC_METER_ID,
            b't' if self.word(b"topic\"") => F_TOPIC,
            b'e' if self.word(b"energy_import_kwh\"") => F_ENERGY_IMPORT_KWH,
            b'e' if self.word(b"energy_export_kwh\"") => F_ENERGY_EXPORT_KWH,
            b'p' if self.word(b"power_w\"") => F_POWER_W,
            b'p' if self.word(b"power_factor\"") => F_POWER_FACTOR,
            b'c' if self.word(b"current_a\"") => F_CURRENT_A,
            b'f' if self.word(b"frequency_hz\"") => F_FREQUENCY_HZ,
            b'r' if self.word(b"relay\"") => F_RELAY,
            b'r' if self.word(b"received_ms\"") => F_RECEIVED_MS,
            _ => OTHER,
        };
        if known != OTHER {
            return Some(known);
        }
        // Back to the opening quote to read the unknown key whole.
        self.i -= 1;
        match self.text()? {
            "readings" | "payload_b64" => None,
            _ => Some(OTHER),
        }
    }

    /// The bytes of a string without escapes or control characters, not checked as UTF-8.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + find_string_stop(self.b.get(start..)?)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        self.b.get(start..end)
    }

    /// A string without escapes or control characters, as text.
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.string()?).ok()
    }

    /// A `status` value: the usual word matched in place, any other read as text.
    fn status(&mut self) -> Option<&'a str> {
        if self.word(b"\"ok\"") {
            return Some("ok");
        }
        self.text()
    }

    /// A `relay` value: one of the two states, or `None` (the general path names the error).
    fn relay(&mut self) -> Option<RelayState> {
        if self.word(b"\"closed\"") {
            Some(RelayState::Closed)
        } else if self.word(b"\"open\"") {
            Some(RelayState::Open)
        } else {
            None
        }
    }

    /// `ts` as canonical RFC 3339 text, converted as it is scanned.
    fn ts_text(&mut self) -> Option<Timestamp> {
        self.eat(b'"')?;
        let (t, len) = rfc3339_prefix(self.b.get(self.i..)?)?;
        self.i += len;
        self.eat(b'"')?;
        Some(t)
    }

    /// The digits from the cursor folded into `m` (wrapping past 19 digits, which callers
    /// refuse or redo), and how many there were. Inlined, so the cursor stays in a register.
    /// A byte loop: numbers here are a few digits long, and an eight-bytes-at-a-time (SWAR)
    /// version measured more instructions and about as many simulated cycles.
    #[inline(always)]
    fn digits(&mut self, m: &mut u64) -> usize {
        let start = self.i;
        let mut i = start;
        while let Some(&byte) = self.b.get(i) {
            let d = byte.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        self.i = i;
        i - start
    }

    /// A JSON integer without sign; `None` for leading zeros, overflow, or a fraction or
    /// exponent (serde refuses those for an integer field, or reads them its way).
    #[inline(always)]
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v = 0;
        let len = self.digits(&mut v);
        if len == 0 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        if len > 19 {
            // Past 19 digits the folded value may have wrapped: redo it checked.
            v = self.b[start..self.i].iter().try_fold(0u64, |v, &byte| {
                v.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
            })?;
        }
        (!matches!(self.peek(), Some(b'.' | b'e' | b'E'))).then_some(v)
    }

    /// A JSON integer as an `i64`. `-0` is declined: `serde_json` reads it as the float -0.0,
    /// which an `i64` field refuses.
    fn int(&mut self) -> Option<i64> {
        if self.peek()? == b'-' {
            self.i += 1;
            let magnitude = self.unsigned().filter(|&u| u != 0)?;
            return 0i64.checked_sub_unsigned(magnitude);
        }
        i64::try_from(self.unsigned()?).ok()
    }

    /// A number of the form `-?digits(.digits)?` with at most 19 digits and a mantissa below
    /// 2^53, converted exactly as `serde_json` does: the mantissa and the power of ten are both
    /// exact doubles, so one division rounds correctly (Clinger's fast path).
    #[inline(always)]
    fn decimal(&mut self) -> Option<f64> {
        let negative = self.peek()? == b'-';
        self.i += usize::from(negative);
        let start = self.i;
        let mut m: u64 = 0;
        let int_len = self.digits(&mut m);
        // JSON forbids an empty integer part and leading zeros.
        if int_len == 0 || (int_len > 1 && self.b[start] == b'0') {
            return None;
        }
        let mut frac_len = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            frac_len = self.digits(&mut m);
            if frac_len == 0 {
                return None;
            }
        }
        if int_len + frac_len > 19 || m >= 1 << 53 || matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        let v = m as f64 / POW10[frac_len];
        Some(if negative { -v } else { v })
    }
}

// Field ids: a known key is recognised once and then dispatched on a small integer.
const F_V: u8 = 0;
const F_METER_ID: u8 = 1;
const F_SEQ: u8 = 2;
const F_TS: u8 = 3;
const F_ENERGY_IMPORT_KWH: u8 = 4;
const F_ENERGY_EXPORT_KWH: u8 = 5;
const F_POWER_W: u8 = 6;
const F_VOLTAGE_V: u8 = 7;
const F_CURRENT_A: u8 = 8;
const F_POWER_FACTOR: u8 = 9;
const F_FREQUENCY_HZ: u8 = 10;
const F_STATUS: u8 = 11;
const F_RELAY: u8 = 12;
const F_TOPIC_METER_ID: u8 = 13;
const F_RECEIVED_MS: u8 = 14;
const F_TOPIC: u8 = 15;
/// Stands for any key the fast path does not know (its value must be a scalar to be skipped).
const OTHER: u8 = 31;

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// Only whitespace remains.
    fn end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string without escapes or control characters. (A plain byte loop: keys and values
    /// are a few bytes long, shorter than a SIMD search needs to pay off.)
    fn plain_string(&mut self) -> Option<&'a str> {
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let i = start + find_string_stop(b.get(start..)?)?;
        if b[i] != b'"' {
            return None;
        }
        self.i = i + 1;
        self.s.get(start..i)
    }

    /// Recognises a known key by comparing the bytes after the opening quote with each
    /// candidate spelled out, closing quote included: cheaper than scanning for the quote and
    /// then comparing. Returns the field id, or `None` to let [`Cursor::plain_string`] read an
    /// unknown key.
    fn known_key(&mut self) -> Option<u8> {
        if self.peek()? != b'"' {
            return None;
        }
        let rest = self.b.get(self.i + 1..)?;
        let candidates: &[(&[u8], u8)] = match rest.first()? {
            b'v' => &[(b"v", F_V), (b"voltage_v", F_VOLTAGE_V)],
            b'm' => &[(b"meter_id", F_METER_ID)],
            b's' => &[(b"seq", F_SEQ), (b"status", F_STATUS)],
            b't' => &[
                (b"ts", F_TS),
                (b"topic_meter_id", F_TOPIC_METER_ID),
                (b"topic", F_TOPIC),
            ],
            b'e' => &[
                (b"energy_import_kwh", F_ENERGY_IMPORT_KWH),
                (b"energy_export_kwh", F_ENERGY_EXPORT_KWH),
            ],
            b'p' => &[(b"power_w", F_POWER_W), (b"power_factor", F_POWER_FACTOR)],
            b'c' => &[(b"current_a", F_CURRENT_A)],
            b'f' => &[(b"frequency_hz", F_FREQUENCY_HZ)],
            b'r' => &[(b"relay", F_RELAY), (b"received_ms", F_RECEIVED_MS)],
            _ => return None,
        };
        for &(name, id) in candidates {
            let n = name.len();
            if rest.get(n) == Some(&b'"') && rest.get(..n) == Some(name) {
                self.i += n + 2;
                return Some(id);
            }
        }
        None
    }

    fn null<T>(&mut self) -> Option<Option<T>> {
        self.b.get(self.i..self.i + 4).filter(|s| *s == b"null")?;
        self.i += 4;
        Some(None)
    }

    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.peek()? {
            b'"' => self.plain_string().map(Some),
            b'n' => self.null(),
            _ => None,
        }
    }

    /// A JSON number token: its text, whether it is an integer, and its value when the
    /// value is exactly computable in one step (see below).
    fn number(&mut self) -> Option<(&'a str, bool, Option<f64>)> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let int_start = i;
        let mut mantissa: u64 = 0;
        i = accumulate_digits(b, i, &mut mantissa);
        let int_digits = &b[int_start..i];
        // JSON forbids an empty integer part and leading zeros.
        if int_digits.is_empty() || (int_digits.len() > 1 && int_digits[0] == b'0') {
            return None;
        }
        let mut frac_digits: &[u8] = &[];
        if b.get(i) == Some(&b'.') {
            i += 1;
            let frac_start = i;
            i = accumulate_digits(b, i, &mut mantissa);
            frac_digits = &b[frac_start..i];
            if frac_digits.is_empty() {
                return None;
            }
        }
        let mut exp10: i64 = 0;
        let mut has_exp = false;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            has_exp = true;
            i += 1;
            let neg_exp = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let exp_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                exp10 = (exp10 * 10 + i64::from(b[i] - b'0')).min(100_000);
                i += 1;
            }
            if i == exp_start {
                return None;
            }
            if neg_exp {
                exp10 = -exp10;
            }
        }
        self.i = i;
        let integer = frac_digits.is_empty() && !has_exp;
        // Clinger's fast path: an integer mantissa below 2^53 times or over an exact power of
        // ten (at most 10^22) is exactly representable on both sides, so one IEEE operation
        // gives the correctly rounded result, the same as a full decimal conversion.
        let value = if int_digits.len() + frac_digits.len() <= 19 {
            let m = mantissa;
            let e = exp10 - frac_digits.len() as i64;
            (m < (1 << 53) && (-22..=22).contains(&e)).then(|| {
                let v = if e >= 0 {
                    m as f64 * POW10[e as usize]
                } else {
                    m as f64 / POW10[(-e) as usize]
                };
                if negative {
                    -v
                } else {
                    v
                }
            })
        } else {
            None
        };
        Some((self.s.get(start..i)?, integer, value))
    }

    fn opt_f64(&mut self) -> Option<Option<f64>> {
        if self.peek()? == b'n' {
            return self.null();
        }
        if let Some(v) = self.simple_decimal() {
            return Some(Some(v));
        }
        let (text, _, fast) = self.number()?;
        let v: f64 = match fast {
            Some(v) => v,
            None => text.parse().ok()?,
        };
        // serde_json refuses overflow ("number out of range"): let it.
        v.is_finite().then_some(Some(v))
    }

    /// The common number shape, `-?digits(.digits)?` with at most 19 digits and a mantissa below
    /// 2^53, converted in one pass (Clinger's fast path, see [`Cursor::number`]); `None`, with
    /// the cursor unmoved, for anything else.
    fn simple_decimal(&mut self) -> Option<f64> {
        let b = self.b;
        let mut i = self.i;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let digits_start = i;
        let mut m: u64 = 0;
        match *b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = accumulate_digits(b, i, &mut m),
            _ => return None,
        }
        let int_len = i - digits_start;
        let mut frac_len = 0;
        if b.get(i) == Some(&b'.') {
            let frac_start = i + 1;
            i = accumulate_digits(b, frac_start, &mut m);
            frac_len = i - frac_start;
            if frac_len == 0 {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) || int_len + frac_len > 19 || m >= 1 << 53 {
            return None;
        }
        let v = m as f64 / POW10.get(frac_len)?;
        self.i = i;
        Some(if negative { -v } else { v })
    }

    fn opt_uint(&mut self) -> Option<Option<u64>> {
        match self.peek()? {
            b'n' => self.null(),
            _ => self.unsigned().map(Some),
        }
    }

    /// A JSON integer as an `i64`; `-0` is declined (see [`Scan::int`]).
    fn int(&mut self) -> Option<i64> {
        if self.peek()? == b'-' {
            self.i += 1;
            let magnitude = self.unsigned().filter(|&u| u != 0)?;
            return 0i64.checked_sub_unsigned(magnitude);
        }
        self.unsigned().and_then(|u| i64::try_from(u).ok())
    }

    /// A JSON integer without sign, accumulated directly; `None` for leading zeros, overflow,
    /// or a fraction or exponent (serde then reports those as it does).
    fn unsigned(&mut self) -> Option<u64> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut v: u64 = 0;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(d))?;
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b[start] == b'0') || matches!(b.get(i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        self.i = i;
        Some(v)
    }

    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.plain_string().map(|_| ()),
            b'n' => self.null::<()>().map(|_| ()),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => None,
        }
    }
}

/// Bytes that end a plain string (`"`), make it non-plain (`\\`), or are invalid in one
/// (control characters).
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Consumes the ASCII digits of `b` from `i`, folding them into `m` (which wraps past 19
/// digits; callers only use it below that), and returns the index after them.
fn accumulate_digits(b: &[u8], mut i: usize, m: &mut u64) -> usize {
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    i
}

/// The index of the first byte of `b` that ends or spoils a plain string (see
/// [`STRING_STOP`]), eight bytes at a time: the classic SWAR "has zero byte" and "has byte less
/// than" tests. The lowest flagged byte is always a true match, so `trailing_zeros` finds it.
fn find_string_stop(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q & HIGH;
        let e = w ^ (ONES * u64::from(b'\\'));
        let escape = e.wrapping_sub(ONES) & !e & HIGH;
        let hits = control | quote | escape;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| STRING_STOP[usize::from(c)])
        .map(|p| i + p)
}

/// Exact powers of ten for the fast path.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses the canonical RFC 3339 forms `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` without chrono;
/// `None` for anything else (chrono then decides).
pub(crate) fn rfc3339_fast(s: &str) -> Option<Timestamp> {
    let (t, len) = rfc3339_prefix(s.as_bytes())?;
    (len == s.len()).then_some(t)
}

/// [`rfc3339_fast`] on the start of `b`: the instant and how many bytes it took.
fn rfc3339_prefix(b: &[u8]) -> Option<(Timestamp, usize)> {
    // The fixed part as an array: the indexes below are then checked at compile time.
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    // Two ASCII digits at `i` as a number.
    let two = |i: usize| -> Option<i64> {
        let (hi, lo) = (head[i].wrapping_sub(b'0'), head[i + 1].wrapping_sub(b'0'));
        (hi < 10 && lo < 10).then(|| i64::from(hi * 10 + lo))
    };
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, min, sec) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if i - start < 3 {
                millis = millis * 10 + i64::from(d);
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let (offset_s, len) = match b.get(i)? {
        b'Z' | b'z' => (0, i + 1),
        sign @ (b'+' | b'-') => {
            let tail: &[u8; 5] = b.get(i + 1..i + 6)?.try_into().ok()?;
            let (oh1, oh0, om1, om0) = (
                tail[0].wrapping_sub(b'0'),
                tail[1].wrapping_sub(b'0'),
                tail[3].wrapping_sub(b'0'),
                tail[4].wrapping_sub(b'0'),
            );
            if tail[2] != b':' || oh1 > 9 || oh0 > 9 || om1 > 9 || om0 > 9 {
                return None;
            }
            let (oh, om) = (i64::from(oh1 * 10 + oh0), i64::from(om1 * 10 + om0));
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            (if *sign == b'-' { -o } else { o }, i + 6)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    Some((Timestamp::from_millis(secs * 1000 + millis), len))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths must read the same message the same way.
    fn same_as_serde(raw: &str) {
        let fast = parse_flat(raw.as_bytes()).unwrap_or_else(|| panic!("fast path declined {raw}"));
        let slow: WireReading<'_> = serde_json::from_str(raw).unwrap();
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{raw}");
    }

    #[test]
    fn the_fast_path_reads_messages_exactly_as_serde_does() {
        for raw in [
            r#"{"v":1,"meter_id":"sim-00001","seq":1000001,"ts":"2026-03-01T00:15:00.000Z","energy_import_kwh":12345.678,"power_w":1234.5,"voltage_v":231.2,"current_a":5.43,"power_factor":0.953,"frequency_hz":50.02,"status":"ok","relay":"closed"}"#,
            r#" { "v" : 1 , "ts" : 1763799300000 , "energy_import_kwh" : 1e3 , "power_w" : -12 , "extra" : "x", "n": null, "m": -0.5e-3 } "#,
            r#"{"v":1,"ts":"2025-11-22T08:15:00+10:00","energy_import_kwh":0,"relay":null,"topic_meter_id":"abc","received_ms":1763799400000}"#,
            r#"{}"#,
            r#"{"v":0,"ts":-9223372036854775808,"seq":18446744073709551615,"received_ms":0}"#,
        ] {
            same_as_serde(raw);
        }
    }

    /// 2026-03-01T01:00:00Z, after every `ts` below.
    const NOW: i64 = 1_772_326_800_000;

    fn direct(raw: &str) -> Option<Reading> {
        reading(
            raw.as_bytes(),
            Some("m-1"),
            Timestamp::from_millis(NOW),
            &Limits::default(),
        )
    }

    /// The whole parse with and without the fast paths, and the direct reading if any.
    fn both_paths(raw: &str) -> (Option<Reading>, String, String) {
        use crate::telemetry::{parse_message, parse_message_reference, MessageContext};
        let ctx = MessageContext {
            topic: Some("meters/m-1/telemetry"),
            received: Timestamp::from_millis(NOW),
        };
        let limits = Limits::default();
        let fast = parse_message(raw.as_bytes(), ctx, &limits);
        let slow = parse_message_reference(raw.as_bytes(), ctx, &limits);
        (direct(raw), format!("{fast:?}"), format!("{slow:?}"))
    }

    #[test]
    fn the_direct_path_builds_exactly_the_reading_serde_would() {
        for raw in [
            r#"{"current_a":1.79,"energy_import_kwh":4198.302,"frequency_hz":49.98,"meter_id":"m-1","power_factor":0.91,"power_w":376.7,"relay":"closed","seq":0,"status":"ok","ts":"2026-03-01T00:00:00.000Z","v":1,"voltage_v":231.8}"#,
            " {\t\"v\" : 1 ,\n \"ts\" : 1772323200000 , \"energy_import_kwh\" : 12 , \"x\" : \"\u{e9}t\u{e9}\", \"n\": null, \"m\": -0.5 }\r\n",
            r#"{"v":1,"ts":"2026-03-01T10:15:00+10:00","energy_import_kwh":0,"energy_export_kwh":0.000001,"relay":null,"power_w":null,"topic_meter_id":"abc","meter_id":"abc","received_ms":1772326700000}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1.5,"topic":"$aws/rules/r/meters/q.7/telemetry","status":"maintenance","power_w":-0.0,"voltage_v":0,"seq":18446744073709551615}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"received_ms":12,"status":"tamper","relay":"open"}"#,
        ] {
            let (direct, fast, slow) = both_paths(raw);
            let direct = direct.unwrap_or_else(|| panic!("the direct path declined {raw}"));
            assert_eq!(format!("[Ok({direct:?})]"), slow, "{raw}");
            assert_eq!(fast, slow, "{raw}");
        }
    }

    #[test]
    fn the_direct_path_leaves_refusals_and_unusual_shapes_to_the_general_path() {
        for raw in [
            r#"{"v":2,"ts":1772323200000,"energy_import_kwh":1}"#,
            r#"{"ts":1772323200000,"energy_import_kwh":1}"#,
            r#"{"v":1,"energy_import_kwh":1}"#,
            r#"{"v":1,"ts":1772323200000}"#,
            r#"{"v":1,"ts":null,"energy_import_kwh":1}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"meter_id":"m-2"}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"topic_meter_id":"bad/id"}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"voltage_v":5000}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":-1}"#,
            r#"{"v":1,"ts":"2026-03-01T02:00:00Z","energy_import_kwh":1}"#,
            r#"{"v":1,"ts":"2026-03-01T00:00:00 Z","energy_import_kwh":1}"#,
            r#"{"v":1,"v":1,"ts":1772323200000,"energy_import_kwh":1}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"relay":"half"}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1e3}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"status":"o\"k"}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"received_ms":-0}"#,
            r#"{"v":1,"ts":-0,"energy_import_kwh":1}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"seq":18446744073709551616}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"seq":99999999999999999999}"#,
            r#"{"v":1,"ts":"2026-03-01T00:00:00+01:0","energy_import_kwh":1}"#,
            r#"{"v":1,"ts":1772323200000.0,"energy_import_kwh":1}"#,
            r#"{"v":1,"readings":[{"ts":1772323200000,"energy_import_kwh":1}]}"#,
            r#"{"payload_b64":"bm90IGpzb24=","topic":"meters/m-7/telemetry"}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"x":true}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"x":{"a":1}}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"power_w":01}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"power_w":1.}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,"power_w":"1"}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1,}"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1} x"#,
            r#"{"v":1,"ts":1772323200000,"energy_import_kwh":1"#,
            r#"{}"#,
            r#"[1]"#,
        ] {
            let (direct, fast, slow) = both_paths(raw);
            assert!(direct.is_none(), "{raw}");
            assert_eq!(fast, slow, "{raw}");
        }
        for raw in [
            &b"{\"v\":1,\"ts\":1772323200000,\"energy_import_kwh\":1,\"x\":\"\xc3\"}"[..],
            &b"{\"v\":1,\"ts\":1772323200000,\"energy_import_kwh\":1,\"x\xff\":1}"[..],
            &b"{\"v\":1,\"ts\":1772323200000,\"energy_import_kwh\":1,\"status\":\"o\xffk\"}"[..],
        ] {
            let limits = Limits::default();
            let got = reading(raw, Some("m-1"), Timestamp::from_millis(NOW), &limits);
            assert!(got.is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn the_direct_path_reads_numbers_as_the_standard_conversion_does() {
        for text in [
            "0",
            "-0",
            "-0.0",
            "1",
            "12345.678",
            "0.953",
            "50.02",
            "231.2",
            "-12",
            "4.35",
            "0.1",
            "99999.999999",
            "123456789",
            "1234567.8",
            "12345678.9",
            "0.12345678",
            "9007199254740991",
            "900719925474099.1",
            "123456789012345",
        ] {
            let want: f64 = text.parse().unwrap();
            // At the very end of the message, and followed by more.
            for padded in [text.to_owned(), format!("{text},\"next_field\":1}}")] {
                let mut c = Scan {
                    b: padded.as_bytes(),
                    i: 0,
                };
                let got = c.decimal().unwrap_or_else(|| panic!("declined {padded}"));
                assert_eq!(got.to_bits(), want.to_bits(), "{padded}");
                assert_eq!(c.i, text.len(), "{padded}");
            }
        }
        for text in [
            "01",
            "1.",
            "-",
            ".5",
            "1e3",
            "9007199254740993",
            "1234567890123456789",
        ] {
            let mut c = Scan {
                b: text.as_bytes(),
                i: 0,
            };
            assert_eq!(c.decimal(), None, "{text}");
        }
    }

    #[test]
    fn the_word_at_a_time_search_finds_the_first_stop_byte() {
        for (text, want) in [
            ("abc\"", Some(3)),
            ("abcdefghijk\"", Some(11)),
            ("abcdefgh\\x\"", Some(8)),
            ("\"", Some(0)),
            ("abcdefg\u{1}", Some(7)),
            ("é and ü\"", Some(9)),
            ("no end", None),
            ("abcdefghabcdefgh", None),
        ] {
            assert_eq!(find_string_stop(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn fast_numbers_equal_the_standard_conversion() {
        for text in [
            "0",
            "-0",
            "-0.0",
            "1",
            "12345.678",
            "0.953",
            "50.02",
            "231.2",
            "1e3",
            "-12",
            "1.5e-7",
            "123456789012345678",
            "1234567890123456789012",
            "0.000000000000000000000001",
            "9007199254740993",
            "4.35",
            "0.1",
            "2.5E+2",
            "1e22",
            "1e23",
            "99999.999999",
        ] {
            let mut c = Cursor {
                s: text,
                b: text.as_bytes(),
                i: 0,
            };
            let got = c.opt_f64().flatten().unwrap();
            let want: f64 = text.parse().unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
        }
    }

    #[test]
    fn the_fast_path_declines_what_it_is_not_sure_of() {
        for raw in [
            r#"{"v":1,"status":"o\"k"}"#,
            r#"{"v":1,"readings":[]}"#,
            r#"{"v":1,"x":{"a":1}}"#,
            r#"{"v":1,"x":true}"#,
            r#"{"v":1,"v":1}"#,
            r#"{"v":1.0}"#,
            r#"{"v":-1}"#,
            r#"{"v":01}"#,
            r#"{"v":1e0}"#,
            r#"{"seq":18446744073709551616}"#,
            r#"{"ts":-9223372036854775809}"#,
            r#"{"received_ms":-0}"#,
            r#"{"power_w":1e999}"#,
            r#"{"power_w":01}"#,
            r#"{"power_w":"1"}"#,
            r#"{"v":1,}"#,
            r#"{"v":1} x"#,
            r#"{"v":1"#,
            r#"[1]"#,
            r#"{"v":NaN}"#,
            "{\"v\":1,\"status\":\"\u{fffd}\"}\u{fffd}",
        ] {
            assert!(parse_flat(raw.as_bytes()).is_none(), "{raw}");
        }
    }

    #[test]
    fn invalid_utf8_in_any_string_is_left_to_serde() {
        assert!(parse_flat(b"{\"v\":1,\"status\":\"o\xffk\"}").is_none());
        assert!(parse_flat(b"{\"v\":1,\"x\xff\":1}").is_none());
        assert!(parse_flat(b"{\"v\":1,\"x\":\"\xc3\"}").is_none());
        assert!(parse_flat("{\"v\":1,\"x\":\"\u{e9}t\u{e9}\"}".as_bytes()).is_some());
    }

    #[test]
    fn canonical_rfc3339_matches_chrono() {
        for s in [
            "2026-03-01T00:15:00Z",
            "2026-03-01T00:15:00.000Z",
            "2024-02-29T23:59:59.9+05:30",
            "1999-12-31T23:59:59.123456-08:00",
            "2026-11-22T10:15:00+10:00",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(rfc3339_fast(s), Timestamp::parse_rfc3339(s).ok(), "{s}");
        }
        for s in [
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T00:00:00",
            "2026-03-01 00:00:00Z",
            "2026-03-01T00:00:00.Z",
        ] {
            assert_eq!(rfc3339_fast(s), None, "{s}");
        }
    }
}
