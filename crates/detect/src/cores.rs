//! How many cores this process may use: the CPUs it may be scheduled on
//! (affinity, cpusets) capped by its cgroup's CPU quota (a pod's
//! `resources.limits.cpu`), not the host's core count. The detector sizes ONNX
//! Runtime's thread pool from it: more spinning threads than the quota allows are
//! throttled, and a pod on a 64-core node limited to 2 CPUs must not start 64.
//!
//! The parsers are pure and tested with data; [`available`] reads the files.

use std::path::{Path, PathBuf};

/// What bounds the cores, as found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreBudget {
    /// CPUs in the scheduling affinity (cpusets included).
    pub affinity: usize,
    /// The cgroup CPU quota in CPUs (quota / period, the tightest on the path to
    /// the root), if one is set.
    pub quota: Option<f64>,
    /// What the process may use: the affinity, capped by the quota rounded
    /// down, at least 1.
    pub cores: usize,
}

impl CoreBudget {
    fn new(affinity: usize, quota: Option<f64>) -> Self {
        let affinity = affinity.max(1);
        let cores = match quota {
            Some(q) => affinity.min((q.floor() as usize).max(1)),
            None => affinity,
        };
        CoreBudget { affinity, quota, cores }
    }
}

/// The cores this process may use (read once per call: a few small files).
pub fn available() -> CoreBudget {
    let affinity = affinity_cpus();
    let quota = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .zip(std::fs::read_to_string("/proc/self/mountinfo").ok())
        .and_then(|(cgroup, mountinfo)| quota_from(&cgroup, &mountinfo, |p| std::fs::read_to_string(p).ok()));
    CoreBudget::new(affinity, quota)
}

/// CPUs in this process's affinity mask (`Cpus_allowed_list` of
/// `/proc/self/status`, which cpusets narrow too).
fn affinity_cpus() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").and_then(parse_cpu_list)))
        .or_else(|| std::thread::available_parallelism().map(|n| n.get()).ok())
        .unwrap_or(1)
}

/// A CPU list such as `0-3,8,10-11`: how many CPUs it names.
pub fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.trim().parse::<usize>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

/// The tightest CPU quota on this process's cgroup path, from the contents of
/// `/proc/self/cgroup` and `/proc/self/mountinfo`; `read` reads a control file.
/// cgroup v2 (`cpu.max`) is preferred; v1 (`cpu.cfs_quota_us` and
/// `cpu.cfs_period_us`) otherwise.
pub fn quota_from(cgroup: &str, mountinfo: &str, read: impl Fn(&Path) -> Option<String>) -> Option<f64> {
    let mounts = parse_mountinfo(mountinfo);
    let tightest = |dirs: Vec<PathBuf>, quota_of: &dyn Fn(&Path) -> Option<f64>| {
        dirs.iter().filter_map(|d| quota_of(d)).min_by(f64::total_cmp)
    };
    for line in cgroup.lines() {
        // hierarchy-id:controllers:path
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            if let Some(m) = mounts.iter().find(|m| m.v2) {
                let q = tightest(m.dirs_for(path), &|d| read(&d.join("cpu.max")).and_then(|s| parse_cpu_max(&s)));
                if q.is_some() {
                    return q;
                }
            }
        }
    }
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "cpu") {
            if let Some(m) = mounts.iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == "cpu")) {
                let q = tightest(m.dirs_for(path), &|d| {
                    let quota = read(&d.join("cpu.cfs_quota_us"))?;
                    let period = read(&d.join("cpu.cfs_period_us"))?;
                    parse_cfs(&quota, &period)
                });
                if q.is_some() {
                    return q;
                }
            }
        }
    }
    None
}

/// cgroup v2 `cpu.max`: `"$MAX $PERIOD"`, `max` meaning no limit. CPUs, if limited.
pub fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let max = it.next()?;
    let period: f64 = it.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    if max == "max" || period <= 0.0 {
        return None;
    }
    let max: f64 = max.parse().ok()?;
    (max > 0.0).then(|| max / period)
}

/// cgroup v1 `cpu.cfs_quota_us` (-1: no limit) and `cpu.cfs_period_us`. CPUs, if limited.
pub fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// A cgroup file system mount.
#[derive(Debug, Clone, PartialEq)]
struct CgroupMount {
    /// The cgroup path mounted (`/` outside a cgroup namespace's sub-mount).
    root: String,
    mount_point: PathBuf,
    v2: bool,
    /// v1 controllers (`cpu`, `cpuacct`, ...).
    controllers: Vec<String>,
}

impl CgroupMount {
    /// The folders of cgroup `path` and its ancestors under this mount, deepest first.
    fn dirs_for(&self, path: &str) -> Vec<PathBuf> {
        let root = self.root.trim_end_matches('/');
        // Inside a container the mount's root is the container's cgroup; the
        // process's path is then below it (or shown as `/` with a cgroup namespace).
        let rel = path.strip_prefix(root).filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(path);
        let mut dirs = Vec::new();
        let mut rel = rel.trim_end_matches('/').to_owned();
        loop {
            dirs.push(self.mount_point.join(rel.trim_start_matches('/')));
            match rel.rfind('/') {
                Some(i) => rel.truncate(i),
                None => break,
            }
            if rel.is_empty() {
                dirs.push(self.mount_point.clone());
                break;
            }
        }
        dirs.dedup();
        dirs
    }
}

