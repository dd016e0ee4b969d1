//! The SAM template (`infra/template.yaml`) against the code it deploys, read from source:
//!
//! - every crate under `functions/` is one `AWS::Serverless::Function` built with
//!   `BuildProperties: Binary: <crate>`, and no function builds anything else;
//! - every environment variable a function's code reads (its own source and the source of the
//!   workspace crates it depends on) is set in that function's `Environment`, and nothing else is;
//! - every DynamoDB action the adapters send to a table is allowed on that table by the function's
//!   role, and the role allows nothing broader: no wildcards, no action the adapters never send,
//!   no resource but the table itself (ingest: everything but the listed exceptions; forecast and
//!   anomaly-scan: exactly [`FORECAST_SENDS`] and [`ANOMALY_SCAN_SENDS`] plus sending to their
//!   shard queues);
//! - every log metric filter (the quarantine-rate alarm's) selects a line the code logs, and reads
//!   only fields that line carries.
//!
//! Nothing here is a hand-kept copy of the template: the action lists come from scanning
//! `shared/aws/src` for the SDK's operation calls, the environment variables from the config
//! readers' calls. The only hand-kept list, [`NOT_SENT_BY_INGEST`], names the adapter calls the
//! ingest path never makes, each with its reason, and is itself checked against the source.
//!
//! The template is YAML with CloudFormation's short tags; `yaml-rust2` drops unknown tags and
//! keeps their value, so `!GetAtt ReadingsTable.Arn` reads as `"ReadingsTable.Arn"` and an
//! `!If [cond, a, b]` as a three-element list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// Adapter calls that the ingest function never makes, so its role does not allow them:
/// (table variable, action, why). The test fails if one of them stops being an adapter call.
const NOT_SENT_BY_INGEST: &[(&str, &str, &str)] = &[
    (
        "QUARANTINE_TABLE",
        "dynamodb:Query",
        "QuarantineStore::for_meter is for readers (the api issue)",
    ),
    (
        "EVENTS_TABLE",
        "dynamodb:Query",
        "EventStore::for_meter is for readers (alerts and api issues)",
    ),
    (
        "METERS_TABLE",
        "dynamodb:Query",
        "MeterRegistry::by_feeder queries the by_feeder index for loss reports (a later issue)",
    ),
    (
        "METERS_TABLE",
        "dynamodb:Scan",
        "MeterRegistry::list pages through the registry for the forecast shards",
    ),
];

/// Actions the role allows only under a template condition, with the condition's name.
const CONDITIONAL: &[(&str, &str, &str)] = &[(
    "METERS_TABLE",
    "dynamodb:PutItem",
    "AutoRegister", // MeterRegistry::register_if_absent, only in RegistryMode=auto_register
)];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn template() -> Yaml {
    let text = read(&root().join("infra/template.yaml"));
    YamlLoader::load_from_str(&text)
        .expect("infra/template.yaml is YAML")
        .remove(0)
}

fn key<'a>(y: &'a Yaml, k: &str) -> &'a Yaml {
    &y[k]
}

fn hash_entries(y: &Yaml) -> Vec<(String, &Yaml)> {
    y.as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v)))
                .collect()
        })
        .unwrap_or_default()
}

fn list(y: &Yaml) -> Vec<&Yaml> {
    match y {
        Yaml::Array(a) => a.iter().collect(),
        Yaml::BadValue => Vec::new(),
        one => vec![one],
    }
}

/// The template's serverless functions: logical id → resource.
fn functions(t: &Yaml) -> BTreeMap<String, &Yaml> {
    hash_entries(key(t, "Resources"))
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .collect()
}

/// The crates under `functions/`, by package name, with their folders.
fn function_crates() -> BTreeMap<String, PathBuf> {
    let mut crates = BTreeMap::new();
    for entry in fs::read_dir(root().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let name = package_name(&read(&manifest));
        crates.insert(name, dir);
    }
    crates
}

/// The `name` of a manifest's `[package]`.
fn package_name(manifest: &str) -> String {
    let package = manifest.split("[package]").nth(1).expect("a [package]");
    package
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .expect("a package name")
}

