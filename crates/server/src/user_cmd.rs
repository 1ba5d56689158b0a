//! `ferrymq user ...`: users, tags and permissions of a running broker, from the shell.
//!
//! The subcommand is a client of the broker's management API (RabbitMQ's endpoints), not of
//! its data directory: the running broker owns its user store, so a change is applied, made
//! durable and enforced by the broker itself, exactly as one made with rabbitmqadmin or curl.
//!
//! ```text
//! add NAME              GET /api/users/NAME (must be 404), PUT /api/users/NAME
//! delete NAME           DELETE /api/users/NAME
//! passwd NAME           GET /api/users/NAME (for its tags), PUT /api/users/NAME
//! tags NAME TAG...      GET /api/users/NAME (must exist), PUT /api/users/NAME
//! list                  GET /api/users
//! permissions NAME      PUT /api/permissions/VHOST/NAME
//! clear-permissions     DELETE /api/permissions/VHOST/NAME
//! ```
//!
//! Names and vhosts are percent-encoded as path segments (`/` is `%2F`). A GET before a PUT
//! is not atomic with it: a concurrent change in between is overwritten, as with any two
//! management API clients.
//!
//! Exit status: 0 when the broker did it; 1 when it refused (its `reason` is printed) or could
//! not be reached (the URL is printed); 2 for a usage error (clap's).
//!
//! ```text
//! ferrymq user add alice --password-stdin --tags monitoring < alice.pw
//! ferrymq user permissions alice --vhost / --configure '^alice\.' --write '.*' --read '.*'
//! ```

use std::fmt;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ferrymq_admin::api::encode;
use serde_json::{Value, json};

use crate::cli::{PasswordArgs, UserAction, UserArgs};

