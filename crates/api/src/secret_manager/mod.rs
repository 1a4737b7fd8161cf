//! Secret Manager v1 (PROTOCOL.md §6): secrets, versions, their states, `latest`, per-secret IAM, and the reads
//! instances make when they start ([`App::access_secret_as`]).
//!
//! Owns: the REST handlers for `/v1/projects/{p}[/locations/{l}]/secrets/…`, the stored documents (`secret`,
//! `secretVersion`), and the Data Access record of every `:access`. Must not: hold plaintext outside
//! [`Zeroizing`] buffers, or put a payload into a log line, an error, an audit entry or any answer but `:access`.
//!
//! Encryption at rest is envelope encryption by [`secrets::MasterKey`]: a fresh data key per version, the version's
//! full name (`projects/NUMBER/secrets/S/versions/N`) as associated data, so a ciphertext moved to another version's
//! row does not open. `:destroy` drops the sealed data in the same transaction that marks the version DESTROYED.
//!
//! IAM: every permission, version permissions included, is decided on the secret
//! (`//secretmanager.googleapis.com/projects/ID/secrets/S`); the snapshot makes the project its parent, so project
//! bindings are inherited. Denials quote the name as the caller spelled it, in Secret Manager's words.

mod data_access;
mod names;
mod types;

use crate::audit_trail::Call;
use crate::auth::Caller;
use crate::http::{Reply, Req};
use crate::policy::{self, Target};
use crate::state::{kind, now_rfc3339, App, Project, Result};
use base64::Engine;
use data_access::{AccessRecord, ACCESS_PERMISSION};
use model::{ApiError, Code};
use names::{invalid_format, version_key, versions_prefix, SecretName, VersionRef, SERVICE};
use serde_json::{json, Value};
use std::time::SystemTime;
use types::{State, StoredSecret, StoredVersion};
use zeroize::Zeroizing;

/// `google.cloud.secretmanager.v1.SecretManagerService.{name}`, the audit `methodName`.
macro_rules! method {
    ($name:literal) => {
        concat!("google.cloud.secretmanager.v1.SecretManagerService.", $name)
    };
}

/// `callerIp` of the platform's own reads (secrets injected into instances), as Google shows internal callers.
const RUNTIME_CALLER_IP: &str = "private";
const RUNTIME_USER_AGENT: &str = "gatehouse-runtime";

/// Routes `/v1/projects/{project}[/locations/{location}]/secrets/{rest…}[:verb]`; `None` when no method matches.
pub(crate) fn route(
    app: &App,
    req: &Req,
    project: &str,
    location: Option<&str>,
    rest: &[&str],
    verb: Option<&str>,
) -> Option<Result<Reply>> {
    let m = &req.method;
    let (get, post) = (m == axum::http::Method::GET, m == axum::http::Method::POST);
    let (patch, delete) = (m == axum::http::Method::PATCH, m == axum::http::Method::DELETE);
    if let Some(l) = location.filter(|l| names::valid_location(l) && !network::is_region_name(l)) {
        // Regional secrets live in a region (`us-central1`); anything else spelled as a location id is no place.
        return Some(Err(ApiError::invalid(format!(
            "Location [{l}] is not a valid location for regional secrets; use a region such as us-central1."
        ))));
    }
    let at = |s: &str| SecretName::parse(project, location, s).map_err(|e| by_number(app, project, e));
    Some(match (rest, verb) {
        ([], None) if post => create(app, req, project, location),
        ([], None) if get => list(app, req, project, location),
        ([s], None) if get => at(s).and_then(|n| get_secret(app, req, n)),
        ([s], None) if patch => at(s).and_then(|n| update(app, req, n)),
        ([s], None) if delete => at(s).and_then(|n| delete_secret(app, req, n)),
        ([s], Some("addVersion")) if post => at(s).and_then(|n| add_version(app, req, n)),
        ([s], Some(v @ ("getIamPolicy" | "testIamPermissions"))) if get || post => {
            at(s).and_then(|n| iam(app, req, n, v))
        }
        ([s], Some(v @ "setIamPolicy")) if post => at(s).and_then(|n| iam(app, req, n, v)),
        ([s, "versions"], None) if get => at(s).and_then(|n| list_versions(app, req, n)),
        ([s, "versions", v], None) if get => at(s).and_then(|n| get_version(app, req, n, v)),
        ([s, "versions", v], Some("access")) if get => at(s).and_then(|n| access(app, req, n, v)),
        ([s, "versions", v], Some(op @ ("disable" | "enable" | "destroy"))) if post => {
            at(s).and_then(|n| transition(app, req, n, v, op))
        }
        _ => return None,
    })
}

/// Malformed names are reported with the project number when the project is this platform's, as Google's are.
fn by_number(app: &App, project: &str, mut e: ApiError) -> ApiError {
    if app.project.is(project) {
        let given = format!("[projects/{project}/");
        e.message = e.message.replacen(&given, &format!("[projects/{}/", app.project.project_number), 1);
    }
    e
}

/// Secret Manager's denial: `Permission 'P' denied for resource 'R' (or it may not exist).`, also sent when the
/// resource does not exist, so a caller without access learns nothing about existence.
pub(crate) fn denied(permission: &str, resource: &str) -> ApiError {
    let mut e = ApiError::permission_denied(permission, resource);
    e.message = format!("Permission '{permission}' denied for resource '{resource}' (or it may not exist).");
    e
}

