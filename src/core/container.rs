//! Containers and pods: found through their cgroups, named from the runtimes' own on-disk state
//! (no daemon is asked), for `--container ID|NAME`, `--pod NAMESPACE/NAME` and the cgroup name
//! resolver.
//!
//! Supported runtimes and what is read:
//! - podman: cgroups `libpod-<id>[.scope]`; names in containers/storage's containers.json,
//!   labels and pod membership in libpod's state (bolt_state.db: the containers' JSON configs);
//! - CRI-O: cgroups `crio-<id>.scope` or `<id>` under kubepods; names in containers.json,
//!   pod labels in the container's OCI config annotations (userdata/config.json);
//! - docker: cgroups `docker-<id>.scope` or `/docker/<id>`; /var/lib/docker/containers/<id>/
//!   config.v2.json (name, labels);
//! - containerd: cgroups `cri-containerd-<id>.scope` or `/<namespace>/<id>`; the task bundle's
//!   OCI config (/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/config.json) with the
//!   CRI plugin's sandbox annotations.
//!
//! Kubelet's layout (`kubepods[.slice]/[burstable|besteffort/]pod<UID>/<container>`) gives a
//! container's pod UID even when no state can be read.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::core::cgroup::{self, Cgroup};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// NAMESPACE/NAME, as a POD column shows it.
    pub qualified: String,
}

impl Pod {
    pub fn new(namespace: &str, name: &str) -> Pod {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            qualified: format!("{namespace}/{name}"),
        }
    }
}

impl std::fmt::Display for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.qualified)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// "podman", "docker", "containerd", "cri-o", or "cri" (under kubepods, state unread).
    pub runtime: &'static str,
    /// The full id (64 hex digits).
    pub id: String,
    /// The runtime's name for it, when its state could be read.
    pub name: Option<String>,
    /// Its Kubernetes pod, from the CRI labels `io.kubernetes.pod.namespace`/`.name`.
    pub pod: Option<Pod>,
    /// What groups it with others: the podman pod id or the Kubernetes pod UID.
    pub group: Option<String>,
    pub cgroup: Cgroup,
}

impl Container {
    /// The name, else the short id (12 digits, as `docker ps` shows).
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id[..12])
    }
}

/// What the runtimes' state says about one container id.
#[derive(Default, Debug)]
struct Meta {
    runtime: Option<&'static str>,
    name: Option<String>,
    labels: HashMap<String, String>,
    group: Option<String>,
}

/// Every running container (one per container cgroup), and the warnings of runtimes whose state
/// could not be read (their containers are known by id and cgroup path only).
pub fn list() -> (Vec<Container>, Vec<String>) {
    let mut found: Vec<(Cgroup, &'static str, String)> = Vec::new();
    for cg in cgroup::walk() {
        let Some((runtime, id)) = container_of_path(&cg.path) else {
            continue;
        };
        // The runtime's own subcgroups of a container (e.g. podman's "container") are not
        // containers; a nested cgroup with the same id neither.
        if found.iter().any(|(c, _, i)| *i == id || c.contains(&cg)) {
            continue;
        }
        found.push((cg, runtime, id));
    }
    let mut warnings = Vec::new();
    let containers = describe_found(found, &mut warnings);
    (containers, warnings)
}

/// The container whose cgroup holds the cgroup at `path` (relative to the v2 mount), read from
/// its runtime's state: the outermost ancestor named like a container's cgroup, as [`list`]
/// finds them. None for a cgroup of no container; warnings as [`list`]'s.
pub fn at_path(path: &str) -> (Option<Container>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        let Some((runtime, id)) = container_of_path(&prefix) else {
            continue;
        };
        let Ok(cg) = Cgroup::at(&prefix) else {
            return (None, warnings);
        };
        let found = describe_found(vec![(cg, runtime, id)], &mut warnings).pop();
        return (found, warnings);
    }
    (None, warnings)
}