/// The source folders of a function: its own `src` and those of the workspace path
/// dependencies it names in its manifest (from the root manifest's `path = ...` entries).
fn source_dirs(crate_dir: &Path) -> Vec<PathBuf> {
    let workspace = read(&root().join("Cargo.toml"));
    let paths: BTreeMap<String, String> = workspace
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(" = ")?;
            let path = rest.split("path = \"").nth(1)?.split('"').next()?;
            Some((name.trim().to_owned(), path.to_owned()))
        })
        .collect();
    let manifest = read(&crate_dir.join("Cargo.toml"));
    let mut dirs = vec![crate_dir.join("src")];
    for line in manifest.lines() {
        let name = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
        if let Some(path) = paths.get(name) {
            let dir = root().join(path).join("src");
            if !dirs.contains(&dir) && !path.starts_with("functions/") {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// The non-test source of every `.rs` file under `dir`, by path.
fn sources(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = read(&p);
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
                out.insert(p, code);
            }
        }
    }
    out
}

/// Environment variable names read in `code`: upper-case string literals passed to an
/// environment lookup (`env::var("X")`, a `lookup("X")`/`var("X")`/`get("X")` closure, or the
/// config readers' helpers `num(&lookup, "X", ..)` and `days("X", ..)`).
fn env_reads(code: &str) -> BTreeSet<String> {
    const CALLS: &[&str] = &["var(", "lookup(", "get(", "&lookup, ", "days("];
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices('"') {
        let rest = &code[i + 1..];
        let Some(end) = rest.find('"') else { break };
        let lit = &rest[..end];
        let is_name = lit.len() > 2
            && lit.contains('_')
            && lit
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && lit.starts_with(|c: char| c.is_ascii_uppercase());
        if is_name && CALLS.iter().any(|c| code[..i].ends_with(c)) {
            names.insert(lit.to_owned());
        }
    }
    names
}