fn secret_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Secret [{name}] not found."))
}

fn no_versions(name: &str) -> ApiError {
    ApiError::not_found(format!("Secret [{name}] not found or has no versions."))
}

fn version_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Secret Version [{name}] not found."))
}

fn in_state(name: &str, state: State) -> ApiError {
    ApiError::failed_precondition(format!("Secret Version [{name}] is in {} state.", state.name()))
}

fn etag_mismatch(name: &str) -> ApiError {
    ApiError::failed_precondition(format!(
        "The etag provided does not match the current etag of [{name}]; read it again and retry with the new etag."
    ))
}

/// Google's Secret Manager etags are quoted strings.
fn new_etag() -> String {
    format!("\"{:016x}\"", tokens::random_u64())
}

fn int_enums(req: &Req) -> bool {
    types::wants_int_enums(req.query("$alt"))
}

/// The project of `name` when it is this platform's; otherwise Google's denial quoting `shown`.
fn project_of<'a>(app: &'a App, name: &SecretName, permission: &str, shown: &str) -> Result<&'a Project> {
    if app.project.is(&name.project) {
        Ok(&app.project)
    } else {
        Err(denied(permission, shown))
    }
}

fn decide(app: &App, principal: &iam::Principal, permission: &str, full: &str) -> bool {
    iam::decide(&app.snapshot(), principal, permission, full, SystemTime::now()).granted()
}

/// Decides `permission` on `full`; a denial is audited (before it is answered) and quotes `shown`.
fn authorize(app: &App, caller: &Caller, permission: &str, full: &str, shown: &str, call: &Call) -> Result<()> {
    if decide(app, &caller.principal, permission, full) {
        app.permitted(caller, permission, full, call);
        return Ok(());
    }
    let err = denied(permission, shown);
    let entry = call.denied(permission, full).entry(app, caller, Some(&err));
    // A failure is logged by the audit writer; the caller is refused either way.
    let _ = app.audit_queue.append(entry);
    Err(err)
}

/// The parent of a collection as the caller spelled it (`projects/P[/locations/L]`).
fn parent_as_given(project: &str, location: Option<&str>) -> String {
    match location {
        Some(l) => format!("projects/{project}/locations/{l}"),
        None => format!("projects/{project}"),
    }
}

fn load_secret(
    tx: &store::Tx,
    name: &SecretName,
    p: &Project,
) -> std::result::Result<Option<StoredSecret>, store::StoreError> {
    tx.get(kind::SECRET, &name.key(p))
}

/// What a version reference resolves to.
enum Resolved {
    NoSecret,
    NoVersions,
    /// The named version (or alias) does not exist; the name as shown in the error.
    NoVersion(String),
    Found(Box<StoredVersion>),
}

/// Secret version key (`Tx` key + `\n` + the reference as given) → (`App::writes` when read, the version).
pub(crate) type VersionCache = quick_cache::sync::Cache<String, (u64, std::sync::Arc<StoredVersion>)>;

/// Resolved versions kept at once.
pub(crate) const VERSION_CACHE: usize = 4096;

/// [`resolve`] for `:access`, answered from [`App::versions`] when the entry was read after the last state write
/// (every change of a secret or a version — add, disable, enable, destroy, delete — is one).
fn resolve_cached(app: &App, name: &SecretName, p: &Project, vref: &VersionRef) -> Result<Resolved> {
    let writes = app.writes.load(std::sync::atomic::Ordering::SeqCst);
    let key = format!("{}\n{vref}", name.key(p));
    if let Some((at, v)) = app.versions.get(&key) {
        if at == writes {
            return Ok(Resolved::Found(Box::new((*v).clone())));
        }
    }
    let resolved = app.read(|tx| Ok(resolve(tx, name, p, vref)?))?;
    if let Resolved::Found(v) = &resolved {
        app.versions.insert(key, (writes, std::sync::Arc::new((**v).clone())));
    }
    Ok(resolved)
}

fn resolve(
    tx: &store::Tx,
    name: &SecretName,
    p: &Project,
    version: &VersionRef,
) -> std::result::Result<Resolved, store::StoreError> {
    let Some(secret) = load_secret(tx, name, p)? else { return Ok(Resolved::NoSecret) };
    let shown = format!("{}/versions/{version}", name.name(p));
    let number = match version {
        VersionRef::Latest if secret.latest_version == 0 => return Ok(Resolved::NoVersions),
        VersionRef::Latest => secret.latest_version,
        VersionRef::Number(n) => *n,
        VersionRef::Alias(a) => match secret.secret.version_aliases.get(a).and_then(|n| u64::try_from(*n).ok()) {
            Some(n) => n,
            None => return Ok(Resolved::NoVersion(shown)),
        },
    };
    match tx.get::<StoredVersion>(kind::SECRET_VERSION, &version_key(&name.key(p), number))? {
        Some(v) => Ok(Resolved::Found(Box::new(v))),
        None => Ok(Resolved::NoVersion(format!("{}/versions/{number}", name.name(p)))),
    }
}

