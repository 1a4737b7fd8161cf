//! The role catalogue: Google's predefined roles with their real permission names, the permission universe they
//! draw from, and project custom roles.
//!
//! Owns: which permissions exist, which role holds which permission, and suggestions for misspelt role and
//! permission names. Must not: know about policies, members or resources (that is `snapshot` and `decide`).
//!
//! Permissions are interned: every known permission has a small index, and every role carries a bitset over that
//! universe ([`PermSet`]) so the decision path tests "does this role hold this permission" with one bit lookup.

use crate::error::IamError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// Launch stage of a role (`google.iam.admin.v1.Role.RoleLaunchStage`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoleStage {
    #[default]
    Ga,
    Beta,
    Alpha,
    Deprecated,
    Disabled,
    Eap,
}

/// A role as `roles.get` returns it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// `roles/run.invoker` (predefined) or `projects/P/roles/ID` (custom).
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub included_permissions: Vec<String>,
    #[serde(default)]
    pub stage: RoleStage,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Every permission Gatehouse knows. A custom role may only hold permissions from this list, and `roles/owner`
/// holds all of them.
const PERMISSIONS: &[&str] = &[
    // Resource Manager
    "resourcemanager.projects.create",
    "resourcemanager.projects.delete",
    "resourcemanager.projects.get",
    "resourcemanager.projects.getIamPolicy",
    "resourcemanager.projects.list",
    "resourcemanager.projects.setIamPolicy",
    "resourcemanager.projects.undelete",
    "resourcemanager.projects.update",
    // IAM: service accounts, keys, roles
    "iam.serviceAccounts.actAs",
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.delete",
    "iam.serviceAccounts.disable",
    "iam.serviceAccounts.enable",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getIamPolicy",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.list",
    "iam.serviceAccounts.setIamPolicy",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
    "iam.serviceAccounts.undelete",
    "iam.serviceAccounts.update",
    "iam.serviceAccountKeys.create",
    "iam.serviceAccountKeys.delete",
    "iam.serviceAccountKeys.disable",
    "iam.serviceAccountKeys.enable",
    "iam.serviceAccountKeys.get",
    "iam.serviceAccountKeys.list",
    "iam.roles.create",
    "iam.roles.delete",
    "iam.roles.get",
    "iam.roles.list",
    "iam.roles.undelete",
    "iam.roles.update",
    // Cloud Run
    "run.configurations.get",
    "run.configurations.list",
    "run.executions.cancel",
    "run.executions.delete",
    "run.executions.get",
    "run.executions.list",
    "run.instances.invoke",
    "run.jobs.create",
    "run.jobs.delete",
    "run.jobs.get",
    "run.jobs.getIamPolicy",
    "run.jobs.list",
    "run.jobs.run",
    "run.jobs.runWithOverrides",
    "run.jobs.setIamPolicy",
    "run.jobs.update",
    "run.locations.list",
    "run.operations.delete",
    "run.operations.get",
    "run.operations.list",
    "run.revisions.delete",
    "run.revisions.get",
    "run.revisions.list",
    "run.routes.get",
    "run.routes.invoke",
    "run.routes.list",
    "run.services.create",
    "run.services.delete",
    "run.services.get",
    "run.services.getIamPolicy",
    "run.services.list",
    "run.services.setIamPolicy",
    "run.services.update",
    "run.tasks.get",
    "run.tasks.list",
    // Secret Manager
    "secretmanager.locations.get",
    "secretmanager.locations.list",
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.list",
    "secretmanager.secrets.rotate",
    "secretmanager.secrets.setIamPolicy",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
    // Cloud Logging
    "logging.buckets.get",
    "logging.buckets.list",
    "logging.logEntries.create",
    "logging.logEntries.list",
    "logging.logServiceIndexes.list",
    "logging.logServices.list",
    "logging.logs.delete",
    "logging.logs.list",
    "logging.privateLogEntries.list",
    "logging.sinks.get",
    "logging.sinks.list",
    // Cloud SQL
    "cloudsql.backupRuns.create",
    "cloudsql.backupRuns.delete",
    "cloudsql.backupRuns.get",
    "cloudsql.backupRuns.list",
    "cloudsql.databases.create",
    "cloudsql.databases.delete",
    "cloudsql.databases.get",
    "cloudsql.databases.list",
    "cloudsql.databases.update",
    "cloudsql.instances.connect",
    "cloudsql.instances.create",
    "cloudsql.instances.delete",
    "cloudsql.instances.get",
    "cloudsql.instances.list",
    "cloudsql.instances.login",
    "cloudsql.instances.restart",
    "cloudsql.instances.update",
    "cloudsql.users.create",
    "cloudsql.users.delete",
    "cloudsql.users.list",
    "cloudsql.users.update",
    // Cloud Storage
    "storage.buckets.create",
    "storage.buckets.delete",
    "storage.buckets.get",
    "storage.buckets.getIamPolicy",
    "storage.buckets.list",
    "storage.buckets.setIamPolicy",
    "storage.buckets.update",
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.getIamPolicy",
    "storage.objects.list",
    "storage.objects.setIamPolicy",
    "storage.objects.update",
    // Pub/Sub
    "pubsub.snapshots.seek",
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.delete",
    "pubsub.subscriptions.get",
    "pubsub.subscriptions.getIamPolicy",
    "pubsub.subscriptions.list",
    "pubsub.subscriptions.setIamPolicy",
    "pubsub.subscriptions.update",
    "pubsub.topics.attachSubscription",
    "pubsub.topics.create",
    "pubsub.topics.delete",
    "pubsub.topics.get",
    "pubsub.topics.getIamPolicy",
    "pubsub.topics.list",
    "pubsub.topics.publish",
    "pubsub.topics.setIamPolicy",
    "pubsub.topics.update",
    // VPC networks and Serverless VPC Access
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.getSerialPortOutput",
    "compute.instances.list",
    "compute.networks.create",
    "compute.networks.delete",
    "compute.networks.get",
    "compute.networks.list",
    "compute.networks.update",
    "compute.networks.use",
    "compute.subnetworks.create",
    "compute.subnetworks.delete",
    "compute.subnetworks.get",
    "compute.subnetworks.list",
    "compute.subnetworks.update",
    "compute.subnetworks.use",
    "vpcaccess.connectors.create",
    "vpcaccess.connectors.delete",
    "vpcaccess.connectors.get",
    "vpcaccess.connectors.list",
    "vpcaccess.connectors.use",
    "vpcaccess.locations.list",
    "vpcaccess.operations.get",
    "vpcaccess.operations.list",
];