/// The environment variables a dependency's `code` reads for a function whose own source is
/// `own`: those read inside an `impl Type` block whose reader (`Type::from_env` or
/// `Type::from_lookup`) the function calls, and any read outside an impl (before the first, or
/// after an impl's closing brace). A function depends on
/// a crate for more than its config readers (`forecast` uses meter-core's models, not
/// `IngestConfig`), so a crate-wide scan would demand variables it never reads.
fn used_config_reads(code: &str, own: &str) -> BTreeSet<String> {
    let mut parts = code.split("\nimpl");
    let mut reads = env_reads(parts.next().unwrap_or(""));
    for part in parts {
        // The impl block ends at the first unindented closing brace; what follows it (free
        // functions up to the next impl) is outside any impl.
        let (part, after) = part.split_once("\n}\n").unwrap_or((part, ""));
        reads.extend(env_reads(after));
        // `impl Type {`, `impl<T> Type<T> {` or `impl Trait for Type {`: the type is the last
        // word before the brace.
        let head = part.split('{').next().unwrap_or("");
        let ty = head
            .split_whitespace()
            .last()
            .unwrap_or("")
            .split('<')
            .next()
            .unwrap_or("");
        // `Tables::from_env(` must not match inside `ForecastTables::from_env(`.
        let called = [format!("{ty}::from_env("), format!("{ty}::from_lookup(")]
            .iter()
            .any(|call| {
                own.match_indices(call.as_str())
                    .any(|(i, _)| !own[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
            });
        if called {
            reads.extend(env_reads(part));
        }
    }
    reads
}

/// `put_item` → `dynamodb:PutItem`.
fn dynamodb_action(call: &str) -> String {
    let pascal: String = call
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("dynamodb:{pascal}")
}

/// DynamoDB operations the SDK client offers that a data path could call.
const OPERATIONS: &[&str] = &[
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_write_item",
    "batch_get_item",
    "transact_write_items",
    "transact_get_items",
    "execute_statement",
];

/// The DynamoDB actions `code` sends directly (`.put_item()` ...).
fn direct_calls(code: &str) -> BTreeSet<String> {
    OPERATIONS
        .iter()
        .filter(|op| code.contains(&format!(".{op}()")))
        .map(|op| dynamodb_action(op))
        .collect()
}

/// The crate's shared helpers (in `ops.rs` and `batch.rs`) and the actions each one sends,
/// directly or through another helper (`put_all` sends through `write_all`).
fn helper_calls(aws: &BTreeMap<PathBuf, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut bodies = BTreeMap::new();
    for (path, code) in aws {
        let file = path.file_name().unwrap().to_str().unwrap();
        if !matches!(file, "ops.rs" | "batch.rs") {
            continue;
        }
        // Each top-level fn's body runs to the next top-level item.
        for part in code.split("\npub").skip(1) {
            let Some(after) = part.split("fn ").nth(1) else {
                continue;
            };
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            bodies.insert(name, part.to_owned());
        }
    }
    let mut helpers: BTreeMap<String, BTreeSet<String>> = bodies
        .iter()
        .map(|(name, body)| (name.clone(), direct_calls(body)))
        .collect();
    // Until nothing changes: a helper sends what the helpers it calls send.
    loop {
        let mut changed = false;
        for (name, body) in &bodies {
            let inherited: BTreeSet<String> = helpers
                .iter()
                .filter(|(other, _)| *other != name && body.contains(&format!("{other}(")))
                .flat_map(|(_, calls)| calls.iter().cloned())
                .collect();
            let mine = helpers.get_mut(name).unwrap();
            let before = mine.len();
            mine.extend(inherited);
            changed |= mine.len() != before;
        }
        if !changed {
            break;
        }
    }
    helpers.retain(|_, calls| !calls.is_empty());
    helpers
}

/// For each table variable (`READINGS_TABLE` ...), the actions its adapter sends, derived from
/// `shared/aws/src`: adapter struct → the `tables.<field>` it is built with in `lib.rs` → the
/// variable `config.rs` reads into that field; actions are the direct SDK calls in the
/// adapter's file plus those of the shared helpers it calls.
fn adapter_actions() -> BTreeMap<String, BTreeSet<String>> {
    let aws = sources(&root().join("shared/aws/src"));
    let file = |name: &str| {
        aws.iter()
            .find(|(p, _)| p.file_name().is_some_and(|f| f == name))
            .map(|(_, c)| c.as_str())
            .unwrap()
    };
    let lib = file("lib.rs");
    let config = file("config.rs");
    let helpers = helper_calls(&aws);
    let mut out = BTreeMap::new();
    for code in aws.values() {
        let Some(adapter) = code
            .split("pub struct ")
            .nth(1)
            .map(|s| s.split([' ', '{']).next().unwrap().to_owned())
            .filter(|s| s.starts_with("Dynamo"))
        else {
            continue;
        };
        let built = lib
            .split(&format!("{adapter}::new("))
            .nth(1)
            .unwrap_or_else(|| panic!("lib.rs builds {adapter}"));
        let field = built
            .split("&tables.")
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap();
        let var = config
            .split(&format!("{field}: var(\""))
            .nth(1)
            .unwrap_or_else(|| panic!("config.rs reads tables.{field}"))
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let mut actions = direct_calls(code);
        for (helper, calls) in &helpers {
            if code.contains(&format!("{helper}(")) {
                actions.extend(calls.iter().cloned());
            }
        }
        out.insert(var, actions);
    }
    out
}

/// One allowed statement of a function's inline policies.
#[derive(Debug)]
struct Allowed {
    actions: Vec<String>,
    resources: Vec<String>,
    condition: Option<String>,
}

/// Statement ids every function role carries besides its adapters' calls: the runtime's log
/// lines and the on-failure destination (checked by their own test).
const RUNTIME_SIDS: [&str; 2] = ["Logs", "FailureDestination"];

/// The role resource a function runs as (`Role: !GetAtt XRole.Arn`).
fn role_of<'a>(t: &'a Yaml, function: &Yaml) -> &'a Yaml {
    let arn = function["Properties"]["Role"]
        .as_str()
        .expect("every function names its own role (Role: !GetAtt XRole.Arn)");
    let name = arn
        .strip_suffix(".Arn")
        .unwrap_or_else(|| panic!("Role {arn} is not a role resource's ARN"));
    let role = &t["Resources"][name];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"), "{name}");
    role
}