fn create(app: &App, req: &Req, project: &str, location: Option<&str>) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.secrets.create";
    let caller = req.caller(app)?;
    let id = req.query("secretId").unwrap_or_default();
    let name = SecretName::parse(project, location, id).map_err(|e| by_number(app, project, e))?;
    let shown = parent_as_given(project, location);
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call = Call::new(SERVICE, method!("CreateSecret"), name.name(p)).needs(PERMISSION, &p.full_name());
    authorize(app, &caller, PERMISSION, &p.full_name(), &shown, &call)?;
    let body: Value = req.json()?;
    let fields = types::secret_fields(&body)?;
    let replication = types::check_replication(fields.replication.as_ref(), name.location.is_some())?;
    let labels = fields.labels.unwrap_or_default();
    types::check_labels(&labels)?;
    if fields.version_aliases.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::invalid(
            "a new secret has no versions to alias; set `versionAliases` after adding versions",
        ));
    }
    let secret = types::Secret {
        name: name.name(p),
        replication,
        create_time: now_rfc3339(),
        labels,
        etag: new_etag(),
        version_aliases: Default::default(),
        annotations: fields.annotations.unwrap_or_default(),
    };
    let call = call.with_request(json!({ "parent": name.parent(p), "secretId": id, "secret": body }));
    let key = name.key(p);
    let secret = app.mutate(&caller, call, false, |tx| {
        if tx.get::<Value>(kind::SECRET, &key)?.is_some() {
            return Err(ApiError::already_exists(format!("Secret [{}] already exists.", secret.name)).into());
        }
        tx.put(kind::SECRET, &key, &StoredSecret { secret: secret.clone(), latest_version: 0 })?;
        Ok(secret)
    })?;
    Ok(Reply::Json(secret.to_json()))
}

fn list(app: &App, req: &Req, project: &str, location: Option<&str>) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.secrets.list";
    let caller = req.caller(app)?;
    if location.is_some_and(|l| !names::valid_location(l)) {
        return Err(invalid_format(&parent_as_given(project, location)));
    }
    let shown = parent_as_given(project, location);
    if !app.project.is(project) {
        return Err(denied(PERMISSION, &shown));
    }
    let p = &app.project;
    let call = Call::new(SERVICE, method!("ListSecrets"), parent_as_given(&p.project_number, location)).reading();
    authorize(app, &caller, PERMISSION, &p.full_name(), &shown, &call)?;
    let filter = audit::Filter::parse(req.query("filter").unwrap_or_default())
        .map_err(|e| ApiError::invalid(format!("invalid `filter`: {e}")))?;
    let prefix = format!("{}/secrets/", parent_as_given(&p.project_id, location));
    let secrets: Vec<(String, StoredSecret)> = app.read(|tx| Ok(tx.list(kind::SECRET, &prefix)?))?;
    let items: Vec<Value> =
        secrets.into_iter().map(|(_, s)| s.secret.to_json()).filter(|s| filter.matches(s)).collect();
    Ok(Reply::Json(types::page(items, req.query("pageSize"), req.query("pageToken"), "secrets")?))
}

fn get_secret(app: &App, req: &Req, name: SecretName) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.secrets.get";
    let caller = req.caller(app)?;
    let shown = name.as_given();
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call = Call::new(SERVICE, method!("GetSecret"), name.name(p)).reading();
    authorize(app, &caller, PERMISSION, &name.full(p), &shown, &call)?;
    let stored = app.read(|tx| Ok(load_secret(tx, &name, p)?))?;
    let stored = stored.ok_or_else(|| secret_not_found(&name.name(p)))?;
    Ok(Reply::Json(stored.secret.to_json()))
}

fn update(app: &App, req: &Req, name: SecretName) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.secrets.update";
    let caller = req.caller(app)?;
    let shown = name.as_given();
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call = Call::new(SERVICE, method!("UpdateSecret"), name.name(p)).needs(PERMISSION, &name.full(p));
    authorize(app, &caller, PERMISSION, &name.full(p), &shown, &call)?;
    let body: Value = req.json()?;
    let fields = types::secret_fields(&body)?;
    let mask = req
        .query("updateMask")
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("`updateMask` is required, e.g. `?updateMask=labels`"))?;
    let mask: Vec<&str> = mask.split(',').map(str::trim).collect();
    for f in &mask {
        if !["labels", "annotations", "versionAliases", "version_aliases"].contains(f) {
            return Err(ApiError::invalid(format!(
                "field `{f}` in `updateMask` cannot be updated; use `labels`, `annotations` or `versionAliases`"
            )));
        }
    }
    if let Some(l) = &fields.labels {
        types::check_labels(l)?;
    }
    let etag = body.get("etag").and_then(Value::as_str).map(str::to_owned);
    let call = call.with_request(json!({ "secret": body, "updateMask": mask.join(",") }));
    let secret = app.mutate(&caller, call, false, |tx| {
        let mut stored = load_secret(tx, &name, p)?.ok_or_else(|| secret_not_found(&name.name(p)))?;
        if etag.as_ref().is_some_and(|e| *e != stored.secret.etag) {
            return Err(etag_mismatch(&stored.secret.name).into());
        }
        for f in &mask {
            match *f {
                "labels" => stored.secret.labels = fields.labels.clone().unwrap_or_default(),
                "annotations" => stored.secret.annotations = fields.annotations.clone().unwrap_or_default(),
                _ => {
                    let aliases = fields.version_aliases.clone().unwrap_or_default();
                    for (alias, n) in &aliases {
                        let exists = u64::try_from(*n)
                            .ok()
                            .map(|n| tx.get::<Value>(kind::SECRET_VERSION, &version_key(&name.key(p), n)))
                            .transpose()?
                            .flatten()
                            .is_some();
                        if !exists {
                            return Err(ApiError::invalid(format!(
                                "version alias `{alias}` names version {n}, which does not exist"
                            ))
                            .into());
                        }
                    }
                    stored.secret.version_aliases = aliases;
                }
            }
        }
        stored.secret.etag = new_etag();
        tx.put(kind::SECRET, &name.key(p), &stored)?;
        Ok(stored.secret)
    })?;
    Ok(Reply::Json(secret.to_json()))
}

