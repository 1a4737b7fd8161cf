//! `decide` on a snapshot of 10,000 bindings over 1,000 resources, against casbin (RBAC with domains) on the same
//! bindings and the same queries. Both must agree on every query before anything is measured.
//!
//! Run: `cargo bench -p iam --bench decide -- --warm-up-time 1 --measurement-time 3`

use casbin::prelude::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use iam::{decide, Catalogue, Principal, ProjectRef, Role, RoleStage, Snapshot};
use model::{Binding, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

const PROJECT_ID: &str = "bench-project";
const PROJECT: &str = "//cloudresourcemanager.googleapis.com/projects/bench-project";
const RESOURCES: usize = 1_000;
const BINDINGS_PER_RESOURCE: usize = 10;
const USERS: usize = 3_000;
const SERVICE_ACCOUNTS: usize = 200;
const GROUPS: usize = 100;
const QUERIES: usize = 1_024;

const ROLES: &[&str] = &[
    "roles/run.invoker",
    "roles/run.developer",
    "roles/run.viewer",
    "roles/run.admin",
    "roles/secretmanager.secretAccessor",
    "projects/bench-project/roles/custom0",
    "projects/bench-project/roles/custom1",
    "projects/bench-project/roles/custom2",
];
const PERMISSIONS: &[&str] = &[
    "run.routes.invoke",
    "run.services.get",
    "run.services.update",
    "run.services.setIamPolicy",
    "secretmanager.versions.access",
    "run.jobs.run",
];

/// A small deterministic generator (no extra dependency, same world every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn resource(i: usize) -> String {
    format!("//run.googleapis.com/projects/{PROJECT_ID}/locations/us-central1/services/svc-{i}")
}

fn user(i: usize) -> String {
    format!("user:u{i}@example.com")
}

fn sa(i: usize) -> String {
    format!("serviceAccount:sa{i}@{PROJECT_ID}.iam.gserviceaccount.com")
}

fn group(i: usize) -> String {
    format!("group:g{i}@example.com")
}

struct World {
    /// full resource name → bindings (role, members)
    policies: BTreeMap<String, Vec<(String, Vec<String>)>>,
    /// group member string → direct members
    groups: BTreeMap<String, Vec<String>>,
    catalogue: Catalogue,
}

fn build_world() -> World {
    let mut rng = Lcg(42);
    let mut catalogue = Catalogue::predefined();
    let custom_perms: [&[&str]; 3] = [
        &["run.routes.invoke", "run.services.get"],
        &["run.services.get", "run.services.update", "secretmanager.versions.access"],
        &["run.jobs.run", "run.services.setIamPolicy"],
    ];
    for (i, perms) in custom_perms.iter().enumerate() {
        catalogue
            .insert_custom(Role {
                name: format!("projects/{PROJECT_ID}/roles/custom{i}"),
                title: format!("Custom {i}"),
                description: String::new(),
                included_permissions: perms.iter().map(|p| p.to_string()).collect(),
                stage: RoleStage::Ga,
                deleted: false,
                etag: String::new(),
            })
            .unwrap();
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in 0..GROUPS {
        let members = groups.entry(group(g)).or_default();
        for _ in 0..10 {
            members.push(user(rng.next(USERS)));
        }
        if g % 10 == 0 {
            members.push(sa(rng.next(SERVICE_ACCOUNTS)));
        }
    }
    // Nesting without cycles: g0..g9 contain g50..g59.
    for g in 0..10 {
        groups.get_mut(&group(g)).unwrap().push(group(g + 50));
    }
    let mut policies = BTreeMap::new();
    for r in 0..RESOURCES {
        let mut bindings = Vec::new();
        for _ in 0..BINDINGS_PER_RESOURCE {
            let role = ROLES[rng.next(ROLES.len())].to_owned();
            let mut members = Vec::new();
            for _ in 0..1 + rng.next(3) {
                let m = match rng.next(10) {
                    0..=5 => user(rng.next(USERS)),
                    6 | 7 => sa(rng.next(SERVICE_ACCOUNTS)),
                    _ => group(rng.next(GROUPS)),
                };
                if !members.contains(&m) {
                    members.push(m);
                }
            }
            bindings.push((role, members));
        }
        policies.insert(resource(r), bindings);
    }
    let project_bindings = vec![
        ("roles/owner".to_owned(), vec![user(0)]),
        ("roles/editor".to_owned(), vec![sa(0)]),
        ("roles/viewer".to_owned(), vec![group(1), user(2)]),
        ("roles/run.invoker".to_owned(), vec![group(2)]),
        (format!("projects/{PROJECT_ID}/roles/custom1"), vec![user(3), sa(3)]),
        ("roles/secretmanager.secretAccessor".to_owned(), vec![group(3)]),
    ];
    policies.insert(PROJECT.to_owned(), project_bindings);
    World { policies, groups, catalogue }
}

fn snapshot(world: &World) -> Snapshot {
    let mut s = Snapshot::new(
        world.catalogue.clone(),
        vec![ProjectRef { id: PROJECT_ID.into(), number: "123456789012".into() }],
    );
    for (g, members) in &world.groups {
        for m in members {
            s.add_group_member(g.strip_prefix("group:").unwrap(), m);
        }
    }
    for (name, bindings) in &world.policies {
        let policy = Policy {
            version: 1,
            bindings: bindings
                .iter()
                .map(|(role, members)| Binding { role: role.clone(), members: members.clone(), condition: None })
                .collect(),
            ..Default::default()
        };
        s.set_policy(name, &policy).unwrap();
    }
    s
}

/// Every principal that is a member of `g`, through nested groups.
fn transitive_members(world: &World, g: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![g.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(g) = stack.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        for m in world.groups.get(&g).into_iter().flatten() {
            if m.starts_with("group:") {
                stack.push(m.clone());
            } else {
                out.insert(m.clone());
            }
        }
    }
    out
}

const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, dom, proj, act

[policy_definition]
p = sub, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, r.proj))
"#;