/// Permissions `roles/editor` does NOT get although they are mutations (PROTOCOL.md §8.3, Google's basic roles):
/// Editor cannot change who has access, cannot read secret payloads, cannot mint tokens as a service account
/// (that is `roles/iam.serviceAccountTokenCreator`), cannot manage custom roles and cannot delete the project.
/// Every `*.setIamPolicy` permission is excluded by rule in [`editor_includes`].
const EDITOR_EXCLUDED: &[&str] = &[
    "secretmanager.versions.access",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
    "iam.roles.create",
    "iam.roles.delete",
    "iam.roles.undelete",
    "iam.roles.update",
    "resourcemanager.projects.create",
    "resourcemanager.projects.delete",
    "resourcemanager.projects.undelete",
    "logging.privateLogEntries.list",
];

/// Permissions not even `roles/owner` holds: minting tokens as a service account. Google keeps impersonation out of
/// the basic roles, so it is always an explicit grant of `roles/iam.serviceAccountTokenCreator` on the account (or
/// the project), which the audit log and the advisor can see.
const OWNER_EXCLUDED: &[&str] = &[
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
];

fn owner_includes(p: &str) -> bool {
    !OWNER_EXCLUDED.contains(&p)
}

/// Read permissions `roles/viewer` does NOT get although their verb is a read: private (Data Access) logs.
const VIEWER_EXCLUDED: &[&str] = &["logging.privateLogEntries.list"];

fn verb(permission: &str) -> &str {
    permission.rsplit('.').next().unwrap_or(permission)
}

fn viewer_includes(p: &str) -> bool {
    matches!(verb(p), "get" | "list" | "getIamPolicy") && !VIEWER_EXCLUDED.contains(&p)
}

fn editor_includes(p: &str) -> bool {
    viewer_includes(p) || (verb(p) != "setIamPolicy" && !EDITOR_EXCLUDED.contains(&p))
}

const PROJECT_READ: &[&str] = &["resourcemanager.projects.get", "resourcemanager.projects.list"];