fn delete_secret(app: &App, req: &Req, name: SecretName) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.secrets.delete";
    let caller = req.caller(app)?;
    let shown = name.as_given();
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call = Call::new(SERVICE, method!("DeleteSecret"), name.name(p)).needs(PERMISSION, &name.full(p));
    authorize(app, &caller, PERMISSION, &name.full(p), &shown, &call)?;
    let etag = req.query("etag").map(str::to_owned);
    // The policy goes with the secret: a new secret of the same name starts with none (hence the IAM rebuild).
    app.mutate(&caller, call, true, |tx| {
        let stored = load_secret(tx, &name, p)?.ok_or_else(|| secret_not_found(&name.name(p)))?;
        if etag.as_ref().is_some_and(|e| *e != stored.secret.etag) {
            return Err(etag_mismatch(&stored.secret.name).into());
        }
        for (key, _) in tx.list::<Value>(kind::SECRET_VERSION, &versions_prefix(&name.key(p)))? {
            tx.delete(kind::SECRET_VERSION, &key)?;
        }
        tx.delete(kind::SECRET, &name.key(p))?;
        tx.delete(kind::POLICY, &name.full(p))?;
        Ok(())
    })?;
    Ok(Reply::Json(json!({})))
}

/// The payload of an `AddSecretVersion` body, decoded into a zeroized buffer, and the client's checksum.
fn payload_of(req: &Req) -> Result<(Zeroizing<Vec<u8>>, Option<i64>)> {
    let mut body: Value = req.json()?;
    if let Some(k) = body.as_object().and_then(|o| o.keys().find(|k| *k != "payload")) {
        return Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        )));
    }
    let payload = body.get_mut("payload").filter(|p| p.is_object());
    let Some(payload) = payload else { return Err(ApiError::invalid("Field [payload] is required.")) };
    // `SecretPayload` has `data` and `dataCrc32c` (either spelling of the proto name, as Google's parser takes).
    let fields = ["data", "dataCrc32c", "data_crc32c"];
    if let Some(k) = payload.as_object().and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str()))) {
        return Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Unknown name \"{k}\" at 'payload': Cannot find field."
        )));
    }
    let crc_field = if payload.get("dataCrc32c").is_some() { "dataCrc32c" } else { "data_crc32c" };
    let claimed = match payload.get(crc_field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(types::int64(v).ok_or_else(|| {
            ApiError::invalid("Invalid value at 'payload.data_crc32c' (TYPE_INT64): use a decimal integer")
        })?),
    };
    // Moved out of the JSON tree so the only copy of the encoded payload is zeroized when dropped.
    let encoded = match payload.get_mut("data") {
        Some(Value::String(s)) => Zeroizing::new(std::mem::take(s)),
        None | Some(Value::Null) => Zeroizing::new(String::new()),
        Some(_) => return Err(ApiError::invalid("Invalid value at 'payload.data' (TYPE_BYTES): use base64")),
    };
    if encoded.is_empty() {
        return Err(ApiError::invalid("Field [payload] is required."));
    }
    if encoded.len() > secrets::MAX_PAYLOAD.div_ceil(3) * 4 + 4 {
        return Err(ApiError::invalid(format!(
            "secret payload is larger than {} bytes; the limit is 65536",
            secrets::MAX_PAYLOAD
        )));
    }
    Ok((decode_base64(encoded.trim())?, claimed))
}

