//! Generic configuration layering: defaults < file < `FERRYMQ_*` env < flags.
//!
//! Each layer is a TOML tree merged over the one below. The defaults, serialized, are the
//! schema: they name every key (an unknown key in a file is an error naming its dotted path),
//! give every leaf its env name (`storage.data_dir` -> `FERRYMQ_STORAGE_DATA_DIR`) and the type
//! an env value is parsed as. A section whose default is an empty table is a free-form map.
//! Every leaf remembers which layer set it, so a bad value is reported with its origin.
//!
//! Env policy: a `FERRYMQ_<SECTION>_*` variable (one starting with a section's name) that names
//! no key is an error, like an unknown key in a file: a typo must not silently leave a default
//! in force. Any other `FERRYMQ_*` variable is outside the config's namespace (tools use some,
//! e.g. `FERRYMQ_HTTP` without a key): it is ignored with a warning naming the nearest key. `FERRYMQ_CONFIG` is
//! `--config`'s.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// Env variables under this prefix configure the broker.
pub const ENV_PREFIX: &str = "FERRYMQ_";
/// The env variable `--config` reads; not a config key.
pub const ENV_CONFIG: &str = "FERRYMQ_CONFIG";
/// The known variable closest to a mistyped `name`, if one is close (a few edits).
fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    known
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, k)| k)
}

/// `FERRYMQ_*` variables that are not config keys: the config file, the default user (see
/// `Config::load`) and the `ferrymq user` subcommand's connection.
const ENV_NOT_KEYS: &[&str] = &[
    ENV_CONFIG,
    "FERRYMQ_DEFAULT_USER",
    "FERRYMQ_DEFAULT_PASS",
    "FERRYMQ_ADMIN_URL",
    "FERRYMQ_ADMIN_USER",
    "FERRYMQ_ADMIN_PASSWORD",
];

/// A value given on the command line for the key at dotted path `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: &'static str,
    pub flag: &'static str,
    pub value: Value,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration being assembled, layer by layer.
#[derive(Debug)]
pub struct Layers {
    schema: Table,
    merged: Table,
    origins: BTreeMap<String, Origin>,
    warnings: Vec<String>,
}

impl Layers {
    /// Starts from `defaults`, which also become the schema.
    pub fn new<T: Serialize>(defaults: &T) -> anyhow::Result<Self> {
        let schema = Table::try_from(defaults).context("serializing the built-in defaults")?;
        Ok(Self {
            merged: schema.clone(),
            schema,
            origins: BTreeMap::new(),
            warnings: Vec::new(),
        })
    }