/// How a predefined role's permissions are listed: exact names, or `service.*` / `service.collection.*` wildcards
/// over [`PERMISSIONS`], or a rule.
enum Grants {
    List(&'static [&'static [&'static str]]),
    Rule(fn(&str) -> bool),
}

struct Predef {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    grants: Grants,
}

const fn list(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    p: &'static [&'static [&'static str]],
) -> Predef {
    Predef { name, title, description, grants: Grants::List(p) }
}

const PREDEFINED: &[Predef] = &[
    Predef {
        name: "roles/owner",
        title: "Owner",
        description: "Full access to most Google Cloud resources. See the list of included permissions.",
        grants: Grants::Rule(owner_includes),
    },
    Predef {
        name: "roles/editor",
        title: "Editor",
        description: "View, create, update, and delete most Google Cloud resources. See the list of included permissions.",
        grants: Grants::Rule(editor_includes),
    },
    Predef {
        name: "roles/viewer",
        title: "Viewer",
        description: "View most Google Cloud resources. See the list of included permissions.",
        grants: Grants::Rule(viewer_includes),
    },
    Predef {
        name: "roles/browser",
        title: "Browser",
        description: "Access to browse Google Cloud resources.",
        grants: Grants::List(&[PROJECT_READ]),
    },
    list(
        "roles/run.invoker",
        "Cloud Run Invoker",
        "Invoke Cloud Run services and execute Cloud Run jobs.",
        &[&["run.routes.invoke", "run.jobs.run", "run.instances.invoke"]],
    ),
    list(
        "roles/run.developer",
        "Cloud Run Developer",
        "Read and write access to all Cloud Run resources.",
        &[
            PROJECT_READ,
            &[
                "run.services.create",
                "run.services.delete",
                "run.services.get",
                "run.services.list",
                "run.services.update",
                "run.services.getIamPolicy",
                "run.revisions.*",
                "run.routes.*",
                "run.configurations.*",
                "run.jobs.create",
                "run.jobs.delete",
                "run.jobs.get",
                "run.jobs.list",
                "run.jobs.update",
                "run.jobs.run",
                "run.jobs.runWithOverrides",
                "run.jobs.getIamPolicy",
                "run.executions.*",
                "run.tasks.*",
                "run.operations.*",
                "run.locations.list",
                "run.instances.invoke",
            ],
        ],
    ),
    list(
        "roles/run.admin",
        "Cloud Run Admin",
        "Full access to all Cloud Run resources.",
        &[PROJECT_READ, &["run.*"]],
    ),
    list(
        "roles/run.viewer",
        "Cloud Run Viewer",
        "Can view the state of all Cloud Run resources, including IAM policies.",
        &[
            PROJECT_READ,
            &[
                "run.configurations.get",
                "run.configurations.list",
                "run.executions.get",
                "run.executions.list",
                "run.jobs.get",
                "run.jobs.getIamPolicy",
                "run.jobs.list",
                "run.locations.list",
                "run.operations.get",
                "run.operations.list",
                "run.revisions.get",
                "run.revisions.list",
                "run.routes.get",
                "run.routes.list",
                "run.services.get",
                "run.services.getIamPolicy",
                "run.services.list",
                "run.tasks.get",
                "run.tasks.list",
            ],
        ],
    ),
    list(
        "roles/compute.networkAdmin",
        "Compute Network Admin",
        "Permissions to create, modify, and delete networking resources.",
        &[PROJECT_READ, &["compute.networks.*", "compute.subnetworks.*"]],
    ),
    list(
        "roles/compute.instanceAdmin.v1",
        "Compute Instance Admin (v1)",
        "Full control of Compute Engine instances.",
        &[PROJECT_READ, &["compute.instances.*", "compute.subnetworks.use", "compute.networks.use"]],
    ),
    list(
        "roles/compute.networkUser",
        "Compute Network User",
        "Provides access to a shared VPC network.",
        &[
            PROJECT_READ,
            &[
                "compute.networks.get",
                "compute.networks.list",
                "compute.networks.use",
                "compute.subnetworks.get",
                "compute.subnetworks.list",
                "compute.subnetworks.use",
            ],
        ],
    ),
    list(
        "roles/compute.networkViewer",
        "Compute Network Viewer",
        "Read-only access to Compute Engine networking resources.",
        &[
            PROJECT_READ,
            &["compute.networks.get", "compute.networks.list", "compute.subnetworks.get", "compute.subnetworks.list"],
        ],
    ),
    list("roles/vpcaccess.admin", "Serverless VPC Access Admin", "Full access to all Serverless VPC Access resources.", &[PROJECT_READ, &["vpcaccess.*"]]),
    list(
        "roles/vpcaccess.user",
        "Serverless VPC Access User",
        "User of Serverless VPC Access connectors.",
        &[
            PROJECT_READ,
            &["vpcaccess.connectors.use", "vpcaccess.connectors.get", "vpcaccess.connectors.list", "vpcaccess.locations.list"],
        ],
    ),
    list(
        "roles/vpcaccess.viewer",
        "Serverless VPC Access Viewer",
        "Viewer of all Serverless VPC Access resources.",
        &[
            PROJECT_READ,
            &[
                "vpcaccess.connectors.get",
                "vpcaccess.connectors.list",
                "vpcaccess.locations.list",
                "vpcaccess.operations.get",
                "vpcaccess.operations.list",
            ],
        ],
    ),
    list(
        "roles/secretmanager.secretAccessor",
        "Secret Manager Secret Accessor",
        "Allows accessing the payload of secrets.",
        &[PROJECT_READ, &["secretmanager.versions.access"]],
    ),
    list(
        "roles/secretmanager.viewer",
        "Secret Manager Viewer",
        "Allows viewing metadata of all Secret Manager resources",
        &[
            PROJECT_READ,
            &[
                "secretmanager.locations.*",
                "secretmanager.secrets.get",
                "secretmanager.secrets.getIamPolicy",
                "secretmanager.secrets.list",
                "secretmanager.versions.get",
                "secretmanager.versions.list",
            ],
        ],
    ),
    list(
        "roles/secretmanager.secretVersionAdder",
        "Secret Manager Secret Version Adder",
        "Allows adding versions to existing secrets.",
        &[PROJECT_READ, &["secretmanager.versions.add", "secretmanager.secrets.rotate"]],
    ),
    list(
        "roles/secretmanager.secretVersionManager",
        "Secret Manager Secret Version Manager",
        "Allows creating and managing versions of existing secrets.",
        &[
            PROJECT_READ,
            &[
                "secretmanager.versions.add",
                "secretmanager.versions.destroy",
                "secretmanager.versions.disable",
                "secretmanager.versions.enable",
                "secretmanager.versions.get",
                "secretmanager.versions.list",
                "secretmanager.secrets.rotate",
            ],
        ],
    ),
    list(
        "roles/secretmanager.admin",
        "Secret Manager Admin",
        "Full access to administer Secret Manager resources.",
        &[PROJECT_READ, &["secretmanager.*"]],
    ),
    list(
        "roles/iam.serviceAccountUser",
        "Service Account User",
        "Run operations as the service account.",
        &[PROJECT_READ, &["iam.serviceAccounts.actAs", "iam.serviceAccounts.get", "iam.serviceAccounts.list"]],
    ),
    list(
        "roles/iam.serviceAccountTokenCreator",
        "Service Account Token Creator",
        "Impersonate service accounts (create OAuth2 access tokens, sign blobs or JWTs, etc).",
        &[
            PROJECT_READ,
            &[
                "iam.serviceAccounts.get",
                "iam.serviceAccounts.getAccessToken",
                "iam.serviceAccounts.getOpenIdToken",
                "iam.serviceAccounts.implicitDelegation",
                "iam.serviceAccounts.list",
                "iam.serviceAccounts.signBlob",
                "iam.serviceAccounts.signJwt",
            ],
        ],
    ),
    list(
        "roles/iam.serviceAccountAdmin",
        "Service Account Admin",
        "Create and manage service accounts.",
        &[
            PROJECT_READ,
            &[
                "iam.serviceAccounts.create",
                "iam.serviceAccounts.delete",
                "iam.serviceAccounts.disable",
                "iam.serviceAccounts.enable",
                "iam.serviceAccounts.get",
                "iam.serviceAccounts.getIamPolicy",
                "iam.serviceAccounts.list",
                "iam.serviceAccounts.setIamPolicy",
                "iam.serviceAccounts.undelete",
                "iam.serviceAccounts.update",
            ],
        ],
    ),
    list(
        "roles/iam.serviceAccountViewer",
        "View Service Accounts",
        "Read access to service accounts, metadata, and keys.",
        &[
            PROJECT_READ,
            &["iam.serviceAccounts.get", "iam.serviceAccounts.list", "iam.serviceAccountKeys.get", "iam.serviceAccountKeys.list"],
        ],
    ),
    list(
        "roles/iam.roleAdmin",
        "Role Administrator",
        "Provides access to all custom roles in the project.",
        &[&["iam.roles.*", "resourcemanager.projects.get", "resourcemanager.projects.getIamPolicy"]],
    ),
    list(
        "roles/iam.roleViewer",
        "Role Viewer",
        "Provides read access to all custom roles in the project.",
        &[&["iam.roles.get", "iam.roles.list", "resourcemanager.projects.get", "resourcemanager.projects.getIamPolicy"]],
    ),
    Predef {
        name: "roles/iam.securityReviewer",
        title: "Security Reviewer",
        description: "Security reviewer role, with permissions to get any IAM policy.",
        grants: Grants::Rule(|p| matches!(verb(p), "list" | "getIamPolicy") && !VIEWER_EXCLUDED.contains(&p) || p == "iam.roles.get"),
    },
    list(
        "roles/resourcemanager.projectIamAdmin",
        "Project IAM Admin",
        "Access and administer a project IAM policies.",
        &[&["resourcemanager.projects.get", "resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy"]],
    ),
    list(
        "roles/cloudsql.client",
        "Cloud SQL Client",
        "Connectivity access to Cloud SQL instances.",
        &[PROJECT_READ, &["cloudsql.instances.connect", "cloudsql.instances.get"]],
    ),
    list(
        "roles/cloudsql.admin",
        "Cloud SQL Admin",
        "Full control of Cloud SQL resources.",
        &[PROJECT_READ, &["cloudsql.*"]],
    ),
    list(
        "roles/storage.objectViewer",
        "Storage Object Viewer",
        "Grants access to view objects and their metadata, excluding ACLs. Can also list the objects in a bucket.",
        &[PROJECT_READ, &["storage.objects.get", "storage.objects.list"]],
    ),
    list(
        "roles/storage.objectCreator",
        "Storage Object Creator",
        "Grants access to create objects in GCS.",
        &[&["storage.objects.create"]],
    ),
    list(
        "roles/storage.admin",
        "Storage Admin",
        "Grants full control of buckets and objects.",
        &[PROJECT_READ, &["storage.*"]],
    ),
    list(
        "roles/pubsub.publisher",
        "Pub/Sub Publisher",
        "Provides access to publish messages to a topic.",
        &[&["pubsub.topics.publish"]],
    ),
    list(
        "roles/pubsub.subscriber",
        "Pub/Sub Subscriber",
        "Provides access to consume messages from a subscription and to attach subscriptions to a topic.",
        &[&["pubsub.snapshots.seek", "pubsub.subscriptions.consume", "pubsub.topics.attachSubscription"]],
    ),
    list(
        "roles/logging.viewer",
        "Logs Viewer",
        "Provides access to view logs.",
        &[
            &["resourcemanager.projects.get"],
            &[
                "logging.buckets.get",
                "logging.buckets.list",
                "logging.logEntries.list",
                "logging.logServiceIndexes.list",
                "logging.logServices.list",
                "logging.logs.list",
                "logging.sinks.get",
                "logging.sinks.list",
            ],
        ],
    ),
    list(
        "roles/logging.privateLogViewer",
        "Private Logs Viewer",
        "Provides permissions of the Logs Viewer role and in addition, provides read-only access to log entries in private logs.",
        &[
            &["resourcemanager.projects.get"],
            &[
                "logging.buckets.get",
                "logging.buckets.list",
                "logging.logEntries.list",
                "logging.logServiceIndexes.list",
                "logging.logServices.list",
                "logging.logs.list",
                "logging.privateLogEntries.list",
                "logging.sinks.get",
                "logging.sinks.list",
            ],
        ],
    ),
    list(
        "roles/logging.logWriter",
        "Logs Writer",
        "Provides the permissions to write log entries.",
        &[&["logging.logEntries.create"]],
    ),
];

/// A set of permissions as a bitset over the permission universe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PermSet(Box<[u64]>);

impl PermSet {
    fn empty(universe: usize) -> PermSet {
        PermSet(vec![0; universe.div_ceil(64)].into_boxed_slice())
    }
    fn insert(&mut self, id: u32) {
        self.0[(id / 64) as usize] |= 1 << (id % 64);
    }
    #[inline]
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.0.get((id / 64) as usize).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }
}

/// The permission universe: names in a stable order, and their index.
#[derive(Debug)]
struct Universe {
    names: Vec<&'static str>,
    ids: HashMap<&'static str, u32>,
}

#[derive(Debug)]
struct Predefined {
    universe: Universe,
    roles: Vec<Role>,
    perms: Vec<Arc<PermSet>>,
    by_name: HashMap<String, usize>,
}

#[derive(Clone, Debug)]
struct Custom {
    role: Role,
    perms: Arc<PermSet>,
}

/// All roles a policy may grant: the predefined ones (shared, built once) and the custom roles of projects.
#[derive(Clone, Debug)]
pub struct Catalogue {
    predefined: Arc<Predefined>,
    custom: BTreeMap<String, Custom>,
}

fn build_predefined() -> Predefined {
    let mut names: Vec<&'static str> = PERMISSIONS.to_vec();
    names.sort_unstable();
    names.dedup();
    let ids: HashMap<&'static str, u32> = names.iter().enumerate().map(|(i, p)| (*p, i as u32)).collect();
    let universe = Universe { names, ids };
    let mut roles = Vec::new();
    let mut perms = Vec::new();
    let mut by_name = HashMap::new();
    for def in PREDEFINED {
        let mut set = PermSet::empty(universe.names.len());
        let mut included = Vec::new();
        let mut add = |p: &'static str, set: &mut PermSet| {
            let id = universe.ids[p];
            if !set.contains(id) {
                set.insert(id);
                included.push(p.to_owned());
            }
        };
        match &def.grants {
            Grants::Rule(rule) => {
                for p in universe.names.iter().filter(|p| rule(p)) {
                    add(p, &mut set);
                }
            }
            Grants::List(groups) => {
                for entry in groups.iter().flat_map(|g| g.iter()) {
                    if let Some(prefix) = entry.strip_suffix('*') {
                        let matched: Vec<&'static str> =
                            universe.names.iter().copied().filter(|p| p.starts_with(prefix)).collect();
                        // INVARIANT: a wildcard in the table names at least one known permission.
                        debug_assert!(!matched.is_empty(), "{entry} matches nothing");
                        for p in matched {
                            add(p, &mut set);
                        }
                    } else {
                        // INVARIANT: every permission named by a predefined role is in PERMISSIONS (tested).
                        add(entry, &mut set);
                    }
                }
            }
        }
        included.sort_unstable();
        by_name.insert(def.name.to_owned(), roles.len());
        roles.push(Role {
            name: def.name.to_owned(),
            title: def.title.to_owned(),
            description: def.description.to_owned(),
            included_permissions: included,
            stage: RoleStage::Ga,
            deleted: false,
            etag: "AA==".to_owned(),
        });
        perms.push(Arc::new(set));
    }
    Predefined { universe, roles, perms, by_name }
}

impl Catalogue {
    /// The predefined roles only. The tables are built once per process; later calls share them.
    pub fn predefined() -> Catalogue {
        static PREDEFINED_CATALOGUE: OnceLock<Arc<Predefined>> = OnceLock::new();
        let predefined = PREDEFINED_CATALOGUE.get_or_init(|| Arc::new(build_predefined())).clone();
        Catalogue { predefined, custom: BTreeMap::new() }
    }