/// Proto3 JSON `bytes`: standard or URL-safe base64, padded or not.
fn decode_base64(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    use base64::alphabet::{STANDARD, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url_safe = s.bytes().any(|b| b == b'-' || b == b'_');
    let engine = GeneralPurpose::new(if url_safe { &URL_SAFE } else { &STANDARD }, config);
    let mut out = Zeroizing::new(vec![0u8; s.len().div_ceil(4) * 3]);
    let n = engine
        .decode_slice(s, &mut out[..])
        .map_err(|_| ApiError::invalid("Invalid value at 'payload.data' (TYPE_BYTES): Base64 decoding failed"))?;
    out.truncate(n);
    Ok(out)
}

fn add_version(app: &App, req: &Req, name: SecretName) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.versions.add";
    let caller = req.caller(app)?;
    let shown = name.as_given();
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call = Call::new(SERVICE, method!("AddSecretVersion"), name.name(p)).needs(PERMISSION, &name.full(p));
    authorize(app, &caller, PERMISSION, &name.full(p), &shown, &call)?;
    let (data, claimed) = payload_of(req)?;
    let crc = secrets::check_payload(&data, claimed).map_err(|e| ApiError::invalid(e.to_string()))?;
    // The request recorded in the audit log names the secret only; the payload never goes there.
    let call = call.with_request(json!({ "parent": name.name(p) }));
    let version = app.mutate(&caller, call, false, |tx| {
        let mut stored = load_secret(tx, &name, p)?.ok_or_else(|| secret_not_found(&name.name(p)))?;
        let number = stored.latest_version + 1;
        let version_name = format!("{}/versions/{number}", name.name(p));
        let sealed = app.master_key.seal(&version_name, &data).map_err(|e| {
            tracing::error!(version = %version_name, error = %e, "could not seal a secret version");
            ApiError::internal("could not encrypt the secret version; see the daemon log")
        })?;
        let version = types::SecretVersion {
            name: version_name,
            create_time: now_rfc3339(),
            destroy_time: None,
            state: State::Enabled,
            etag: new_etag(),
            client_specified_payload_checksum: claimed.is_some(),
            regional: name.location.is_some(),
        };
        tx.put(
            kind::SECRET_VERSION,
            &version_key(&name.key(p), number),
            &StoredVersion { version: version.clone(), data_crc32c: crc, sealed: Some(sealed) },
        )?;
        stored.latest_version = number;
        tx.put(kind::SECRET, &name.key(p), &stored)?;
        Ok(version)
    })?;
    Ok(Reply::Json(version.to_json(int_enums(req))))
}

fn list_versions(app: &App, req: &Req, name: SecretName) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.versions.list";
    let caller = req.caller(app)?;
    let shown = name.as_given();
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call = Call::new(SERVICE, method!("ListSecretVersions"), name.name(p)).reading();
    authorize(app, &caller, PERMISSION, &name.full(p), &shown, &call)?;
    let filter = audit::Filter::parse(req.query("filter").unwrap_or_default())
        .map_err(|e| ApiError::invalid(format!("invalid `filter`: {e}")))?;
    let versions = app.read(|tx| {
        if load_secret(tx, &name, p)?.is_none() {
            return Ok(None);
        }
        let all: Vec<(String, StoredVersion)> = tx.list(kind::SECRET_VERSION, &versions_prefix(&name.key(p)))?;
        Ok(Some(all.into_iter().map(|(_, v)| v).collect::<Vec<_>>()))
    })?;
    let versions = versions.ok_or_else(|| secret_not_found(&name.name(p)))?;
    let ints = int_enums(req);
    // Filters read state names whatever the answer's enum encoding.
    let items: Vec<Value> = types::newest_first(versions)
        .into_iter()
        .filter(|v| filter.matches(&v.version.to_json(false)))
        .map(|v| v.version.to_json(ints))
        .collect();
    Ok(Reply::Json(types::page(items, req.query("pageSize"), req.query("pageToken"), "versions")?))
}

fn get_version(app: &App, req: &Req, name: SecretName, version: &str) -> Result<Reply> {
    const PERMISSION: &str = "secretmanager.versions.get";
    let caller = req.caller(app)?;
    let shown = format!("{}/versions/{version}", name.as_given());
    let vref = VersionRef::parse(version, || shown.clone()).map_err(|e| by_number(app, &name.project, e))?;
    let p = project_of(app, &name, PERMISSION, &shown)?;
    let call =
        Call::new(SERVICE, method!("GetSecretVersion"), format!("{}/versions/{version}", name.name(p))).reading();
    authorize(app, &caller, PERMISSION, &name.full(p), &shown, &call)?;
    match app.read(|tx| Ok(resolve(tx, &name, p, &vref)?))? {
        Resolved::Found(v) => Ok(Reply::Json(v.version.to_json(int_enums(req)))),
        Resolved::NoSecret | Resolved::NoVersions => Err(no_versions(&name.name(p))),
        Resolved::NoVersion(n) => Err(version_not_found(&n)),
    }
}

