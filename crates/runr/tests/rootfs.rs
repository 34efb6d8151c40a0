//! The container's filesystem: mounts with their options, devices, masked and read-only
//! paths, a read-only root, --no-pivot, and mount targets that try to leave the rootfs.

mod common;
use common::*;
use serde_json::json;

#[test]
fn default_mounts_devices_and_links() {
    let env = Env::new("mounts");
    let out = env.sh("cut -d' ' -f2,3 /proc/mounts; ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; for l in ptmx fd stdin; do readlink /dev/$l; done");
    for m in [
        "/proc proc",
        "/dev tmpfs",
        "/dev/pts devpts",
        "/dev/shm tmpfs",
        "/dev/mqueue mqueue",
        "/sys sysfs",
        "/sys/fs/cgroup tmpfs",
        "/sys/fs/cgroup/memory cgroup",
    ] {
        assert!(out.contains(m), "missing {m}:\n{out}");
    }
    for (dev, nums) in [
        ("null", "1,   3"),
        ("zero", "1,   5"),
        ("full", "1,   7"),
        ("random", "1,   8"),
        ("urandom", "1,   9"),
        ("tty", "5,   0"),
    ] {
        let line = out
            .lines()
            .find(|l| l.ends_with(&format!("/dev/{dev}")))
            .unwrap_or_else(|| panic!("no /dev/{dev}: {out}"));
        assert!(
            line.starts_with("crw-rw-rw-") && line.contains(nums),
            "{line}"
        );
    }
    assert!(
        out.contains("pts/ptmx\n/proc/self/fd\n/proc/self/fd/0"),
        "{out}"
    );
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    let env = Env::new("ro");
    env.edit(|c| {
        c["linux"]["maskedPaths"] = json!([
            "/proc/kcore",
            "/proc/acpi",
            "/etc/secret",
            "/does/not/exist"
        ]);
        c["linux"]["readonlyPaths"] = json!(["/proc/sys", "/var/ro"]);
    });
    std::fs::create_dir_all(env.rootfs.join("var/ro")).unwrap();
    std::fs::write(env.rootfs.join("etc/secret"), "s3cret").unwrap();
    let out = env.sh(
        "touch /x 2>/dev/null && echo root-writable || echo root-ro; \
         cat /etc/secret | wc -c; ls /proc/acpi 2>/dev/null | wc -l; cat /proc/kcore 2>/dev/null | wc -c; \
         echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo sys-writable || echo sys-ro; \
         touch /dev/shm/ok && echo shm-writable",
    );
    assert_eq!(out, "root-ro\n0\n0\n0\nsys-ro\nshm-writable\n");
}

#[test]
fn bind_mounts_with_options_and_tmpfs() {
    let env = Env::new("bind");
    let host = env.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "host data").unwrap();
    let file = env.dir.path().join("hostfile");
    std::fs::write(&file, "one file").unwrap();
    env.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "ro", "nosuid"]}));
        mounts.push(json!({"destination": "/etc/one", "type": "none", "source": file, "options": ["bind"]}));
        mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777", "noexec"]}));
    });
    let out = env.sh("cat /data/f; echo; touch /data/x 2>/dev/null || echo data-ro; cat /etc/one; echo; grep -E ' /(data|scratch) ' /proc/mounts | cut -d' ' -f2,4; stat -c %a /scratch");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("host data"));
    assert_eq!(lines.next(), Some("data-ro"));
    assert_eq!(lines.next(), Some("one file"));
    let data = lines.next().unwrap();
    assert!(data.starts_with("/data ro,nosuid"), "{data}");
    let scratch = lines.next().unwrap();
    assert!(
        scratch.starts_with("/scratch rw,")
            && scratch.contains("noexec")
            && scratch.contains("size=1024k"),
        "{scratch}"
    );
    assert_eq!(lines.next(), Some("1777"));
    assert!(!host.join("x").exists());
}

#[test]
fn recursive_readonly_bind() {
    let env = Env::new("rro");
    let host = env.dir.path().join("tree");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    env.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/tree", "type": "bind", "source": host, "options": ["rbind", "rro"]}));
        mounts.push(json!({"destination": "/tree/sub", "type": "tmpfs", "source": "tmpfs", "options": []}));
    });
    // The tmpfs is mounted after the rro bind, so it stays writable; the bind itself is not.
    let out = env.sh("touch /tree/x 2>/dev/null || echo tree-ro; touch /tree/sub/y && echo sub-rw");
    assert_eq!(out, "tree-ro\nsub-rw\n");
}