    /// A predefined or custom role by its full name (deleted custom roles included; check [`Role::deleted`]).
    pub fn get(&self, name: &str) -> Option<&Role> {
        match self.predefined.by_name.get(name) {
            Some(&i) => Some(&self.predefined.roles[i]),
            None => self.custom.get(name).map(|c| &c.role),
        }
    }

    pub fn predefined_roles(&self) -> impl Iterator<Item = &Role> {
        self.predefined.roles.iter()
    }

    pub fn custom_roles(&self) -> impl Iterator<Item = &Role> {
        self.custom.values().map(|c| &c.role)
    }

    /// Adds or replaces a custom role `projects/P/roles/ID` (or `organizations/O/roles/ID`).
    /// Every included permission must be known.
    pub fn insert_custom(&mut self, role: Role) -> Result<(), IamError> {
        model::policy::validate_role_name(&role.name).map_err(IamError::InvalidRole)?;
        let Some((_, id)) = role.name.split_once("/roles/") else {
            return Err(IamError::InvalidRole(format!(
                "`{}` is a predefined role name; a custom role is named `projects/PROJECT/roles/ROLE_ID`",
                role.name
            )));
        };
        model::names::validate_custom_role_id(id).map_err(IamError::InvalidRole)?;
        if role.title.chars().count() > 100 {
            return Err(IamError::InvalidRole(format!("the title of `{}` is longer than 100 characters", role.name)));
        }
        self.check_permissions(&role.included_permissions)?;
        let mut set = PermSet::empty(self.predefined.universe.names.len());
        for p in &role.included_permissions {
            set.insert(self.predefined.universe.ids[p.as_str()]);
        }
        self.custom.insert(role.name.clone(), Custom { role, perms: Arc::new(set) });
        Ok(())
    }

