//! A container's cgroup stats in the types containerd reads them as (Stats): the cgroup v1
//! `io.containerd.cgroups.v1.Metrics` or the v2 `io.containerd.cgroups.v2.Metrics`, by the
//! host's hierarchy. The type URL carries no `type.googleapis.com/` prefix: containerd 1.6
//! looks message types up by their bare name.

use cgroups::Stats;
use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use std::collections::BTreeMap;

/// `stats` as containerd's Metrics of the host's cgroup version, packed.
pub fn to_any(stats: &Stats) -> Result<Any, containerd_shim_protos::protobuf::Error> {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        pack(&v2_metrics(stats), "io.containerd.cgroups.v2")
    } else {
        pack(&v1_metrics(stats), "io.containerd.cgroups.v1")
    }
}

/// Packed as containerd reads it: the type URL is the message's bare full name (named
/// without the reflection descriptors, as in `events::pack`).
fn pack<M: Message>(m: &M, package: &str) -> Result<Any, containerd_shim_protos::protobuf::Error> {
    Ok(Any {
        type_url: format!("{package}.{}", M::NAME),
        value: m.write_to_bytes()?,
        ..Default::default()
    })
}

fn entry(e: &cgroups::stats::MemoryEntry) -> v1::MemoryEntry {
    v1::MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    }
}