/// Every Allow statement of a function's role, with its `Sid`; an `!If [cond, stmt,
/// AWS::NoValue]` contributes its statement under `cond`.
fn role_statements(t: &Yaml, function: &Yaml) -> Vec<(Option<String>, Allowed)> {
    let role = role_of(t, function);
    assert!(
        role["Properties"]["ManagedPolicyArns"].is_badvalue(),
        "no managed policies: they grant more than the function calls"
    );
    let mut out = Vec::new();
    for policy in list(&role["Properties"]["Policies"]) {
        for stmt in list(&policy["PolicyDocument"]["Statement"]) {
            let (stmt, condition) = match stmt {
                Yaml::Array(parts) if parts.len() == 3 => {
                    let cond = parts[0].as_str().unwrap().to_owned();
                    assert_eq!(parts[2].as_str(), Some("AWS::NoValue"), "{stmt:?}");
                    (&parts[1], Some(cond))
                }
                other => (other, None),
            };
            assert_eq!(stmt["Effect"].as_str(), Some("Allow"), "{stmt:?}");
            let strings = |y: &Yaml| -> Vec<String> {
                list(y)
                    .into_iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            out.push((
                stmt["Sid"].as_str().map(str::to_owned),
                Allowed {
                    actions: strings(&stmt["Action"]),
                    resources: strings(&stmt["Resource"]),
                    condition,
                },
            ));
        }
    }
    out
}

/// The Allow statements of a function's role for what its code calls (the runtime's own
/// statements, [`RUNTIME_SIDS`], left out).
fn allowed(t: &Yaml, function: &Yaml) -> Vec<Allowed> {
    role_statements(t, function)
        .into_iter()
        .filter(|(sid, _)| !sid.as_deref().is_some_and(|s| RUNTIME_SIDS.contains(&s)))
        .map(|(_, a)| a)
        .collect()
}

/// The function's environment: variable → value as written (a `!Ref X` reads as `X`).
fn environment(function: &Yaml) -> BTreeMap<String, String> {
    hash_entries(&function["Properties"]["Environment"]["Variables"])
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                other => format!("{other:?}"),
            };
            (k, value)
        })
        .collect()
}

fn function_for_crate<'a>(t: &'a Yaml, krate: &str) -> &'a Yaml {
    functions(t)
        .into_values()
        .find(|f| f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(krate))
        .unwrap_or_else(|| panic!("no function in the template builds {krate}"))
}

#[test]
fn every_function_crate_has_exactly_one_function_in_the_template_and_vice_versa() {
    let t = template();
    let crates: BTreeSet<String> = function_crates().into_keys().collect();
    assert!(crates.contains("ingest"), "{crates:?}");
    let mut binaries = BTreeSet::new();
    for (id, f) in functions(&t) {
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        let binary = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no BuildProperties.Binary"));
        assert!(
            binaries.insert(binary.to_owned()),
            "{binary} is built twice"
        );
        assert!(
            crates.contains(binary),
            "{id} builds {binary}, which is no crate under functions/"
        );
    }
    assert_eq!(binaries, crates);
}

#[test]
fn every_environment_variable_a_function_reads_is_set_in_its_template_environment_and_no_other() {
    let t = template();
    for (krate, dir) in function_crates() {
        let mut reads = BTreeSet::new();
        let own: String = sources(&dir.join("src")).into_values().collect();
        for src in source_dirs(&dir) {
            for code in sources(&src).values() {
                if src == dir.join("src") {
                    reads.extend(env_reads(code));
                } else {
                    reads.extend(used_config_reads(code, &own));
                }
            }
        }
        if krate == "ingest" {
            // Proof that the scan sees both config readers (meter-aws and meter-core).
            assert!(reads.contains("READINGS_TABLE"), "{reads:?}");
            assert!(reads.contains("NOMINAL_VOLTAGE_V"), "{reads:?}");
        }
        let set: BTreeSet<String> = environment(function_for_crate(&t, &krate))
            .into_keys()
            .collect();
        let missing: Vec<_> = reads.difference(&set).collect();
        let unused: Vec<_> = set.difference(&reads).collect();
        assert!(
            missing.is_empty(),
            "{krate} reads {missing:?}, which the template does not set"
        );
        assert!(
            unused.is_empty(),
            "the template sets {unused:?} on {krate}, which its code never reads"
        );
    }
}