    /// The role, or [`IamError::UnknownRole`] with the closest known name as a suggestion.
    pub fn check_role_exists(&self, name: &str) -> Result<&Role, IamError> {
        if let Some(role) = self.get(name) {
            return Ok(role);
        }
        let names = self.predefined.roles.iter().map(|r| r.name.as_str()).chain(self.custom.keys().map(String::as_str));
        Err(IamError::UnknownRole { role: name.to_owned(), suggestion: closest(name, names) })
    }

    /// Checks that every permission is known; the first unknown one is reported with a suggestion.
    pub fn check_permissions(&self, perms: &[String]) -> Result<(), IamError> {
        for p in perms {
            if !self.is_known_permission(p) {
                let suggestion = closest(p, self.predefined.universe.names.iter().copied());
                return Err(IamError::UnknownPermission { permission: p.clone(), suggestion });
            }
        }
        Ok(())
    }

    pub fn is_known_permission(&self, p: &str) -> bool {
        self.predefined.universe.ids.contains_key(p)
    }

    /// True when `role` exists, is not deleted, and holds `permission`.
    pub fn role_has_permission(&self, role: &str, permission: &str) -> bool {
        match (self.role_perms(role), self.permission_id(permission)) {
            (Some(set), Some(id)) => set.contains(id),
            _ => false,
        }
    }