fn transition(app: &App, req: &Req, name: SecretName, version: &str, op: &str) -> Result<Reply> {
    let (permission, method_name) = match op {
        "disable" => ("secretmanager.versions.disable", method!("DisableSecretVersion")),
        "enable" => ("secretmanager.versions.enable", method!("EnableSecretVersion")),
        _ => ("secretmanager.versions.destroy", method!("DestroySecretVersion")),
    };
    let caller = req.caller(app)?;
    let shown = format!("{}/versions/{version}", name.as_given());
    let vref = VersionRef::parse(version, || shown.clone()).map_err(|e| by_number(app, &name.project, e))?;
    if matches!(vref, VersionRef::Alias(_)) {
        return Err(invalid_format(&shown));
    }
    let p = project_of(app, &name, permission, &shown)?;
    let call = Call::new(SERVICE, method_name, format!("{}/versions/{version}", name.name(p)))
        .needs(permission, &name.full(p));
    authorize(app, &caller, permission, &name.full(p), &shown, &call)?;
    let body: Value = req.json()?;
    if let Some(k) = body.as_object().and_then(|o| o.keys().find(|k| !["etag", "name"].contains(&k.as_str()))) {
        return Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        )));
    }
    let etag = body.get("etag").and_then(Value::as_str).filter(|e| !e.is_empty()).map(str::to_owned);
    let call = call.with_request(json!({ "name": format!("{}/versions/{version}", name.name(p)) }));
    let version = app.mutate(&caller, call, false, |tx| {
        let mut v = match resolve(tx, &name, p, &vref)? {
            Resolved::Found(v) => v,
            Resolved::NoSecret | Resolved::NoVersions => return Err(no_versions(&name.name(p)).into()),
            Resolved::NoVersion(n) => return Err(version_not_found(&n).into()),
        };
        if etag.as_ref().is_some_and(|e| *e != v.version.etag) {
            return Err(etag_mismatch(&v.version.name).into());
        }
        // DESTROYED is final.
        if v.version.state == State::Destroyed {
            return Err(in_state(&v.version.name, State::Destroyed).into());
        }
        match op {
            "disable" => v.version.state = State::Disabled,
            "enable" => v.version.state = State::Enabled,
            _ => {
                v.version.state = State::Destroyed;
                v.version.destroy_time = Some(now_rfc3339());
                // INVARIANT: the sealed data leaves the store in the transaction that marks the version destroyed.
                v.sealed = None;
            }
        }
        v.version.etag = new_etag();
        let number = types::version_number(&v.version.name);
        tx.put(kind::SECRET_VERSION, &version_key(&name.key(p), number), &*v)?;
        Ok(v.version)
    })?;
    Ok(Reply::Json(version.to_json(int_enums(req))))
}

fn iam(app: &App, req: &Req, name: SecretName, verb: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let shown = name.as_given();
    let target = |p: &Project| Target {
        full_name: name.full(p),
        shown_name: name.name(p),
        service: SERVICE,
        get_permission: "secretmanager.secrets.getIamPolicy",
        set_permission: "secretmanager.secrets.setIamPolicy",
        get_method: method!("GetIamPolicy"),
        set_method: method!("SetIamPolicy"),
        requires_owner: false,
        grantable: &["secretmanager.secrets.", "secretmanager.versions."],
        resource: Some((kind::SECRET, name.key(p))),
    };
    if verb == "testIamPermissions" {
        // Needs no permission: it answers only with what the caller holds.
        let p = project_of(app, &name, "secretmanager.secrets.getIamPolicy", &shown)?;
        return policy::handle(app, req, &caller, &target(p), verb);
    }
    let permission = if verb == "setIamPolicy" {
        "secretmanager.secrets.setIamPolicy"
    } else {
        "secretmanager.secrets.getIamPolicy"
    };
    let p = project_of(app, &name, permission, &shown)?;
    let probe = Call::new(SERVICE, method!("GetIamPolicy"), name.name(p)).reading();
    authorize(app, &caller, permission, &name.full(p), &shown, &probe)?;
    if app.read(|tx| Ok(load_secret(tx, &name, p)?))?.is_none() {
        return Err(secret_not_found(&name.name(p)));
    }
    policy::handle(app, req, &caller, &target(p), verb)
}

/// A version's payload as read by one caller.
struct Accessed {
    /// The resolved name: `projects/NUMBER/secrets/S/versions/N`.
    name: String,
    data: Zeroizing<Vec<u8>>,
    crc32c: u32,
}

/// `AccessSecretVersion` for `caller`: format, IAM (`secretmanager.versions.access` on the secret), existence, state,
/// decryption. Returns the outcome and its Data Access entry, `None` when the project's `auditConfigs` exempt it; the
/// caller must have the entry durable before it answers (no record, no payload). `refuse` denies whatever IAM says
/// (a disabled runtime account).
fn access_outcome(
    app: &App,
    caller: &Caller,
    name: &SecretName,
    version: &str,
    refuse: bool,
) -> (Result<Accessed>, Option<String>) {
    let known = app.project.is(&name.project);
    let shown = format!("{}/versions/{version}", name.as_given());
    let requested = if known { format!("{}/versions/{version}", name.name(&app.project)) } else { shown.clone() };
    let granted = known && !refuse && decide(app, &caller.principal, ACCESS_PERMISSION, &name.full(&app.project));
    let mut resolved: Option<String> = None;
    let result = open_version(app, name, version, &shown, granted, &mut resolved);
    let record =
        AccessRecord { requested: &requested, resolved: resolved.as_deref(), granted, error: result.as_ref().err() };
    let entry = record.is_logged(app, caller).then(|| record.entry(app, caller));
    (result, entry)
}

fn withheld() -> ApiError {
    ApiError::new(
        Code::Unavailable,
        "the access could not be recorded in the audit log, so the payload is withheld; try again",
    )
}