/// Bounds on one request: a broker that accepts and never answers must not hang a script.
/// Generous, because creating a user derives its SCRAM credentials (PBKDF2) before answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `ferrymq user ...` and reports its outcome on stderr.
pub fn run(args: &UserArgs) -> ExitCode {
    let api = Api::new(&args.url, &args.admin_user, &args.admin_password);
    match apply(&api, &args.action, &mut std::io::stdin().lock()) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ferrymq: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Carries out `action` against `api`; returns what to print on stdout.
fn apply(api: &Api, action: &UserAction, stdin: &mut dyn BufRead) -> anyhow::Result<String> {
    match action {
        UserAction::Add {
            name,
            password,
            tags,
        } => {
            let password = password_of(password, stdin)?;
            match api.call(&Call::get(user_path(name)))? {
                Ok(_) => bail!("user_already_exists: {name}"),
                Err(refusal) if refusal.status == 404 => {}
                Err(refusal) => return Err(refusal.into()),
            }
            let tags = Value::String(tags.join(","));
            api.call(&put_user(name, password.as_deref(), tags))??;
            Ok(format!("added user {name}\n"))
        }
        UserAction::Delete { name } => {
            let call = Call::delete(user_path(name));
            api.call(&call)?.map_err(|r| r.or_no_such_user(name))?;
            Ok(format!("deleted user {name}\n"))
        }
        UserAction::Passwd { name, password } => {
            let password = password_of(password, stdin)?;
            let user = api
                .call(&Call::get(user_path(name)))?
                .map_err(|r| r.or_no_such_user(name))?;
            // The PUT replaces the tags too: send back the ones the user has.
            let tags = user.get("tags").cloned().unwrap_or(Value::Null);
            api.call(&put_user(name, password.as_deref(), tags))??;
            Ok(format!("changed the password of user {name}\n"))
        }
        UserAction::Tags { name, tags } => {
            // A PUT would create a missing user (without a password): check first.
            api.call(&Call::get(user_path(name)))?
                .map_err(|r| r.or_no_such_user(name))?;
            api.call(&put_user(name, None, Value::String(tags.join(","))))??;
            Ok(format!(
                "set the tags of user {name} to [{}]\n",
                tags.join(",")
            ))
        }
        UserAction::List => {
            let users = api.call(&Call::get("/api/users".to_owned()))??;
            render_users(&users)
        }
        UserAction::Permissions {
            name,
            vhost,
            configure,
            write,
            read,
        } => {
            api.call(&put_permission(name, vhost, configure, write, read))??;
            Ok(format!(
                "set the permissions of user {name} on vhost {vhost}\n"
            ))
        }
        UserAction::ClearPermissions { name, vhost } => {
            let call = Call::delete(permission_path(vhost, name));
            api.call(&call)?.map_err(|r| {
                if r.status == 404 {
                    anyhow!("user {name} has no permissions on vhost {vhost}")
                } else {
                    r.into()
                }
            })?;
            Ok(format!(
                "cleared the permissions of user {name} on vhost {vhost}\n"
            ))
        }
    }
}

/// The password to set, if one was given; `--password-stdin` reads one line.
fn password_of(args: &PasswordArgs, stdin: &mut dyn BufRead) -> anyhow::Result<Option<String>> {
    if !args.password_stdin {
        return Ok(args.password.clone());
    }
    let mut line = String::new();
    if stdin
        .read_line(&mut line)
        .context("cannot read the password from standard input")?
        == 0
    {
        bail!("--password-stdin: standard input is empty");
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(Some(
        password.strip_suffix('\r').unwrap_or(password).to_owned(),
    ))
}

fn user_path(name: &str) -> String {
    format!("/api/users/{}", encode(name))
}

fn permission_path(vhost: &str, user: &str) -> String {
    format!("/api/permissions/{}/{}", encode(vhost), encode(user))
}

/// `PUT /api/users/NAME`; without a password the broker keeps the one the user has.
fn put_user(name: &str, password: Option<&str>, tags: Value) -> Call {
    let mut body = serde_json::Map::new();
    if let Some(password) = password {
        body.insert("password".to_owned(), Value::from(password));
    }
    body.insert("tags".to_owned(), tags);
    Call::put(user_path(name), Value::Object(body))
}

fn put_permission(user: &str, vhost: &str, configure: &str, write: &str, read: &str) -> Call {
    let body = json!({ "configure": configure, "write": write, "read": read });
    Call::put(permission_path(vhost, user), body)
}

/// `name  tags` rows of `GET /api/users`, names aligned.
fn render_users(users: &Value) -> anyhow::Result<String> {
    let users = users
        .as_array()
        .ok_or_else(|| anyhow!("GET /api/users answered something other than a list"))?;
    let mut rows: Vec<(&str, String)> = users
        .iter()
        .map(|u| {
            let name = u.get("name").and_then(Value::as_str).unwrap_or_default();
            (name, tags_text(u.get("tags")))
        })
        .collect();
    rows.sort();
    let width = rows
        .iter()
        .map(|(n, _)| n.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let mut out = format!("{:width$}  tags\n", "name");
    for (name, tags) in rows {
        out.push_str(format!("{name:width$}  {tags}").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Tags as ferrymq and RabbitMQ 3.9+ render them (a list) or older RabbitMQ (a string).
fn tags_text(tags: Option<&Value>) -> String {
    match tags {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One management API request: a path under the base URL and an optional JSON body.
#[derive(Debug, PartialEq)]
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Call {
    fn get(path: String) -> Self {
        Self {
            method: Method::Get,
            path,
            body: None,
        }
    }

    fn put(path: String, body: Value) -> Self {
        Self {
            method: Method::Put,
            path,
            body: Some(body),
        }
    }

    fn delete(path: String) -> Self {
        Self {
            method: Method::Delete,
            path,
            body: None,
        }
    }
}

/// A request the broker answered with an error status: `{"error": ..., "reason": ...}`.
#[derive(Debug, PartialEq)]
struct Refusal {
    method: Method,
    path: String,
    status: u16,
    error: String,
    reason: String,
}

impl Refusal {
    /// A 404 for a user's own path means the user does not exist.
    fn or_no_such_user(self, name: &str) -> anyhow::Error {
        if self.status == 404 {
            anyhow!("no_such_user: {name}")
        } else {
            self.into()
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} refused ({} {}): {}",
            self.method.as_str(),
            self.path,
            self.status,
            self.error,
            self.reason
        )
    }
}

impl std::error::Error for Refusal {}

/// Reads an answer: a 2xx is its JSON body (`null` when empty), anything else a refusal.
fn parse_reply(call: &Call, status: u16, body: &str) -> Result<Value, Refusal> {
    let json = serde_json::from_str::<Value>(body).ok();
    if (200..300).contains(&status) {
        return Ok(json.unwrap_or(Value::Null));
    }
    let field = |key: &str| match json.as_ref().and_then(|j| j.get(key)) {
        Some(Value::String(s)) => Some(s.clone()),
        // RabbitMQ words some reasons as a JSON term (`["not_boolean","yes"]`).
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let reason = field("reason").unwrap_or_else(|| {
        // Not the management API (a proxy's page, another server): its first line.
        let line = body.lines().next().unwrap_or_default().trim();
        line.chars().take(200).collect()
    });
    Err(Refusal {
        method: call.method,
        path: call.path.clone(),
        status,
        error: field("error").unwrap_or_else(|| "http_error".to_owned()),
        reason,
    })
}

/// The management API at one base URL, as one administrator.
struct Api {
    agent: ureq::Agent,
    base: String,
    authorization: String,
}

impl Api {
    fn new(base: &str, user: &str, password: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            // Error statuses are answers to read, not transport failures.
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Self {
            agent,
            base: base.to_owned(),
            authorization: basic_authorization(user, password),
        }
    }

    /// The outer error is a broker that could not be reached; the inner one its refusal.
    fn call(&self, call: &Call) -> anyhow::Result<Result<Value, Refusal>> {
        let url = format!("{}{}", self.base, call.path);
        let auth = self.authorization.as_str();
        let sent = match (call.method, &call.body) {
            (Method::Get, _) => self.agent.get(&url).header("authorization", auth).call(),
            (Method::Delete, _) => self.agent.delete(&url).header("authorization", auth).call(),
            (Method::Put, body) => {
                let request = self.agent.put(&url).header("authorization", auth);
                match body {
                    Some(body) => request.send_json(body),
                    None => request.send_empty(),
                }
            }
        };
        let unreachable = |e: ureq::Error| {
            anyhow!(
                "cannot reach the broker's management API at {} ({e}): is the broker running, \
                 and is --url its HTTP listener?",
                self.base
            )
        };
        let response = sent.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().map_err(unreachable)?;
        Ok(parse_reply(call, status, &body))
    }
}

/// `Basic base64(user:password)` (RFC 7617). ureq only derives it from a URL's userinfo,
/// which cannot carry every password.
fn basic_authorization(user: &str, password: &str) -> String {
    use base64::Engine;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {credentials}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn action(args: &[&str]) -> UserAction {
        let cli = Cli::try_parse_from(["ferrymq", "user"].iter().chain(args)).unwrap();
        match cli.command {
            Some(Command::User(user)) => user.action,
            other => panic!("no user subcommand in {args:?}: {other:?}"),
        }
    }

    #[test]
    fn names_and_vhosts_are_single_path_segments() {
        assert_eq!(user_path("bob"), "/api/users/bob");
        assert_eq!(user_path("a/b c"), "/api/users/a%2Fb%20c");
        assert_eq!(user_path("é"), "/api/users/%C3%A9");
        assert_eq!(permission_path("/", "bob"), "/api/permissions/%2F/bob");
        assert_eq!(
            permission_path("dev/eu", "ops@x"),
            "/api/permissions/dev%2Feu/ops%40x"
        );
    }

    #[test]
    fn permissions_become_one_put_with_three_patterns() {
        let UserAction::Permissions {
            name,
            vhost,
            configure,
            write,
            read,
        } = action(&[
            "permissions",
            "a/b",
            "--configure",
            "^a\\.",
            "--write",
            ".*",
            "--read",
            "",
        ])
        else {
            panic!("not permissions");
        };
        assert_eq!(vhost, "/");
        let call = put_permission(&name, &vhost, &configure, &write, &read);
        assert_eq!(call.method, Method::Put);
        assert_eq!(call.path, "/api/permissions/%2F/a%2Fb");
        assert_eq!(
            call.body,
            Some(json!({"configure": "^a\\.", "write": ".*", "read": ""}))
        );
    }

    #[test]
    fn a_user_body_has_tags_and_the_password_only_when_given() {
        let UserAction::Add {
            name,
            password,
            tags,
        } = action(&[
            "add",
            "bob",
            "--password",
            "pw",
            "--tags",
            "administrator,monitoring",
        ])
        else {
            panic!("not add");
        };
        let password = password_of(&password, &mut &b""[..]).unwrap();
        let call = put_user(&name, password.as_deref(), Value::String(tags.join(",")));
        assert_eq!(call.path, "/api/users/bob");
        assert_eq!(
            call.body,
            Some(json!({"password": "pw", "tags": "administrator,monitoring"}))
        );
        let call = put_user("bob", None, json!(["x"]));
        assert_eq!(call.body, Some(json!({"tags": ["x"]})));
    }

    #[test]
    fn tags_with_none_given_clear_them() {
        let UserAction::Tags { name, tags } = action(&["tags", "bob"]) else {
            panic!("not tags");
        };
        let call = put_user(&name, None, Value::String(tags.join(",")));
        assert_eq!(call.body, Some(json!({"tags": ""})));
    }

    #[test]
    fn the_password_from_stdin_is_its_first_line() {
        let stdin = PasswordArgs {
            password: None,
            password_stdin: true,
        };
        let read = |input: &[u8]| password_of(&stdin, &mut &input[..]);
        assert_eq!(read(b"s3cret\nrest").unwrap().as_deref(), Some("s3cret"));
        assert_eq!(read(b"s3cret\r\n").unwrap().as_deref(), Some("s3cret"));
        assert_eq!(read(b" sp ace").unwrap().as_deref(), Some(" sp ace"));
        assert_eq!(read(b"\n").unwrap().as_deref(), Some(""));
        assert!(read(b"").is_err());
        let none = PasswordArgs {
            password: None,
            password_stdin: false,
        };
        assert_eq!(password_of(&none, &mut &b"x\n"[..]).unwrap(), None);
    }

    #[test]
    fn an_error_status_is_a_refusal_with_the_apis_reason() {
        let call = Call::get("/api/users".to_owned());
        let refused = parse_reply(
            &call,
            403,
            r#"{"error":"not_authorised","reason":"Not administrator user"}"#,
        )
        .unwrap_err();
        assert_eq!(refused.status, 403);
        assert_eq!(refused.reason, "Not administrator user");
        assert_eq!(
            refused.to_string(),
            "GET /api/users refused (403 not_authorised): Not administrator user"
        );
        let term = parse_reply(&call, 400, r#"{"error":"bad_request","reason":["a","b"]}"#);
        assert_eq!(term.unwrap_err().reason, r#"["a","b"]"#);
        let html = parse_reply(&call, 502, "<h1>Bad Gateway</h1>\n<p>x</p>").unwrap_err();
        assert_eq!(
            (html.error.as_str(), html.reason.as_str()),
            ("http_error", "<h1>Bad Gateway</h1>")
        );
        assert_eq!(parse_reply(&call, 204, ""), Ok(Value::Null));
        assert_eq!(parse_reply(&call, 200, "[1]"), Ok(json!([1])));
    }

    #[test]
    fn the_user_list_is_a_sorted_aligned_table() {
        let users = json!([
            {"name": "guest", "tags": ["administrator"]},
            {"name": "alice-long", "tags": ["administrator", "monitoring"]},
            {"name": "old", "tags": "management"},
            {"name": "bare", "tags": []},
        ]);
        assert_eq!(
            render_users(&users).unwrap(),
            "name        tags\n\
             alice-long  administrator,monitoring\n\
             bare\n\
             guest       administrator\n\
             old         management\n"
        );
        assert!(render_users(&json!({"items": []})).is_err());
    }

    #[test]
    fn basic_authorization_is_rfc_7617() {
        assert_eq!(
            basic_authorization("guest", "guest"),
            "Basic Z3Vlc3Q6Z3Vlc3Q="
        );
        assert_eq!(
            basic_authorization("martin", "secret"),
            "Basic bWFydGluOnNlY3JldA=="
        );
        assert_eq!(basic_authorization("a", ""), "Basic YTo=");
        assert_eq!(basic_authorization("ab", "c"), "Basic YWI6Yw==");
        assert_eq!(basic_authorization("ab", "cd"), "Basic YWI6Y2Q=");
        assert_eq!(basic_authorization("é", "p:w"), "Basic w6k6cDp3");
    }
}