/// cgroup v1: memory.stat's keys are the fields' names.
pub fn v1_metrics(s: &Stats) -> v1::Metrics {
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let memory = v1::MemoryStat {
        cache: raw("cache"),
        rss: raw("rss"),
        rss_huge: raw("rss_huge"),
        mapped_file: raw("mapped_file"),
        dirty: raw("dirty"),
        writeback: raw("writeback"),
        pg_pg_in: raw("pgpgin"),
        pg_pg_out: raw("pgpgout"),
        pg_fault: raw("pgfault"),
        pg_maj_fault: raw("pgmajfault"),
        inactive_anon: raw("inactive_anon"),
        active_anon: raw("active_anon"),
        inactive_file: raw("inactive_file"),
        active_file: raw("active_file"),
        unevictable: raw("unevictable"),
        hierarchical_memory_limit: raw("hierarchical_memory_limit"),
        hierarchical_swap_limit: raw("hierarchical_memsw_limit"),
        total_cache: raw("total_cache"),
        total_rss: raw("total_rss"),
        total_rss_huge: raw("total_rss_huge"),
        total_mapped_file: raw("total_mapped_file"),
        total_dirty: raw("total_dirty"),
        total_writeback: raw("total_writeback"),
        total_pg_pg_in: raw("total_pgpgin"),
        total_pg_pg_out: raw("total_pgpgout"),
        total_pg_fault: raw("total_pgfault"),
        total_pg_maj_fault: raw("total_pgmajfault"),
        total_inactive_anon: raw("total_inactive_anon"),
        total_active_anon: raw("total_active_anon"),
        total_inactive_file: raw("total_inactive_file"),
        total_active_file: raw("total_active_file"),
        total_unevictable: raw("total_unevictable"),
        usage: Some(entry(&s.memory.usage)).into(),
        swap: Some(entry(&s.memory.swap)).into(),
        kernel: Some(entry(&s.memory.kernel)).into(),
        kernel_tcp: Some(entry(&s.memory.kernel_tcp)).into(),
        ..Default::default()
    };
    let cpu = v1::CPUStat {
        usage: Some(v1::CPUUsage {
            total: s.cpu.usage.total,
            kernel: s.cpu.usage.kernel,
            user: s.cpu.usage.user,
            per_cpu: s.cpu.usage.percpu.clone(),
            ..Default::default()
        })
        .into(),
        throttling: Some(v1::Throttle {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let blkio = v1::BlkIOStat {
        io_service_bytes_recursive: blkio_entries(&s.blkio.io_service_bytes_recursive),
        io_serviced_recursive: blkio_entries(&s.blkio.io_serviced_recursive),
        ..Default::default()
    };
    v1::Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: Some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(cpu).into(),
        memory: Some(memory).into(),
        blkio: Some(blkio).into(),
        ..Default::default()
    }
}

fn blkio_entries(entries: &[cgroups::stats::BlkioEntry]) -> Vec<v1::BlkIOEntry> {
    entries
        .iter()
        .map(|e| v1::BlkIOEntry {
            op: e.op.clone(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

/// cgroup v2: memory.stat's keys are the fields' names; CPU times in microseconds.
pub fn v2_metrics(s: &Stats) -> v2::Metrics {
    let raw: &BTreeMap<String, u64> = &s.memory.raw;
    let r = |k: &str| raw.get(k).copied().unwrap_or(0);
    let memory = v2::MemoryStat {
        anon: r("anon"),
        file: r("file"),
        kernel_stack: r("kernel_stack"),
        slab: r("slab"),
        sock: r("sock"),
        shmem: r("shmem"),
        file_mapped: r("file_mapped"),
        file_dirty: r("file_dirty"),
        file_writeback: r("file_writeback"),
        anon_thp: r("anon_thp"),
        inactive_anon: r("inactive_anon"),
        active_anon: r("active_anon"),
        inactive_file: r("inactive_file"),
        active_file: r("active_file"),
        unevictable: r("unevictable"),
        slab_reclaimable: r("slab_reclaimable"),
        slab_unreclaimable: r("slab_unreclaimable"),
        pgfault: r("pgfault"),
        pgmajfault: r("pgmajfault"),
        workingset_refault: r("workingset_refault"),
        workingset_activate: r("workingset_activate"),
        workingset_nodereclaim: r("workingset_nodereclaim"),
        pgrefill: r("pgrefill"),
        pgscan: r("pgscan"),
        pgsteal: r("pgsteal"),
        pgactivate: r("pgactivate"),
        pgdeactivate: r("pgdeactivate"),
        pglazyfree: r("pglazyfree"),
        pglazyfreed: r("pglazyfreed"),
        thp_fault_alloc: r("thp_fault_alloc"),
        thp_collapse_alloc: r("thp_collapse_alloc"),
        usage: s.memory.usage.usage,
        usage_limit: s.memory.usage.limit,
        swap_usage: s.memory.swap.usage,
        swap_limit: s.memory.swap.limit,
        ..Default::default()
    };
    let cpu = v2::CPUStat {
        usage_usec: s.cpu.usage.total / 1000,
        user_usec: s.cpu.usage.user / 1000,
        system_usec: s.cpu.usage.kernel / 1000,
        nr_periods: s.cpu.throttling.periods,
        nr_throttled: s.cpu.throttling.throttled_periods,
        throttled_usec: s.cpu.throttling.throttled_time / 1000,
        ..Default::default()
    };
    v2::Metrics {
        pids: Some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(cpu).into(),
        memory: Some(memory).into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::Message;

    #[test]
    fn v1_metrics_carry_memory_and_cpu() {
        let mut s = Stats::default();
        s.memory.usage.usage = 4096;
        s.memory.usage.limit = 1 << 26;
        s.memory.raw.insert("total_inactive_file".into(), 100);
        s.cpu.usage.total = 5_000_000;
        s.pids.current = 3;
        let m = v1_metrics(&s);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 1 << 26);
        assert_eq!(m.memory.total_inactive_file, 100);
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.pids.current, 3);
        let any = pack(&m, "io.containerd.cgroups.v1").unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let back = v1::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn the_type_urls_are_the_messages_full_names() {
        use containerd_shim_protos::protobuf::MessageFull;
        assert_eq!(
            v1::Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v1.Metrics"
        );
        assert_eq!(
            v2::Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v2.Metrics"
        );
    }

    #[test]
    fn v2_metrics_count_cpu_in_microseconds() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5_000_000;
        s.memory.raw.insert("anon".into(), 7);
        let m = v2_metrics(&s);
        assert_eq!(m.cpu.usage_usec, 5000);
        assert_eq!(m.memory.anon, 7);
        assert_eq!(
            pack(&m, "io.containerd.cgroups.v2").unwrap().type_url,
            "io.containerd.cgroups.v2.Metrics"
        );
    }
}