/// The cgroup mounts of `/proc/self/mountinfo`.
fn parse_mountinfo(s: &str) -> Vec<CgroupMount> {
    s.lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (root, mount_point) = (*left.get(3)?, *left.get(4)?);
            let fstype = *right.first()?;
            let unescape = |p: &str| p.replace("\\040", " ");
            match fstype {
                "cgroup2" => Some(CgroupMount {
                    root: unescape(root),
                    mount_point: PathBuf::from(unescape(mount_point)),
                    v2: true,
                    controllers: Vec::new(),
                }),
                "cgroup" => Some(CgroupMount {
                    root: unescape(root),
                    mount_point: PathBuf::from(unescape(mount_point)),
                    v2: false,
                    controllers: right.get(2)?.split(',').map(str::to_owned).collect(),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> = entries.iter().map(|(p, c)| (PathBuf::from(p), c.to_string())).collect();
        move |p: &Path| map.get(p).cloned()
    }

    #[test]
    fn cpu_max_is_parsed() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max("50000"), Some(0.5));
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("x 100000"), None);
    }

    #[test]
    fn cfs_quota_is_parsed() {
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("300000\n", "100000\n"), Some(3.0));
        assert_eq!(parse_cfs("25000", "50000"), Some(0.5));
        assert_eq!(parse_cfs("100000", "0"), None);
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("\t0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("5"), Some(1));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
    }

    #[test]
    fn budget_caps_affinity_by_the_quota_rounded_down() {
        assert_eq!(CoreBudget::new(64, Some(2.0)).cores, 2);
        assert_eq!(CoreBudget::new(64, Some(2.9)).cores, 2);
        assert_eq!(CoreBudget::new(64, Some(0.5)).cores, 1);
        assert_eq!(CoreBudget::new(4, Some(16.0)).cores, 4);
        assert_eq!(CoreBudget::new(8, None).cores, 8);
        assert_eq!(CoreBudget::new(0, None).cores, 1);
    }

    // A Kubernetes pod on cgroup v2 with a cgroup namespace: the process sees its
    // own cgroup as the root.
    #[test]
    fn v2_pod_with_cgroup_namespace() {
        let cgroup = "0::/\n";
        let mountinfo =
            "1310 1305 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n";
        let read = files(&[("/sys/fs/cgroup/cpu.max", "150000 100000\n")]);
        assert_eq!(quota_from(cgroup, mountinfo, read), Some(1.5));
    }

    // systemd on cgroup v2 without a namespace: the limit sits on a parent slice.
    #[test]
    fn v2_limit_on_an_ancestor_is_found() {
        let cgroup = "0::/system.slice/streetscope.service\n";
        let mountinfo = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n";
        let read = files(&[
            ("/sys/fs/cgroup/system.slice/streetscope.service/cpu.max", "max 100000\n"),
            ("/sys/fs/cgroup/system.slice/cpu.max", "400000 100000\n"),
            ("/sys/fs/cgroup/cpu.max", "max 100000\n"),
        ]);
        assert_eq!(quota_from(cgroup, mountinfo, read), Some(4.0));
        // The tightest wins when both a slice and the service are limited.
        let read = files(&[
            ("/sys/fs/cgroup/system.slice/streetscope.service/cpu.max", "300000 100000\n"),
            ("/sys/fs/cgroup/system.slice/cpu.max", "200000 100000\n"),
        ]);
        assert_eq!(quota_from(cgroup, mountinfo, read), Some(2.0));
    }

    #[test]
    fn v2_without_limit_is_none() {
        let cgroup = "0::/user.slice\n";
        let mountinfo = "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let read = files(&[("/sys/fs/cgroup/user.slice/cpu.max", "max 100000\n")]);
        assert_eq!(quota_from(cgroup, mountinfo, read), None);
    }

    // Docker on cgroup v1 (`docker run --cpus 2`): the mount root is the
    // container's cgroup, and /proc/self/cgroup shows the full path.
    #[test]
    fn v1_docker_container() {
        let cgroup = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n";
        let mountinfo = "\
            40 33 0:35 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:17 - cgroup cgroup rw,cpu,cpuacct\n\
            41 33 0:36 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n";
        let read = files(&[
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(quota_from(cgroup, mountinfo, read), Some(2.0));
    }

    // This development VM: cgroup v1, no quota, and an empty v2 hierarchy.
    #[test]
    fn v1_without_quota_is_none() {
        let cgroup = "4:memory:/process_api/5c82\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        let mountinfo = "\
            25 20 0:22 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
            26 20 0:23 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n";
        let read = files(&[
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(quota_from(cgroup, mountinfo, read), None);
    }

    #[test]
    fn v1_nested_cgroup_walks_up() {
        let cgroup = "1:cpu:/kubepods/burstable/pod1/ctr\n";
        let mountinfo = "26 20 0:23 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n";
        let read = files(&[
            ("/sys/fs/cgroup/cpu/kubepods/burstable/pod1/cpu.cfs_quota_us", "50000"),
            ("/sys/fs/cgroup/cpu/kubepods/burstable/pod1/cpu.cfs_period_us", "100000"),
        ]);
        assert_eq!(quota_from(cgroup, mountinfo, read), Some(0.5));
    }

    #[test]
    fn this_process_has_at_least_one_core() {
        let b = available();
        assert!(b.cores >= 1 && b.cores <= b.affinity, "{b:?}");
    }
}