#[test]
fn the_ingest_role_allows_exactly_the_dynamodb_actions_its_adapters_send_on_each_table() {
    let t = template();
    let ingest = function_for_crate(&t, "ingest");
    let env = environment(ingest);
    let sent = adapter_actions();
    assert_eq!(
        sent.keys().cloned().collect::<BTreeSet<_>>(),
        [
            "AGGREGATES_TABLE",
            "EVENTS_TABLE",
            "FINDINGS_TABLE",
            "FORECASTS_TABLE",
            "METERS_TABLE",
            "QUARANTINE_TABLE",
            "READINGS_TABLE"
        ]
        .map(String::from)
        .into(),
        "one adapter per table"
    );
    assert!(
        !env.contains_key("FORECASTS_TABLE"),
        "ingest never touches forecasts"
    );
    assert!(
        !env.contains_key("FINDINGS_TABLE"),
        "ingest never touches findings"
    );
    // Table logical id (what !Ref/!GetAtt name) → its variable.
    let var_of_table: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| sent.contains_key(*k))
        .map(|(k, v)| (v.as_str(), k.as_str()))
        .collect();

    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut conditional: BTreeSet<(String, String, String)> = BTreeSet::new();
    for stmt in allowed(&t, ingest) {
        for action in &stmt.actions {
            assert!(!action.contains('*'), "wildcard action {action}");
            assert!(
                action.starts_with("dynamodb:"),
                "{action}: the ingest adapters only talk to DynamoDB"
            );
        }
        for resource in &stmt.resources {
            let table = resource
                .strip_suffix(".Arn")
                .unwrap_or_else(|| panic!("resource {resource} is not a table's own ARN"));
            let var = *var_of_table
                .get(table)
                .unwrap_or_else(|| panic!("{table} is not a table of the function"));
            for action in &stmt.actions {
                match &stmt.condition {
                    Some(c) => {
                        conditional.insert((var.to_owned(), action.clone(), c.clone()));
                    }
                    None => {
                        granted
                            .entry(var.to_owned())
                            .or_default()
                            .insert(action.clone());
                    }
                }
            }
        }
    }

    for (var, actions) in sent.iter().filter(|(var, _)| env.contains_key(*var)) {
        let not_sent: BTreeSet<String> = NOT_SENT_BY_INGEST
            .iter()
            .filter(|(v, _, _)| v == var)
            .map(|(_, a, _)| (*a).to_owned())
            .collect();
        let conditional_here: BTreeSet<String> = CONDITIONAL
            .iter()
            .filter(|(v, _, _)| v == var)
            .map(|(_, a, _)| (*a).to_owned())
            .collect();
        for a in not_sent.iter().chain(&conditional_here) {
            assert!(
                actions.contains(a),
                "{var}: {a} is listed in this test but no adapter sends it any more"
            );
        }
        let needed: BTreeSet<String> = actions
            .difference(&not_sent)
            .filter(|a| !conditional_here.contains(*a))
            .cloned()
            .collect();
        let has = granted.get(var).cloned().unwrap_or_default();
        assert_eq!(
            has, needed,
            "{var}: the role must allow exactly what the adapter sends on the ingest path"
        );
    }
    let expected_conditional: BTreeSet<(String, String, String)> = CONDITIONAL
        .iter()
        .map(|(v, a, c)| ((*v).to_owned(), (*a).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(conditional, expected_conditional);
}

/// What the forecast function sends, per table variable: (variable, action, adapter call).
/// Each must be an action that table's adapter sends; the role must allow exactly these.
const FORECAST_SENDS: &[(&str, &str, &str)] = &[
    ("METERS_TABLE", "dynamodb:Scan", "MeterRegistry::list"),
    ("READINGS_TABLE", "dynamodb:Query", "ReadingStore::range"),
    (
        "FORECASTS_TABLE",
        "dynamodb:BatchWriteItem",
        "ForecastStore::put",
    ),
    ("FORECASTS_TABLE", "dynamodb:Query", "ForecastStore::latest"),
];

/// What the anomaly-scan function sends, per table variable: (variable, action, adapter call).
const ANOMALY_SCAN_SENDS: &[(&str, &str, &str)] = &[
    ("METERS_TABLE", "dynamodb:Scan", "MeterRegistry::list"),
    ("READINGS_TABLE", "dynamodb:Query", "ReadingStore::range"),
    (
        "FINDINGS_TABLE",
        "dynamodb:BatchWriteItem",
        "FindingStore::put",
    ),
    (
        "FINDINGS_TABLE",
        "dynamodb:Query",
        "FindingStore::open_for_meter",
    ),
];

/// Checks that `krate`'s role allows exactly `sends` on its tables plus sending to its shard
/// queue, each of them an action an adapter still sends.
fn assert_sharded_role(krate: &str, sends: &[(&str, &str, &str)]) {
    let t = template();
    let f = function_for_crate(&t, krate);
    let env = environment(f);
    let sent = adapter_actions();
    for (var, action, call) in sends {
        assert!(
            sent.get(*var).is_some_and(|a| a.contains(*action)),
            "{var}: no adapter sends {action} any more ({call})"
        );
    }
    // The dispatcher sends SendMessageBatch, which IAM authorises as sqs:SendMessage.
    let sqs = read(&root().join("shared/aws/src/sqs.rs"));
    assert!(sqs.contains(".send_message_batch()"));
    let queue = env.get("SHARD_QUEUE_URL").expect("SHARD_QUEUE_URL is set");
    let mut expected: BTreeSet<(String, String)> = sends
        .iter()
        .map(|(var, action, _)| (format!("{}.Arn", env[*var]), (*action).to_owned()))
        .collect();
    expected.insert((format!("{queue}.Arn"), "sqs:SendMessage".to_owned()));
    // The shard queue's event source mapping polls with the function's role.
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ] {
        expected.insert((format!("{queue}.Arn"), action.to_owned()));
    }
    // Declared as a mapping of its own: a SAM `SQS` event would attach the managed
    // AWSLambdaSQSQueueExecutionRole, which allows polling every queue in the account.
    for (name, event) in hash_entries(&f["Properties"]["Events"]) {
        assert_ne!(
            event["Type"].as_str(),
            Some("SQS"),
            "{krate}: event {name} would attach a managed SQS policy on every queue"
        );
    }
    let function_name = functions(&t)
        .into_iter()
        .find(|(_, g)| std::ptr::eq(*g, f))
        .map(|(n, _)| n)
        .expect("the function is in the template");
    let mappings: Vec<&Yaml> = hash_entries(&t["Resources"])
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r["Type"].as_str() == Some("AWS::Lambda::EventSourceMapping"))
        .filter(|r| r["Properties"]["FunctionName"].as_str() == Some(function_name.as_str()))
        .collect();
    assert_eq!(mappings.len(), 1, "{krate}: one event source mapping");
    assert_eq!(
        mappings[0]["Properties"]["EventSourceArn"].as_str(),
        Some(format!("{queue}.Arn").as_str())
    );
    let mut granted = BTreeSet::new();
    for stmt in allowed(&t, f) {
        assert_eq!(stmt.condition, None);
        for action in &stmt.actions {
            assert!(!action.contains('*'), "wildcard action {action}");
            for resource in &stmt.resources {
                granted.insert((resource.clone(), action.clone()));
            }
        }
    }
    assert_eq!(granted, expected, "{krate}");
}