/// The same bindings as casbin RBAC-with-domains rules: `p = role, permission` for every permission of every role
/// used; `g = member, role, domain` per binding member (groups flattened to their transitive members).
fn casbin_enforcer(world: &World, rt: &tokio::runtime::Runtime) -> Enforcer {
    rt.block_on(async {
        let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap();
        let mut e = Enforcer::new(model, MemoryAdapter::default()).await.unwrap();
        let mut roles: BTreeSet<&str> = BTreeSet::new();
        let mut g_rules: BTreeSet<Vec<String>> = BTreeSet::new();
        for (domain, bindings) in &world.policies {
            for (role, members) in bindings {
                roles.insert(role);
                for m in members {
                    if m.starts_with("group:") {
                        for x in transitive_members(world, m) {
                            g_rules.insert(vec![x, role.clone(), domain.clone()]);
                        }
                    } else {
                        g_rules.insert(vec![m.clone(), role.clone(), domain.clone()]);
                    }
                }
            }
        }
        let mut p_rules = Vec::new();
        for role in roles {
            let perms = &world.catalogue.get(role).unwrap().included_permissions;
            for p in perms {
                p_rules.push(vec![role.to_owned(), p.clone()]);
            }
        }
        eprintln!("casbin: {} p rules, {} g rules", p_rules.len(), g_rules.len());
        e.add_policies(p_rules).await.unwrap();
        e.add_grouping_policies(g_rules.into_iter().collect()).await.unwrap();
        e
    })
}

struct Query {
    member: String,
    principal: Principal,
    permission: &'static str,
    resource: String,
}

fn principal_of(member: &str) -> Principal {
    if let Some(e) = member.strip_prefix("user:") {
        Principal::User(e.to_owned())
    } else if let Some(e) = member.strip_prefix("serviceAccount:") {
        Principal::ServiceAccount(e.to_owned())
    } else {
        unreachable!("{member}")
    }
}

/// Half the queries come from a real binding (likely granted), half are random (likely denied).
fn queries(world: &World) -> Vec<Query> {
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    while out.len() < QUERIES {
        let r = rng.next(RESOURCES);
        let resource = resource(r);
        let permission = PERMISSIONS[rng.next(PERMISSIONS.len())];
        let member = if out.len() % 2 == 0 {
            let bindings = &world.policies[&resource];
            let (_, members) = &bindings[rng.next(bindings.len())];
            let m = &members[rng.next(members.len())];
            if m.starts_with("group:") {
                let all: Vec<String> = transitive_members(world, m).into_iter().collect();
                all[rng.next(all.len())].clone()
            } else {
                m.clone()
            }
        } else if rng.next(2) == 0 {
            user(rng.next(USERS))
        } else {
            sa(rng.next(SERVICE_ACCOUNTS))
        };
        out.push(Query { principal: principal_of(&member), member, permission, resource });
    }
    out
}

fn bench(c: &mut Criterion) {
    let world = build_world();
    let snap = snapshot(&world);
    let qs = queries(&world);
    let now = SystemTime::now();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let enforcer = casbin_enforcer(&world, &rt);

    // Fairness: both engines must agree on every query before either is measured.
    let mut granted = 0;
    for q in &qs {
        let ours = decide(&snap, &q.principal, q.permission, &q.resource, now).granted();
        let theirs = enforcer.enforce((q.member.as_str(), q.resource.as_str(), PROJECT, q.permission)).unwrap();
        assert_eq!(ours, theirs, "disagree on {} {} {}", q.member, q.permission, q.resource);
        granted += usize::from(ours);
    }
    let bindings: usize = world.policies.values().map(Vec::len).sum();
    eprintln!("{} queries ({granted} granted), {bindings} bindings, engines agree on all", qs.len());

    let mut group = c.benchmark_group("decide");
    let mut i = 0;
    group.bench_function("iam::decide", |b| {
        b.iter(|| {
            let q = &qs[i % qs.len()];
            i += 1;
            black_box(decide(&snap, &q.principal, q.permission, &q.resource, now).granted())
        })
    });
    let mut i = 0;
    group.bench_function("iam::decide+explanation", |b| {
        b.iter(|| {
            let q = &qs[i % qs.len()];
            i += 1;
            black_box(decide(&snap, &q.principal, q.permission, &q.resource, now).explanation())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("casbin");
    group.sample_size(20);
    let mut i = 0;
    group.bench_function("enforce", |b| {
        b.iter(|| {
            let q = &qs[i % qs.len()];
            i += 1;
            black_box(enforcer.enforce((q.member.as_str(), q.resource.as_str(), PROJECT, q.permission)).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