fn open_version(
    app: &App,
    name: &SecretName,
    version: &str,
    shown: &str,
    granted: bool,
    resolved: &mut Option<String>,
) -> Result<Accessed> {
    let vref = VersionRef::parse(version, || shown.to_owned()).map_err(|e| by_number(app, &name.project, e))?;
    if !granted {
        // Resolved only for the audit entry (its readers may know); the caller learns nothing about existence.
        if app.project.is(&name.project) {
            if let Ok(Resolved::Found(v)) = app.read(|tx| Ok(resolve(tx, name, &app.project, &vref)?)) {
                *resolved = Some(v.version.name);
            }
        }
        return Err(denied(ACCESS_PERMISSION, shown));
    }
    let p = &app.project;
    let v = match resolve_cached(app, name, p, &vref)? {
        Resolved::Found(v) => v,
        Resolved::NoSecret | Resolved::NoVersions => return Err(no_versions(&name.name(p))),
        Resolved::NoVersion(n) => return Err(version_not_found(&n)),
    };
    *resolved = Some(v.version.name.clone());
    if v.version.state != State::Enabled {
        return Err(in_state(&v.version.name, v.version.state));
    }
    let Some(sealed) = &v.sealed else {
        tracing::error!(version = %v.version.name, "an enabled secret version has no sealed data");
        return Err(ApiError::internal(format!(
            "Secret Version [{}] has no stored data; the store was altered",
            v.version.name
        )));
    };
    let data = app.master_key.open(&v.version.name, sealed).map_err(|e| {
        tracing::error!(version = %v.version.name, error = %e, "a secret version did not open");
        ApiError::internal(format!("Secret Version [{}] cannot be decrypted: {e}", v.version.name))
    })?;
    Ok(Accessed { name: v.version.name.clone(), data, crc32c: v.data_crc32c })
}

fn access(app: &App, req: &Req, name: SecretName, version: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let (result, entry) = access_outcome(app, &caller, &name, version, false);
    let then = result.map(|a| Reply::Raw(access_body(&a)));
    match entry {
        // Answered by the HTTP layer once the entry is durable; this thread moves on to the next request.
        Some(entry) => Ok(Reply::AfterRecord { durable: app.audit_queue.submit(entry), then: Box::new(then) }),
        None => then,
    }
}