#[test]
fn symlink_in_the_rootfs_cannot_lead_a_mount_out() {
    let env = Env::new("escape");
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // /evil in the image points at a host path; /up climbs out with "..".
    std::os::unix::fs::symlink(&outside, env.rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", env.rootfs.join("up")).unwrap();
    env.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/evil/m", "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(json!({"destination": "/up/tmp/m2", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = env.sh("grep -c ' tmpfs ' /proc/mounts >/dev/null; echo ok");
    assert_eq!(out, "ok\n");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "a mount target was created outside the rootfs"
    );
    let inside = env
        .rootfs
        .join(outside.strip_prefix("/").unwrap())
        .join("m");
    assert!(
        inside.is_dir(),
        "the target should have been made inside the rootfs"
    );
    assert!(env.rootfs.join("tmp/m2").is_dir());
}

/// CVE-2019-16884 class: procfs or sysfs mounted where the image put a symlink would land
/// wherever the image chose (and an LSM relabelling /proc/self/attr could be fooled).
#[test]
fn proc_or_sys_over_a_symlink_is_refused() {
    for dir in ["proc", "sys"] {
        let env = Env::new("procsym");
        std::fs::remove_dir(env.rootfs.join(dir)).unwrap();
        std::fs::create_dir(env.rootfs.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", env.rootfs.join(dir)).unwrap();
        let r = env.run(&["true"]);
        assert_eq!(r.code, 1, "{dir}");
        assert!(r.stderr.contains("symlink"), "{dir}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("/{dir} must be mounted on ordinary directory")),
            "{dir}: {}",
            r.stderr
        );
        assert!(
            std::fs::read_dir(env.rootfs.join("elsewhere"))
                .unwrap()
                .next()
                .is_none(),
            "{dir}"
        );
    }
}

#[test]
fn no_pivot_uses_move_and_chroot() {
    let env = Env::new("nopivot");
    env.args(&[
        "sh",
        "-c",
        "cat /proc/self/mountinfo | head -1 | cut -d' ' -f5; ls /",
    ]);
    let id = env.id("c");
    let r = env.runr(&[
        "run",
        "--no-pivot",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("bin\n"), "{}", r.stdout);
}

#[test]
fn config_devices_are_created_and_allowed() {
    let env = Env::new("devs");
    env.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1000}]);
    });
    // Owned by 1000 with mode 600: root without CAP_DAC_OVERRIDE may not write it.
    let out = env.sh(
        "stat -c '%F %t,%T %a %u %g' /dev/mynull; echo hi 2>/dev/null > /dev/mynull || echo denied",
    );
    assert_eq!(out, "character special file 1,3 600 1000 1000\ndenied\n");
}

#[test]
fn device_cgroup_denies_what_is_not_allowed() {
    let env = Env::new("devcg");
    // runr spec denies all devices; /dev/sda-like block device 8:0 is not allowed.
    env.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/blk", "type": "b", "major": 7, "minor": 200}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    });
    let out = env.sh("mknod /dev/other c 1 7 2>/dev/null; head -c1 /dev/other >/dev/null 2>&1 && echo full-open || echo full-denied; head -c1 /dev/zero | wc -c");
    assert_eq!(out, "full-denied\n1\n");
}

#[test]
fn rootfs_propagation() {
    let env = Env::new("prop");
    // The root mount's optional fields tell its propagation: shared:N, master:N, or none.
    let root_line = "awk '$5 == \"/\" {print $7}' /proc/self/mountinfo";
    env.edit(|c| c["linux"]["rootfsPropagation"] = json!("private"));
    assert_eq!(env.sh(root_line).trim(), "-");
    env.edit(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    assert!(env.sh(root_line).starts_with("shared:"));
    // Unbindable is applied after the rootfs is bound onto itself, which it would forbid.
    for p in ["unbindable", "runbindable"] {
        env.edit(|c| c["linux"]["rootfsPropagation"] = json!(p));
        assert_eq!(env.sh(root_line).trim(), "unbindable", "{p}");
    }
}

/// A tmpfs the test mounts on the host (under its own temporary directory), unmounted when
/// dropped.
struct TestMount(std::path::PathBuf);

impl TestMount {
    fn tmpfs(at: &std::path::Path) -> TestMount {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
        TestMount(at.into())
    }

    /// `at` bound onto itself and made shared, as most mounts are on a systemd host: what
    /// is mounted under it later propagates to its copies.
    fn shared_bind(at: &std::path::Path) -> TestMount {
        use nix::mount::{mount, MsFlags};
        mount(Some(at), at, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let m = TestMount(at.into());
        mount(
            None::<&str>,
            at,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        m
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Recursive attributes hold in every submount of an rbind: with rnosymfollow a symlink is
/// not followed in the bind nor in the tmpfs mounted inside its source, every time. And a
/// mount the host makes under the source later cannot arrive without them.
#[test]
fn recursive_attributes_reach_every_submount() {
    let env = Env::new("rnosym");
    let src = env.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let shared = TestMount::shared_bind(&src);
    std::fs::write(src.join("file"), "top\n").unwrap();
    std::os::unix::fs::symlink("file", src.join("link")).unwrap();
    let sub = TestMount::tmpfs(&src.join("sub"));
    std::fs::write(src.join("sub/file"), "sub\n").unwrap();
    std::os::unix::fs::symlink("file", src.join("sub/link")).unwrap();
    env.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": src,
            "options": ["rbind", "rnosymfollow", "rro"]
        }));
    });
    let script = "for d in /data /data/sub; do cat $d/file; \
        cat $d/link >/dev/null 2>&1 && echo $d-followed || echo $d-refused; \
        touch $d/new 2>/dev/null && echo $d-rw || echo $d-ro; done";
    for _ in 0..5 {
        assert_eq!(
            env.sh(script),
            "top\n/data-refused\n/data-ro\nsub\n/data/sub-refused\n/data/sub-ro\n"
        );
    }

    // A host mount made under the source after the container's setup stays out of it.
    env.args(&["sleep", "1000"]);
    let id = env.id("late");
    assert_eq!(env.create(&id).code, 0);
    let late = TestMount::tmpfs(&src.join("late"));
    std::fs::write(src.join("late/file"), "late\n").unwrap();
    let r = env.runr(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls /data/late; grep -c ' /data/late ' /proc/self/mountinfo",
    ]);
    assert_eq!(r.stdout, "0\n", "{}", r.stderr);
    assert_eq!(env.runr(&["delete", "--force", &id]).code, 0);
    drop(late);
    drop(sub);
    drop(shared);
}