#[test]
fn every_function_role_may_log_only_to_its_own_group_and_fail_over_only_to_its_own_queue() {
    let t = template();
    for (name, f) in functions(&t) {
        let log_group = f["Properties"]["LoggingConfig"]["LogGroup"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} logs to a log group of its own"));
        let failure_queue = f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
            ["Destination"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has an on-failure destination"));
        let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
        for (sid, stmt) in role_statements(&t, f) {
            if sid.as_deref().is_some_and(|s| RUNTIME_SIDS.contains(&s)) {
                for action in &stmt.actions {
                    for resource in &stmt.resources {
                        granted.insert((resource.clone(), action.clone()));
                    }
                }
            }
        }
        let expected: BTreeSet<(String, String)> = [
            (format!("{log_group}.Arn"), "logs:CreateLogStream"),
            (format!("{log_group}.Arn"), "logs:PutLogEvents"),
            (failure_queue.to_owned(), "sqs:SendMessage"),
        ]
        .into_iter()
        .map(|(r, a)| (r, a.to_owned()))
        .collect();
        assert_eq!(granted, expected, "{name}");
        // Nothing else names the runtime's actions.
        for stmt in allowed(&t, f) {
            assert!(
                stmt.actions.iter().all(|a| !a.starts_with("logs:")),
                "{name}: logs actions outside the Logs statement"
            );
        }
    }
}

#[test]
fn the_forecast_role_allows_exactly_the_calls_of_its_path_on_its_tables_and_queue() {
    assert_sharded_role("forecast", FORECAST_SENDS);
}

#[test]
fn the_anomaly_scan_role_allows_exactly_the_calls_of_its_path_on_its_tables_and_queue() {
    assert_sharded_role("anomaly-scan", ANOMALY_SCAN_SENDS);
}

#[test]
fn the_environment_scan_finds_lookups_and_ignores_other_strings() {
    let code = r#"
        let a = std::env::var("ONE_VAR");
        let b = lookup("TWO_VAR");
        let c = num(&lookup, "THREE_VAR", 1.0);
        let d = days("FOUR_VAR", 3);
        let e = format!("NOT_A_READ_VAR");
        let f = var("lowercase_var");
    "#;
    assert_eq!(
        env_reads(code),
        ["FOUR_VAR", "ONE_VAR", "THREE_VAR", "TWO_VAR"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        dynamodb_action("batch_write_item"),
        "dynamodb:BatchWriteItem"
    );
    assert_eq!(
        direct_calls("self.client.put_item().x; c.query()"),
        ["dynamodb:PutItem", "dynamodb:Query"]
            .map(String::from)
            .into()
    );
}

#[test]
fn the_meter_policy_lets_a_thing_connect_and_publish_only_as_itself() {
    let t = template();
    let policies: Vec<(String, &Yaml)> = hash_entries(key(&t, "Resources"))
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::IoT::Policy"))
        .collect();
    assert_eq!(policies.len(), 1, "one IoT policy for meters");
    let doc = &policies[0].1["Properties"]["PolicyDocument"];
    let thing = "${!iot:Connection.Thing.ThingName}";
    for stmt in list(&doc["Statement"]) {
        assert_eq!(stmt["Effect"].as_str(), Some("Allow"));
        for action in list(&stmt["Action"]) {
            let action = action.as_str().unwrap();
            assert!(
                matches!(
                    action,
                    "iot:Connect" | "iot:Publish" | "iot:Subscribe" | "iot:Receive"
                ),
                "{action}"
            );
        }
        for resource in list(&stmt["Resource"]) {
            let r = resource.as_str().unwrap();
            assert!(
                r.ends_with(&format!(":client/{thing}"))
                    || r.contains(&format!(":topic/meters/{thing}/"))
                    || r.contains(&format!(":topicfilter/meters/{thing}/"))
                    || r.contains(&format!("/meters/{thing}/")) && r.contains(":topic/$aws/rules/"),
                "{r} is not scoped to the connecting thing"
            );
        }
    }
}

#[test]
fn every_log_metric_filter_matches_a_line_the_code_logs_with_the_fields_it_reads() {
    let t = template();
    let filters: Vec<(String, &Yaml)> = hash_entries(key(&t, "Resources"))
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::MetricFilter"))
        .collect();
    assert!(
        !filters.is_empty(),
        "the quarantine-rate alarm needs its filters"
    );
    // The function logs JSON through tracing-subscriber (lambda_runtime's default subscriber),
    // which puts an event's message and fields under "fields".
    let code: String = sources(&root().join("shared/core/src"))
        .into_values()
        .chain(sources(&root().join("functions")).into_values())
        .collect();
    for (id, f) in filters {
        let pattern = f["Properties"]["FilterPattern"].as_str().unwrap();
        let message = pattern
            .split("$.fields.message = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{id}: {pattern} does not select a message"));
        // The tracing macro call that logs it: from its `tracing::` to the message, which ends
        // the call (a mention in a comment has no `tracing::` shortly before it).
        let call = code
            .match_indices(&format!("\"{message}\""))
            .find_map(|(at, _)| {
                let start = code[..at].rfind("tracing::")?;
                let call = &code[start..at];
                (call.len() < 600 && !call.contains(';')).then_some(call)
            })
            .unwrap_or_else(|| panic!("{id}: no code logs {message:?}"));
        for transform in list(&f["Properties"]["MetricTransformations"]) {
            let value = transform["MetricValue"].as_str().unwrap();
            let field = value
                .strip_prefix("$.fields.")
                .unwrap_or_else(|| panic!("{id}: {value} is not an event field"));
            assert!(
                call.contains(&format!("{field} =")) || call.contains(&format!("{field},")),
                "{id}: the {message:?} line has no field {field}: {call}"
            );
        }
    }
}