    /// Every leaf key as `(dotted path, env variable name)`, in schema order.
    pub fn env_names(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        leaves(&self.schema, "", &mut |path, _| {
            let env = format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase());
            out.push((path.to_owned(), env));
        });
        out
    }

    /// Reads and overlays a TOML file.
    pub fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        self.toml(&text, &Origin::File(path.to_owned()))
    }

    /// Overlays TOML text; unknown keys and tables where values belong are errors.
    pub fn toml(&mut self, text: &str, origin: &Origin) -> anyhow::Result<()> {
        let table: Table = toml::from_str(text).with_context(|| format!("in {origin}"))?;
        check_keys(&self.schema, &table, "").with_context(|| format!("in {origin}"))?;
        merge(&mut self.merged, table, "", origin, &mut self.origins);
        Ok(())
    }

    /// Overlays every `FERRYMQ_*` variable of `vars`, each parsed as its default's type.
    pub fn env(
        &mut self,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<()> {
        let names: BTreeMap<String, String> = self
            .env_names()
            .into_iter()
            .map(|(path, env)| (env, path))
            .collect();
        for (name, value) in vars {
            let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name) {
                continue;
            }
            let Some(path) = names.get(name) else {
                let hint = nearest(name, names.keys())
                    .map_or_else(String::new, |n| format!("; did you mean {n}?"));
                let rest = name.strip_prefix(ENV_PREFIX).unwrap_or(name);
                let section = self.schema.keys().find(|s| {
                    let s = s.to_uppercase();
                    rest == s || rest.starts_with(&format!("{s}_"))
                });
                if let Some(section) = section {
                    bail!(
                        "unknown environment variable {name}: no key of [{section}] has that name{hint} (`ferrymq --print-config` lists the keys; FERRYMQ_<SECTION>_<KEY>)"
                    );
                }
                self.warnings.push(format!(
                    "ignoring environment variable {name}: it names no config section (FERRYMQ_<SECTION>_<KEY>){hint}"
                ));
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| anyhow!("{name} is not valid UTF-8"))?;
            let value = self
                .parse_as_default(path, &value)
                .with_context(|| format!("in environment variable {name}"))?;
            self.set(path, value, &Origin::Env(name.to_owned()))?;
        }
        Ok(())
    }

    /// Sets one key (a flag). The key must exist in the schema.
    pub fn set(&mut self, path: &str, value: Value, origin: &Origin) -> anyhow::Result<()> {
        let mut table = Table::new();
        let mut parts = path.rsplit('.');
        let leaf = parts.next().unwrap_or(path);
        table.insert(leaf.to_owned(), value);
        for part in parts {
            let mut outer = Table::new();
            outer.insert(part.to_owned(), Value::Table(table));
            table = outer;
        }
        check_keys(&self.schema, &table, "").with_context(|| format!("in {origin}"))?;
        merge(&mut self.merged, table, "", origin, &mut self.origins);
        Ok(())
    }

    /// Deserializes the merged tree; an error names the key and which layer set it.
    pub fn finish<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_path_to_error::deserialize(self.merged.clone()).map_err(|e| {
            let key = e.path().to_string();
            let origin = self.origin(&key);
            // toml's Display would repeat the key path; the message alone reads better here.
            anyhow!(
                "invalid value for `{key}` (from {origin}): {}",
                e.inner().message()
            )
        })
    }

    /// Problems that did not stop loading, for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Which layer last set `key` (a dotted path).
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    fn parse_as_default(&self, path: &str, raw: &str) -> anyhow::Result<Value> {
        let default = path.split('.').try_fold(None::<&Value>, |at, part| {
            let table = match at {
                None => &self.schema,
                Some(Value::Table(t)) => t,
                Some(_) => return None,
            };
            table.get(part).map(Some)
        });
        let wanted = |what| anyhow!("expected {what} for `{path}`, got `{raw}`");
        Ok(match default.flatten() {
            Some(Value::Integer(_)) => {
                Value::Integer(raw.trim().parse().map_err(|_| wanted("an integer"))?)
            }
            Some(Value::Float(_)) => {
                Value::Float(raw.trim().parse().map_err(|_| wanted("a number"))?)
            }
            Some(Value::Boolean(_)) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                _ => return Err(wanted("true or false")),
            },
            Some(Value::String(_)) | None => Value::String(raw.to_owned()),
            // Arrays, tables and datetimes are written as TOML: `[1, 2]`, `{ a = 1 }`.
            Some(_) => {
                let doc: Table = toml::from_str(&format!("v = {raw}"))
                    .map_err(|e| anyhow!("expected a TOML value for `{path}`: {e}"))?;
                doc.get("v")
                    .cloned()
                    .ok_or_else(|| wanted("a TOML value"))?
            }
        })
    }
}

/// Calls `f(dotted path, value)` for every non-table value and every empty (free-form) table.
fn leaves(table: &Table, prefix: &str, f: &mut impl FnMut(&str, &Value)) {
    for (key, value) in table {
        let path = join(prefix, key);
        match value {
            Value::Table(t) if !t.is_empty() => leaves(t, &path, f),
            _ => f(&path, value),
        }
    }
}

fn check_keys(schema: &Table, given: &Table, prefix: &str) -> anyhow::Result<()> {
    for (key, value) in given {
        let path = join(prefix, key);
        match (schema.get(key), value) {
            (None, _) => {
                let known: Vec<&str> = schema.keys().map(String::as_str).collect();
                let within = if prefix.is_empty() {
                    "top level".to_owned()
                } else {
                    format!("[{prefix}]")
                };
                bail!(
                    "unknown config key `{path}` (known keys at {within}: {})",
                    known.join(", ")
                )
            }
            (Some(Value::Table(s)), Value::Table(g)) if !s.is_empty() => check_keys(s, g, &path)?,
            (Some(Value::Table(s)), _) if !s.is_empty() => {
                bail!("`{path}` must be a table ([{path}])")
            }
            (Some(Value::Table(_)), _) => {}
            (Some(_), Value::Table(_)) => bail!("`{path}` must be a value, not a table"),
            (Some(_), _) => {}
        }
    }
    Ok(())
}

fn merge(
    base: &mut Table,
    over: Table,
    prefix: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (key, value) in over {
        let path = join(prefix, &key);
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) if !o.is_empty() => {
                merge(b, o, &path, origin, origins);
            }
            (_, value) => {
                origins.insert(path, origin.clone());
                base.insert(key, value);
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}