/// Containers from their cgroups, named and labelled from their runtimes' state.
fn describe_found(
    found: Vec<(Cgroup, &'static str, String)>,
    warnings: &mut Vec<String>,
) -> Vec<Container> {
    let meta = read_state(&found, warnings);
    found
        .into_iter()
        .map(|(cgroup, runtime, id)| {
            let m = meta.get(&id);
            let label = |k: &str| m.and_then(|m| m.labels.get(k)).cloned();
            let pod = match (
                label("io.kubernetes.pod.namespace"),
                label("io.kubernetes.pod.name"),
            ) {
                (Some(namespace), Some(name)) => Some(Pod::new(&namespace, &name)),
                _ => None,
            };
            let group = m
                .and_then(|m| m.group.clone())
                .or_else(|| label("io.kubernetes.pod.uid"))
                .or_else(|| kube_pod_uid(&cgroup.path));
            Container {
                runtime: m.and_then(|m| m.runtime).unwrap_or(runtime),
                name: m
                    .and_then(|m| m.name.clone())
                    .or_else(|| label("io.kubernetes.container.name")),
                id,
                pod,
                group,
                cgroup,
            }
        })
        .collect()
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The runtime and container id a cgroup path names, if it is a container's cgroup.
fn container_of_path(path: &str) -> Option<(&'static str, String)> {
    let last = path.rsplit('/').next()?;
    let base = last.strip_suffix(".scope").unwrap_or(last);
    if base.contains("conmon") {
        return None; // the runtime monitor's cgroup, next to the container's
    }
    for (prefix, runtime) in [
        ("libpod-", "podman"),
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
    ] {
        if let Some(id) = base.strip_prefix(prefix) {
            return is_id(id).then(|| (runtime, id.to_string()));
        }
    }
    // A podman pod's cgroup (cgroupfs driver) is its bare id, holding its containers' cgroups.
    if !is_id(base) || path.contains("libpod") {
        return None;
    }
    let runtime = if path.contains("/docker/") {
        "docker"
    } else if path.contains("kubepods") {
        "cri"
    } else {
        "containerd"
    };
    Some((runtime, base.to_string()))
}

/// The pod UID in a kubelet cgroup path: `pod<UID>` (cgroupfs driver) or
/// `kubepods-<qos>-pod<UID with _ for ->.slice` (systemd driver).
fn kube_pod_uid(path: &str) -> Option<String> {
    if !path.contains("kubepods") {
        return None;
    }
    path.split('/').find_map(|c| {
        let c = c.strip_suffix(".slice").unwrap_or(c);
        let uid = c
            .rsplit_once("-pod")
            .map(|(_, u)| u)
            .or(c.strip_prefix("pod"))?;
        (uid.len() >= 32
            && uid
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_'))
        .then(|| uid.replace('_', "-"))
    })
}

const STORAGE: &str = "/var/lib/containers/storage";
const STORAGE_RUN: &str = "/run/containers/storage";
const DOCKER: &str = "/var/lib/docker/containers";
const CONTAINERD_TASKS: &str = "/run/containerd/io.containerd.runtime.v2.task";

/// Reads each runtime's state for the ids found; one warning per runtime whose containers were
/// found but whose state could not be read.
fn read_state(
    found: &[(Cgroup, &'static str, String)],
    warnings: &mut Vec<String>,
) -> HashMap<String, Meta> {
    let mut meta: HashMap<String, Meta> = HashMap::new();
    let runtimes: BTreeSet<&str> = found.iter().map(|(_, r, _)| *r).collect();
    let mut unreadable = |runtime: &str, what: &str, e: String| {
        warnings.push(format!(
            "{runtime}: cannot read its state ({what}: {e}); its containers are known by id and \
             cgroup path only"
        ))
    };
    if runtimes.contains("podman") || runtimes.contains("cri-o") || runtimes.contains("cri") {
        match storage_names() {
            Ok(names) => {
                for (id, name) in names {
                    meta.entry(id).or_default().name = Some(name);
                }
            }
            Err(e) if runtimes.contains("podman") || runtimes.contains("cri-o") => {
                unreadable("podman/cri-o", "containers.json", e)
            }
            Err(_) => {}
        }
    }
    if runtimes.contains("podman") {
        let db = format!("{STORAGE}/libpod/bolt_state.db");
        match std::fs::read(&db) {
            Ok(bytes) => {
                for cfg in libpod_configs(&bytes) {
                    let Some(id) = cfg.get("id").and_then(Value::as_str) else {
                        continue;
                    };
                    let m = meta.entry(id.to_string()).or_default();
                    m.runtime = Some("podman");
                    if let Some(n) = cfg.get("name").and_then(Value::as_str) {
                        m.name = Some(n.to_string());
                    }
                    m.labels.extend(string_map(cfg.get("labels")));
                    m.group = cfg
                        .get("pod")
                        .and_then(Value::as_str)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string);
                }
            }
            Err(e) => unreadable("podman", &db, e.to_string()),
        }
    }
    for (_, runtime, id) in found {
        match *runtime {
            "docker" => {
                let path = format!("{DOCKER}/{id}/config.v2.json");
                match read_json(&path) {
                    Ok(v) => {
                        let m = meta.entry(id.clone()).or_default();
                        m.name = v
                            .get("Name")
                            .and_then(Value::as_str)
                            .map(|n| n.trim_start_matches('/').to_string());
                        m.labels = string_map(v.pointer("/Config/Labels"));
                    }
                    Err(e) => unreadable("docker", &path, e),
                }
            }
            "cri-o" | "cri" | "containerd" => {
                if let Some((rt, ann)) = oci_annotations(id) {
                    let m = meta.entry(id.clone()).or_default();
                    m.runtime = Some(rt);
                    // CRI-O keeps the CRI labels in annotations of the same keys; containerd's
                    // CRI plugin names the sandbox instead.
                    for (from, to) in [
                        ("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"),
                        (
                            "io.kubernetes.cri.sandbox-namespace",
                            "io.kubernetes.pod.namespace",
                        ),
                        ("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"),
                        (
                            "io.kubernetes.cri.container-name",
                            "io.kubernetes.container.name",
                        ),
                        ("io.kubernetes.pod.name", "io.kubernetes.pod.name"),
                        ("io.kubernetes.pod.namespace", "io.kubernetes.pod.namespace"),
                        ("io.kubernetes.pod.uid", "io.kubernetes.pod.uid"),
                        (
                            "io.kubernetes.container.name",
                            "io.kubernetes.container.name",
                        ),
                    ] {
                        if let Some(v) = ann.get(from) {
                            m.labels.insert(to.to_string(), v.clone());
                        }
                    }
                } else if *runtime != "cri" {
                    unreadable(runtime, "the OCI bundle's config.json", "not found".into());
                }
            }
            _ => {}
        }
    }
    warnings.sort();
    warnings.dedup_by(|a, b| a.split(':').next() == b.split(':').next());
    meta
}

fn read_json(path: &str) -> Result<Value, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

fn string_map(v: Option<&Value>) -> HashMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// id -> first name, from containers/storage's containers.json (podman and CRI-O share it).
fn storage_names() -> Result<HashMap<String, String>, String> {
    let mut names = HashMap::new();
    let mut any = Err("no containers.json".to_string());
    for root in [STORAGE, STORAGE_RUN] {
        let Ok(dirs) = std::fs::read_dir(root) else {
            continue;
        };
        for d in dirs.flatten() {
            if !d.file_name().to_string_lossy().ends_with("-containers") {
                continue;
            }
            let path = d.path().join("containers.json");
            let Ok(v) = read_json(&path.to_string_lossy()) else {
                continue;
            };
            any = Ok(());
            for c in v.as_array().into_iter().flatten() {
                if let (Some(id), Some(name)) = (
                    c.get("id").and_then(Value::as_str),
                    c.pointer("/names/0").and_then(Value::as_str),
                ) {
                    names.insert(id.to_string(), name.to_string());
                }
            }
        }
    }
    any.map(|_| names)
}

/// The JSON container configs stored in libpod's bolt database: each is a value starting with
/// `{"spec":`, whole on contiguous pages. Freed pages may hold older copies of a config; a
/// container's config does not change, and only ids with a live cgroup are asked for.
fn libpod_configs(db: &[u8]) -> Vec<Value> {
    const START: &[u8] = b"{\"spec\":";
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = db[i..].windows(START.len()).position(|w| w == START) {
        let at = i + off;
        let mut stream = serde_json::Deserializer::from_slice(&db[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                i = at + stream.byte_offset();
                out.push(v);
            }
            _ => i = at + START.len(),
        }
    }
    out
}

/// The annotations of a container's OCI config (CRI-O's or containerd's bundle), and which
/// runtime keeps it.
fn oci_annotations(id: &str) -> Option<(&'static str, HashMap<String, String>)> {
    let mut candidates = vec![
        (
            "cri-o",
            format!("{STORAGE_RUN}/overlay-containers/{id}/userdata/config.json"),
        ),
        (
            "cri-o",
            format!("{STORAGE}/overlay-containers/{id}/userdata/config.json"),
        ),
    ];
    if let Ok(nss) = std::fs::read_dir(CONTAINERD_TASKS) {
        for ns in nss.flatten() {
            candidates.push((
                "containerd",
                format!("{}/{id}/config.json", ns.path().display()),
            ));
        }
    }
    candidates.into_iter().find_map(|(rt, path)| {
        let v = read_json(&path).ok()?;
        Some((rt, string_map(v.get("annotations"))))
    })
}

fn warn_once(warnings: &[String]) {
    for w in warnings {
        eprintln!("netbpf: warning: {w}");
    }
}

/// `--container ID|NAME`: a name, a full id or a unique id prefix (as `docker ps` takes them).
pub fn resolve_container(arg: &str) -> Result<Container, String> {
    cgroup::v2_mount()?;
    let (all, warnings) = list();
    warn_once(&warnings);
    pick_container(arg, all)
}

fn pick_container(arg: &str, all: Vec<Container>) -> Result<Container, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err("an empty container name".into());
    }
    if let Some(c) = all
        .iter()
        .find(|c| c.name.as_deref() == Some(arg) || c.id == arg)
    {
        return Ok(c.clone());
    }
    let lower = arg.to_ascii_lowercase();
    let by_prefix: Vec<&Container> = all.iter().filter(|c| c.id.starts_with(&lower)).collect();
    match by_prefix.as_slice() {
        [one] => return Ok((*one).clone()),
        [] => {}
        many => {
            return Err(format!(
                "container id prefix '{arg}' is ambiguous: {}",
                many.iter()
                    .map(|c| describe(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
    let close = close_matches(arg, all.iter().map(describe_pair));
    Err(format!(
        "no running container '{arg}' ({} found{}){}",
        all.len(),
        runtimes_note(&all),
        if close.is_empty() {
            String::new()
        } else {
            format!("; close matches: {}", close.join(", "))
        }
    ))
}

/// `--pod NAMESPACE/NAME`: the pod's cgroup (kubelet's `pod<UID>`, a podman pod's), found as
/// the closest cgroup holding all its containers and no container of anything else.
pub fn resolve_pod(arg: &str) -> Result<(Pod, Cgroup), String> {
    cgroup::v2_mount()?;
    let (all, warnings) = list();
    warn_once(&warnings);
    let (pod, path) = pick_pod(arg, &all)?;
    Ok((pod, Cgroup::at(&path)?))
}

/// The pod named `arg` and the path of its cgroup.
fn pick_pod(arg: &str, all: &[Container]) -> Result<(Pod, String), String> {
    let (namespace, name) = arg
        .trim()
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("'{arg}' is not NAMESPACE/NAME"))?;
    let want = Pod::new(namespace, name);
    let members: Vec<&Container> = all
        .iter()
        .filter(|c| c.pod.as_ref() == Some(&want))
        .collect();
    if members.is_empty() {
        let pods: BTreeSet<String> = all
            .iter()
            .filter_map(|c| c.pod.as_ref().map(|p| p.to_string()))
            .collect();
        let close = close_matches(arg, pods.iter().map(|p| (p.clone(), p.clone())));
        return Err(format!(
            "no running pod '{want}' (no container carries the labels io.kubernetes.pod.namespace={} \
             and io.kubernetes.pod.name={}; {} pods found){}",
            want.namespace,
            want.name,
            pods.len(),
            if close.is_empty() {
                String::new()
            } else {
                format!("; close matches: {}", close.join(", "))
            }
        ));
    }
    // The closest common ancestor of the members' cgroups.
    let mut common = members[0].cgroup.path.clone();
    while !members
        .iter()
        .all(|c| path_contains(&common, &c.cgroup.path))
    {
        common = parent_path(&common)
            .ok_or_else(|| format!("pod {want}: its containers' cgroups share no ancestor"))?;
    }
    // A lone member: its pod's cgroup is the parent when that holds only the pod's containers.
    if members.len() == 1 {
        if let Some(up) = parent_path(&common).filter(|u| u != "/") {
            if only_pod(&up, &members, all) {
                common = up;
            }
        }
    }
    if common == "/" || !only_pod(&common, &members, all) {
        return Err(format!(
            "pod {want}: its containers have no cgroup of their own (their closest common cgroup \
             {common} holds other containers too); filter one with --container"
        ));
    }
    Ok((want, common))
}

fn parent_path(p: &str) -> Option<String> {
    match p.rsplit_once('/')? {
        ("", "") => None,
        ("", _) => Some("/".into()),
        (up, _) => Some(up.into()),
    }
}

fn path_contains(ancestor: &str, p: &str) -> bool {
    ancestor == "/" || p == ancestor || p.starts_with(&format!("{ancestor}/"))
}

/// Whether every container below `path` is a member or grouped with one (a pod's infra/pause).
fn only_pod(path: &str, members: &[&Container], all: &[Container]) -> bool {
    all.iter()
        .filter(|c| path_contains(path, &c.cgroup.path))
        .all(|c| {
            members.iter().any(|m| {
                m.id == c.id || (m.group.is_some() && m.group == c.group && c.pod.is_none())
            })
        })
}

fn describe(c: &Container) -> String {
    format!("{} ({} {})", c.display_name(), c.runtime, &c.id[..12])
}

fn describe_pair(c: &Container) -> (String, String) {
    (c.name.clone().unwrap_or_else(|| c.id.clone()), describe(c))
}

fn runtimes_note(all: &[Container]) -> String {
    let r: BTreeSet<&str> = all.iter().map(|c| c.runtime).collect();
    if r.is_empty() {
        String::new()
    } else {
        format!(": {}", r.into_iter().collect::<Vec<_>>().join(", "))
    }
}

/// Candidates whose key is within a small edit distance of `arg`, contains it, or is contained
/// in it; at most 5, closest first.
fn close_matches(arg: &str, candidates: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut scored: Vec<(usize, String)> = candidates
        .filter_map(|(key, shown)| {
            let d = edit_distance(arg, &key);
            let near = d <= 1.max(arg.len() / 4) || key.contains(arg) || arg.contains(&key);
            near.then_some((d, shown))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, s)| s).collect()
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1f75436fed778c628325829454e036886b09da2bdb226ad298a642bc5f4e8dc6";

    #[test]
    fn container_cgroup_paths() {
        let cases = [
            (format!("/libpod_parent/libpod-{ID}"), "podman"),
            (format!("/machine.slice/libpod-{ID}.scope"), "podman"),
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/docker/{ID}"), "docker"),
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12345678_1234_1234_1234_123456789012.slice/cri-containerd-{ID}.scope"), "containerd"),
            (format!("/kubepods/besteffort/pod12345678-1234-1234-1234-123456789012/{ID}"), "cri"),
            (format!("/kubepods.slice/crio-{ID}.scope"), "cri-o"),
            (format!("/k8s.io/{ID}"), "containerd"),
        ];
        for (path, runtime) in cases {
            assert_eq!(
                container_of_path(&path),
                Some((runtime, ID.to_string())),
                "{path}"
            );
        }
        assert_eq!(
            container_of_path(&format!("/libpod_parent/libpod-conmon-{ID}")),
            None
        );
        assert_eq!(container_of_path("/system.slice/ssh.service"), None);
        assert_eq!(container_of_path("/libpod_parent/libpod-abc"), None);
        assert_eq!(container_of_path(&format!("/libpod_parent/{ID}")), None);
    }

    #[test]
    fn kubelet_pod_uids() {
        let uid = "12345678-1234-1234-1234-123456789012";
        assert_eq!(
            kube_pod_uid(&format!("/kubepods/besteffort/pod{uid}/{ID}")).as_deref(),
            Some(uid)
        );
        assert_eq!(
            kube_pod_uid(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/x",
                uid.replace('-', "_")
            ))
            .as_deref(),
            Some(uid)
        );
        assert_eq!(kube_pod_uid("/libpod_parent/podx"), None);
    }

    fn ctr(
        id: char,
        name: &str,
        path: &str,
        pod: Option<(&str, &str)>,
        group: Option<&str>,
    ) -> Container {
        Container {
            runtime: "podman",
            id: std::iter::repeat_n(id, 64).collect(),
            name: Some(name.into()),
            pod: pod.map(|(ns, n)| Pod::new(ns, n)),
            group: group.map(str::to_string),
            cgroup: Cgroup {
                id: path.len() as u64,
                level: path.matches('/').count() as u32,
                path: path.into(),
            },
        }
    }

    #[test]
    fn names_ids_prefixes_and_close_matches() {
        let all = vec![
            ctr('a', "web", "/p/libpod-a", None, None),
            ctr('b', "db", "/p/libpod-b", None, None),
            ctr('c', "webcache", "/p/libpod-c", None, None),
        ];
        assert_eq!(
            pick_container("web", all.clone()).unwrap().name.unwrap(),
            "web"
        );
        assert_eq!(
            pick_container("bbb", all.clone()).unwrap().name.unwrap(),
            "db"
        );
        let err = pick_container("wbe", all.clone()).unwrap_err();
        assert!(
            err.contains("no running container 'wbe'") && err.contains("close matches: web ("),
            "{err}"
        );
        assert!(!err.contains("db ("), "{err}");
        let mut dup = all.clone();
        dup[1].id = format!("a{}", &dup[1].id[1..]);
        assert!(pick_container("a", dup).unwrap_err().contains("ambiguous"));
    }

    #[test]
    fn pods_by_labels_and_common_cgroup() {
        let web = Some(("default", "web"));
        let all = vec![
            ctr('a', "w1", "/p/podA/libpod-a", web, Some("A")),
            ctr('b', "w2", "/p/podA/libpod-b", web, Some("A")),
            ctr('i', "infra", "/p/podA/libpod-i", None, Some("A")),
            ctr('c', "other", "/p/libpod-c", Some(("default", "db")), None),
        ];
        let (pod, cg) = pick_pod("default/web", &all).unwrap();
        assert_eq!(
            (pod.to_string(), cg.as_str()),
            ("default/web".into(), "/p/podA")
        );
        let err = pick_pod("default/wbe", &all).unwrap_err();
        assert!(err.contains("close matches: default/web"), "{err}");
        assert!(pick_pod("web", &all)
            .unwrap_err()
            .contains("NAMESPACE/NAME"));
        // Labelled containers without a cgroup of their own: refused, not widened.
        let loose = vec![
            ctr('a', "w1", "/p/libpod-a", web, None),
            ctr('b', "w2", "/p/libpod-b", web, None),
            ctr('c', "other", "/p/libpod-c", None, None),
        ];
        assert!(pick_pod("default/web", &loose)
            .unwrap_err()
            .contains("no cgroup of their own"));
    }
}