    /// Every known permission, sorted.
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.predefined.universe.names.iter().copied()
    }

    pub(crate) fn permission_id(&self, permission: &str) -> Option<u32> {
        self.predefined.universe.ids.get(permission).copied()
    }

    /// The permission bitset of a live role; `None` for unknown roles, an empty set for deleted ones.
    pub(crate) fn role_perms(&self, role: &str) -> Option<&Arc<PermSet>> {
        if let Some(&i) = self.predefined.by_name.get(role) {
            return Some(&self.predefined.perms[i]);
        }
        let custom = self.custom.get(role)?;
        if custom.role.deleted {
            static EMPTY: OnceLock<Arc<PermSet>> = OnceLock::new();
            return Some(EMPTY.get_or_init(|| Arc::new(PermSet::default())));
        }
        Some(&custom.perms)
    }
}

/// The candidate closest to `input`: an exact case-insensitive match first, else the smallest edit distance
/// within a third of the input's length.
fn closest<'a>(input: &str, candidates: impl Iterator<Item = &'a str> + Clone) -> Option<String> {
    if input.len() > 256 {
        return None;
    }
    if let Some(c) = candidates.clone().find(|c| c.eq_ignore_ascii_case(input)) {
        return Some(c.to_owned());
    }
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(role: &str, p: &str) -> bool {
        Catalogue::predefined().role_has_permission(role, p)
    }

    #[test]
    fn every_predefined_permission_is_in_the_universe() {
        for def in PREDEFINED {
            if let Grants::List(groups) = &def.grants {
                for p in groups.iter().flat_map(|g| g.iter()) {
                    let known = match p.strip_suffix('*') {
                        Some(prefix) => PERMISSIONS.iter().any(|q| q.starts_with(prefix)),
                        None => PERMISSIONS.contains(p),
                    };
                    assert!(known, "{} names unknown permission {p}", def.name);
                }
            }
        }
    }

    #[test]
    fn key_permissions_match_protocol_8_3() {
        let table: &[(&str, &str, bool)] = &[
            ("roles/run.invoker", "run.routes.invoke", true),
            ("roles/run.invoker", "run.jobs.run", true),
            ("roles/run.invoker", "run.services.get", false),
            ("roles/run.developer", "run.services.create", true),
            ("roles/run.developer", "run.services.setIamPolicy", false),
            ("roles/run.developer", "run.jobs.setIamPolicy", false),
            ("roles/run.developer", "run.routes.invoke", true),
            ("roles/run.admin", "run.services.setIamPolicy", true),
            ("roles/run.admin", "run.jobs.setIamPolicy", true),
            ("roles/run.admin", "resourcemanager.projects.get", true),
            ("roles/run.viewer", "run.services.getIamPolicy", true),
            ("roles/run.viewer", "run.routes.invoke", false),
            ("roles/secretmanager.secretAccessor", "secretmanager.versions.access", true),
            ("roles/secretmanager.viewer", "secretmanager.versions.access", false),
            ("roles/secretmanager.viewer", "secretmanager.secrets.getIamPolicy", true),
            ("roles/secretmanager.secretVersionAdder", "secretmanager.versions.add", true),
            ("roles/secretmanager.secretVersionManager", "secretmanager.versions.destroy", true),
            ("roles/secretmanager.admin", "secretmanager.versions.access", true),
            ("roles/secretmanager.admin", "secretmanager.secrets.setIamPolicy", true),
            ("roles/iam.serviceAccountUser", "iam.serviceAccounts.actAs", true),
            ("roles/iam.serviceAccountTokenCreator", "iam.serviceAccounts.getOpenIdToken", true),
            ("roles/iam.serviceAccountTokenCreator", "iam.serviceAccounts.actAs", false),
            ("roles/viewer", "run.services.get", true),
            ("roles/viewer", "resourcemanager.projects.getIamPolicy", true),
            ("roles/viewer", "run.routes.invoke", false),
            ("roles/viewer", "secretmanager.versions.access", false),
            ("roles/viewer", "iam.serviceAccounts.actAs", false),
            ("roles/viewer", "logging.privateLogEntries.list", false),
            ("roles/editor", "run.routes.invoke", true),
            ("roles/editor", "run.services.create", true),
            ("roles/editor", "iam.serviceAccounts.actAs", true),
            ("roles/editor", "iam.serviceAccountKeys.create", true),
            ("roles/editor", "secretmanager.versions.add", true),
            ("roles/editor", "secretmanager.versions.access", false),
            ("roles/editor", "run.services.setIamPolicy", false),
            ("roles/editor", "secretmanager.secrets.setIamPolicy", false),
            ("roles/editor", "resourcemanager.projects.setIamPolicy", false),
            ("roles/editor", "resourcemanager.projects.delete", false),
            ("roles/editor", "iam.roles.create", false),
            ("roles/editor", "iam.serviceAccounts.getAccessToken", false),
            ("roles/owner", "secretmanager.versions.access", true),
            ("roles/owner", "run.services.setIamPolicy", true),
            ("roles/cloudsql.client", "cloudsql.instances.connect", true),
            ("roles/storage.objectViewer", "storage.objects.get", true),
            ("roles/pubsub.publisher", "pubsub.topics.publish", true),
            ("roles/logging.privateLogViewer", "logging.privateLogEntries.list", true),
            ("roles/logging.viewer", "logging.privateLogEntries.list", false),
            ("roles/iam.securityReviewer", "run.services.getIamPolicy", true),
            ("roles/iam.securityReviewer", "run.services.setIamPolicy", false),
        ];
        for (role, p, want) in table {
            assert!(Catalogue::predefined().is_known_permission(p), "{p} unknown");
            assert_eq!(has(role, p), *want, "{role} {p}");
        }
    }

    #[test]
    fn editor_lacks_every_set_iam_policy_and_owner_has_everything_but_impersonation() {
        let c = Catalogue::predefined();
        for p in c.permissions() {
            assert_eq!(c.role_has_permission("roles/owner", p), !OWNER_EXCLUDED.contains(&p), "{p}");
            if p.ends_with(".setIamPolicy") {
                assert!(!c.role_has_permission("roles/editor", p), "{p}");
            }
            if c.role_has_permission("roles/viewer", p) {
                assert!(c.role_has_permission("roles/editor", p), "{p}");
            }
        }
        assert_eq!(
            c.get("roles/owner").unwrap().included_permissions.len(),
            c.permissions().count() - OWNER_EXCLUDED.len()
        );
    }

    #[test]
    fn unknown_roles_get_suggestions() {
        let c = Catalogue::predefined();
        for (input, want) in [
            ("roles/run.invokr", Some("roles/run.invoker")),
            ("roles/RUN.INVOKER", Some("roles/run.invoker")),
            ("roles/secretmanager.secretAcessor", Some("roles/secretmanager.secretAccessor")),
            ("roles/nothing.likeThisAtAll", None),
        ] {
            match c.check_role_exists(input) {
                Err(IamError::UnknownRole { role, suggestion }) => {
                    assert_eq!(role, input);
                    assert_eq!(suggestion.as_deref(), want, "{input}");
                }
                other => panic!("{input}: {other:?}"),
            }
        }
        assert_eq!(c.check_role_exists("roles/run.invoker").unwrap().title, "Cloud Run Invoker");
    }

    #[test]
    fn custom_roles_validate_permissions_and_names() {
        let mut c = Catalogue::predefined();
        let role = |name: &str, perms: &[&str]| Role {
            name: name.into(),
            title: "Mine".into(),
            description: String::new(),
            included_permissions: perms.iter().map(|p| p.to_string()).collect(),
            stage: RoleStage::Ga,
            deleted: false,
            etag: String::new(),
        };
        let err = c.insert_custom(role("projects/p/roles/mine", &["run.routes.invok"])).unwrap_err();
        assert_eq!(
            err,
            IamError::UnknownPermission {
                permission: "run.routes.invok".into(),
                suggestion: Some("run.routes.invoke".into())
            }
        );
        assert!(matches!(c.insert_custom(role("roles/mine", &[])), Err(IamError::InvalidRole(_))));
        assert!(matches!(c.insert_custom(role("projects/p/roles/a-b", &[])), Err(IamError::InvalidRole(_))));
        c.insert_custom(role("projects/p/roles/mine", &["run.routes.invoke"])).unwrap();
        assert!(c.role_has_permission("projects/p/roles/mine", "run.routes.invoke"));
        assert!(!c.role_has_permission("projects/p/roles/mine", "run.services.get"));
        assert_eq!(c.custom_roles().count(), 1);
        let mut gone = role("projects/p/roles/mine", &["run.routes.invoke"]);
        gone.deleted = true;
        c.insert_custom(gone).unwrap();
        assert!(!c.role_has_permission("projects/p/roles/mine", "run.routes.invoke"));
    }

    #[test]
    fn role_json_is_google_shaped() {
        let c = Catalogue::predefined();
        let v = serde_json::to_value(c.get("roles/run.invoker").unwrap()).unwrap();
        assert_eq!(v["stage"], "GA");
        assert_eq!(v["title"], "Cloud Run Invoker");
        assert!(v["includedPermissions"].as_array().unwrap().contains(&"run.routes.invoke".into()));
        assert!(v.get("deleted").is_none());
    }
}