/// `{"name": …, "payload": {"data": BASE64, "dataCrc32c": "…"}}` written straight into one zeroized buffer, which
/// the HTTP layer sends from (hyper queues it for a vectored write rather than copying it) and wipes when dropped.
fn access_body(a: &Accessed) -> axum::body::Bytes {
    let head = format!("{{\"name\":{},\"payload\":{{\"data\":\"", json!(a.name));
    let tail = format!("\",\"dataCrc32c\":\"{}\"}}}}", a.crc32c);
    let encoded_len = a.data.len().div_ceil(3) * 4;
    // INVARIANT: allocated at its final size, so no reallocation leaves an unzeroized copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(head.len() + encoded_len + tail.len()));
    out.extend_from_slice(head.as_bytes());
    let start = out.len();
    out.resize(start + encoded_len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(&a.data[..], &mut out[start..])
        .expect("the buffer holds the encoded payload");
    out.truncate(start + written);
    out.extend_from_slice(tail.as_bytes());
    axum::body::Bytes::from_owner(out)
}

impl App {
    /// Reads a secret version as `principal_email` (a service account e-mail; the runtime identity of an instance),
    /// with the same IAM check (`secretmanager.versions.access`), state checks (DISABLED / DESTROYED →
    /// FAILED_PRECONDITION with Google's text) and Data Access audit entry (principal = that account, `callerIp`
    /// `private`) as a REST `:access` call. `secret` is a secret id in the platform's project or a full
    /// `projects/P/secrets/S` (or `projects/P/locations/L/secrets/S`) name; `version` is `latest`, a number or an
    /// alias. Ok: the resolved version name (`projects/NUMBER/secrets/S/versions/N`) and the payload.
    pub fn access_secret_as(
        &self,
        principal_email: &str,
        secret: &str,
        version: &str,
    ) -> std::result::Result<(String, Zeroizing<Vec<u8>>), ApiError> {
        let caller = runtime_caller(principal_email);
        let name = SecretName::parse_reference(&self.project.project_id, secret)?;
        let refuse = !self.runtime_account_active(principal_email)?;
        let (result, entry) = access_outcome(self, &caller, &name, version, refuse);
        if let Some(entry) = entry {
            if self.audit_queue.append(entry).is_err() && result.is_ok() {
                return Err(withheld());
            }
        }
        let a = result?;
        Ok((a.name, a.data))
    }

    /// Deploy-time check: does `principal_email` hold `secretmanager.versions.access` on the secret, and does the
    /// secret exist? Err is Google's 403 (no permission, whether or not the secret exists) or 404. Writes no audit
    /// entry: it is a permission check, not a read.
    pub fn check_secret_access(&self, principal_email: &str, secret: &str) -> std::result::Result<(), ApiError> {
        let name = SecretName::parse_reference(&self.project.project_id, secret)?;
        let shown = name.as_given();
        let p = project_of(self, &name, ACCESS_PERMISSION, &shown)?;
        let principal = iam::Principal::ServiceAccount(principal_email.to_owned());
        if !self.runtime_account_active(principal_email)? || !decide(self, &principal, ACCESS_PERMISSION, &name.full(p))
        {
            return Err(denied(ACCESS_PERMISSION, &shown));
        }
        match self.read(|tx| Ok(load_secret(tx, &name, p)?))? {
            Some(_) => Ok(()),
            None => Err(secret_not_found(&name.name(p))),
        }
    }

    /// The full name (`projects/NUMBER/secrets/S/versions/N`) that `version` of `secret` resolves to now, for
    /// `principal_email`, without reading the payload: the same IAM check as [`App::access_secret_as`], then Google's
    /// 404s; the version's state is not checked (reading it is). Writes no audit entry: nothing is read.
    pub fn secret_version_as(
        &self,
        principal_email: &str,
        secret: &str,
        version: &str,
    ) -> std::result::Result<String, ApiError> {
        let name = SecretName::parse_reference(&self.project.project_id, secret)?;
        let shown = format!("{}/versions/{version}", name.as_given());
        let vref = VersionRef::parse(version, || shown.clone()).map_err(|e| by_number(self, &name.project, e))?;
        let p = project_of(self, &name, ACCESS_PERMISSION, &shown)?;
        let principal = iam::Principal::ServiceAccount(principal_email.to_owned());
        if !self.runtime_account_active(principal_email)? || !decide(self, &principal, ACCESS_PERMISSION, &name.full(p))
        {
            return Err(denied(ACCESS_PERMISSION, &shown));
        }
        match self.read(|tx| Ok(resolve(tx, &name, p, &vref)?))? {
            Resolved::Found(v) => Ok(v.version.name),
            Resolved::NoSecret | Resolved::NoVersions => Err(no_versions(&name.name(p))),
            Resolved::NoVersion(n) => Err(version_not_found(&n)),
        }
    }

    /// A deleted or disabled service account reads nothing, as it could not authenticate to Google either.
    fn runtime_account_active(&self, email: &str) -> Result<bool> {
        let sa: Option<crate::service_accounts::ServiceAccount> =
            self.read(|tx| Ok(tx.get(kind::SERVICE_ACCOUNT, email)?))?;
        Ok(sa.is_some_and(|sa| !sa.disabled))
    }
}

fn runtime_caller(email: &str) -> Caller {
    Caller {
        principal: iam::Principal::ServiceAccount(email.to_owned()),
        ip: RUNTIME_CALLER_IP.to_owned(),
        user_agent: RUNTIME_USER_AGENT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_use_secret_managers_words() {
        let e = denied(ACCESS_PERMISSION, "projects/p/secrets/s/versions/latest");
        assert_eq!(e.http_status(), 403);
        assert_eq!(
            e.message,
            "Permission 'secretmanager.versions.access' denied for resource 'projects/p/secrets/s/versions/latest' (or it may not exist)."
        );
    }

    #[test]
    fn access_bodies_are_exact_json() {
        let a = Accessed {
            name: "projects/1/secrets/s/versions/2".into(),
            data: Zeroizing::new(vec![0, 1, 2, 255, b'"']),
            crc32c: 42,
        };
        let body = access_body(&a);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["name"], "projects/1/secrets/s/versions/2");
        assert_eq!(v["payload"]["dataCrc32c"], "42");
        let data = base64::engine::general_purpose::STANDARD.decode(v["payload"]["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, [0, 1, 2, 255, b'"']);
        for len in 0..5 {
            let a = Accessed { name: "n".into(), data: Zeroizing::new(vec![7; len]), crc32c: 0 };
            assert!(serde_json::from_slice::<Value>(&access_body(&a)).is_ok(), "{len}");
        }
    }

    #[test]
    fn base64_is_accepted_in_every_proto3_spelling() {
        for s in ["aGk/Pz8=", "aGk/Pz8", "aGk_Pz8=", "aGk_Pz8"] {
            assert_eq!(&decode_base64(s).unwrap()[..], b"hi???", "{s}");
        }
        assert!(decode_base64("not base64!").is_err());
    }

    #[test]
    fn project_bindings_are_inherited_by_secrets() {
        let mut snapshot = iam::Snapshot::new(
            iam::Catalogue::predefined(),
            vec![iam::ProjectRef { id: "local-project".into(), number: "123456789012".into() }],
        );
        let mut project = model::Policy::default();
        project.add_binding("roles/secretmanager.secretAccessor", "user:a@example.com", None);
        project.add_binding("roles/editor", "user:e@example.com", None);
        snapshot.set_policy("//cloudresourcemanager.googleapis.com/projects/local-project", &project).unwrap();
        let mut secret = model::Policy::default();
        secret.add_binding("roles/secretmanager.secretAccessor", "user:b@example.com", None);
        let s = "//secretmanager.googleapis.com/projects/local-project/secrets/db";
        snapshot.set_policy(s, &secret).unwrap();
        let now = SystemTime::now();
        let can = |who: &str, name: &str| {
            iam::decide(&snapshot, &iam::Principal::User(who.into()), ACCESS_PERMISSION, name, now).granted()
        };
        assert!(can("a@example.com", s), "project binding inherited");
        assert!(can("b@example.com", s), "secret binding");
        assert!(!can("b@example.com", "//secretmanager.googleapis.com/projects/local-project/secrets/other"));
        assert!(!can("e@example.com", s), "roles/editor cannot read payloads");
        // The project number names the same secret and the same policy.
        assert!(can("b@example.com", "//secretmanager.googleapis.com/projects/123456789012/secrets/db"));
        let regional = "//secretmanager.googleapis.com/projects/local-project/locations/us-central1/secrets/db";
        assert!(can("a@example.com", regional) && !can("b@example.com", regional));
    }
}
