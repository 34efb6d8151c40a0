//! Device access on cgroup v2: an eBPF program of type CGROUP_DEVICE that runr generates
//! from the config's device rules and attaches to the container's cgroup.
//!
//! The rules keep their cgroup v1 meaning: they apply in order and the last one that matches
//! a request decides, so the program tests them from the last to the first and returns at
//! the first match; nothing matching means deny. An allow rule matches a request whose
//! access is within the rule's; a deny rule matches one that asks for any of its access.

use crate::CgroupError;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: access_type is
// (access << 16) | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Registers: r1 the context; r2 type, r3 access, r4 major, r5 minor; r6 scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

/// The program for `rules`.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let block = rule_block(rule)?;
        let unconditional = block.len() == 2;
        p.extend(block);
        if unconditional {
            // It matches everything: the rules before it can never decide (and the verifier
            // refuses unreachable code).
            return Ok(p);
        }
    }
    // No rule matched: deny.
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

/// The tests of one rule, each jumping past the block on a mismatch, then the verdict.
fn rule_block(rule: &LinuxDeviceCgroup) -> Result<Vec<Insn>, CgroupError> {
    let access = access_bits(rule.access().as_deref().unwrap_or("rwm"))?;
    // (opcode, register, value) tests that must all pass: "jump away unless equal".
    let mut tests: Vec<Insn> = Vec::new();
    match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => {}
        LinuxDeviceType::B => tests.push(insn(JMP_JNE_K, R2, 0, 0, DEV_BLOCK)),
        LinuxDeviceType::C | LinuxDeviceType::U => tests.push(insn(JMP_JNE_K, R2, 0, 0, DEV_CHAR)),
        LinuxDeviceType::P => {
            return Err(CgroupError::Invalid(
                "a device cgroup rule cannot name a fifo (type p)".into(),
            ))
        }
    }
    let all = ACC_MKNOD | ACC_READ | ACC_WRITE;
    let mut access_test = Vec::new();
    if rule.allow() && access != all {
        // Allowed only if nothing outside the rule's access is asked for.
        access_test.push(insn(ALU32_MOV_X, R6, R3, 0, 0));
        access_test.push(insn(ALU32_AND_K, R6, 0, 0, all & !access));
        access_test.push(insn(JMP_JNE_K, R6, 0, 0, 0));
    } else if !rule.allow() && access != all {
        // Denied if any of the rule's access is asked for.
        access_test.push(insn(ALU32_MOV_X, R6, R3, 0, 0));
        access_test.push(insn(ALU32_AND_K, R6, 0, 0, access));
        access_test.push(insn(JMP_JEQ_K, R6, 0, 0, 0));
    }
    tests.extend(access_test);
    if let Some(major) = rule.major().filter(|m| *m >= 0) {
        tests.push(insn(JMP_JNE_K, R4, 0, 0, major as i32));
    }
    if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
        tests.push(insn(JMP_JNE_K, R5, 0, 0, minor as i32));
    }
    let verdict = [
        insn(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow())),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ];
    // Each jump skips the rest of the block: the later tests and the verdict.
    let n = tests.len();
    for (i, t) in tests.iter_mut().enumerate() {
        if t.code == JMP_JNE_K || t.code == JMP_JEQ_K {
            t.off = (n - i - 1 + verdict.len()) as i16;
        }
    }
    tests.extend(verdict);
    Ok(tests)
}

fn access_bits(access: &str) -> Result<i32, CgroupError> {
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(CgroupError::Invalid(format!(
                    "device access {access:?} may only contain r, w and m"
                )))
            }
        };
    }
    Ok(bits)
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// bpf(2) with a zero-padded attribute block (the kernel wants unused bytes zero).
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable, zero-padded 128-byte block laid out as the
    // command's part of union bpf_attr; the pointers inside it point to live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Write `lo` and `hi` as the two u32 halves of attribute word `i` (little or big endian
/// alike: as the kernel reads two consecutive u32 fields).
fn put_u32s(attr: &mut [u64; 16], i: usize, lo: u32, hi: u32) {
    let bytes: Vec<u8> = lo
        .to_ne_bytes()
        .into_iter()
        .chain(hi.to_ne_bytes())
        .collect();
    attr[i] = u64::from_ne_bytes(bytes.try_into().expect("8 bytes"));
}

fn load(prog: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u64; 16];
    put_u32s(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, prog.len() as u32);
    attr[1] = prog.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    put_u32s(&mut attr, 3, 1, log.len() as u32); // log_level, log_size
    attr[4] = log.as_mut_ptr() as u64;
    let fd = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        CgroupError::Invalid(format!(
            "load the device eBPF program: {e}{}",
            if text.is_empty() {
                String::new()
            } else {
                format!(" (verifier: {text})")
            }
        ))
    })?;
    // SAFETY: the kernel returned a new descriptor for the program; it is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Ids of the device programs attached to the cgroup open as `cgroup`.
fn attached(cgroup: RawFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = [0u64; 16];
    put_u32s(&mut attr, 0, cgroup as u32, BPF_CGROUP_DEVICE);
    attr[2] = ids.as_mut_ptr() as u64;
    put_u32s(&mut attr, 3, ids.len() as u32, 0); // prog_cnt
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let count = (attr[3] & 0xffff_ffff) as usize;
    let count = if cfg!(target_endian = "little") {
        count
    } else {
        (attr[3] >> 32) as usize
    };
    ids.truncate(count.min(64));
    Ok(ids)
}

/// Attach the program for `rules` to the cgroup directory `dir`, replacing any device
/// program attached before (on update).
pub fn apply(dir: &std::path::Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = load(&program(rules)?)?;
    let cgroup = std::fs::File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.into(),
        source,
    })?;
    let attach_err = |what: &str, source| CgroupError::Write {
        path: dir.into(),
        value: format!("({what} the device eBPF program)"),
        source,
    };
    // Containers sharing the cgroup swap programs one at a time.
    let _lock = crate::fsutil::lock(dir)?;
    let before = attached(cgroup.as_raw_fd()).unwrap_or_default();
    let mut attr = [0u64; 16];
    put_u32s(
        &mut attr,
        0,
        cgroup.as_raw_fd() as u32,
        prog.as_raw_fd() as u32,
    );
    put_u32s(&mut attr, 1, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| attach_err("attach", e))?;
    // Both programs must allow while both are attached, so nothing is briefly let through.
    for id in before {
        let mut get = [0u64; 16];
        put_u32s(&mut get, 0, id, 0);
        let Ok(old) = bpf(BPF_PROG_GET_FD_BY_ID, &mut get) else {
            continue;
        };
        // SAFETY: a new descriptor for the old program, ours to close.
        let old = unsafe { OwnedFd::from_raw_fd(old as RawFd) };
        let mut detach = [0u64; 16];
        put_u32s(
            &mut detach,
            0,
            cgroup.as_raw_fd() as u32,
            old.as_raw_fd() as u32,
        );
        put_u32s(&mut detach, 1, BPF_CGROUP_DEVICE, 0);
        match bpf(BPF_PROG_DETACH, &mut detach) {
            // Another command on a shared cgroup detached it first.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => {
                r.map_err(|e| attach_err("detach the old", e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devrules::tests::rule;

    /// Run the program on a request, as the kernel would.
    fn eval(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JMP_JEQ_K if r[dst] == i.imm as u64 => pc += i.off as usize,
                JMP_JNE_K if r[dst] != i.imm as u64 => pc += i.off as usize,
                JMP_JEQ_K | JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn last_matching_rule_decides() {
        use LinuxDeviceType::*;
        let p = program(&[
            rule(false, A, -1, -1, "rwm"),
            rule(true, C, 1, 3, "rwm"),   // /dev/null
            rule(true, C, 1, 5, "r"),     // /dev/zero, read only
            rule(true, C, 136, -1, "rw"), // ptys
            rule(false, C, 1, 3, "w"),    // then: no writes to /dev/null
        ])
        .unwrap();
        let (r, w, m) = (ACC_READ, ACC_WRITE, ACC_MKNOD);
        assert_eq!(eval(&p, DEV_CHAR, r, 1, 3), 1);
        assert_eq!(eval(&p, DEV_CHAR, r | w, 1, 3), 0);
        assert_eq!(eval(&p, DEV_CHAR, r, 1, 5), 1);
        assert_eq!(eval(&p, DEV_CHAR, r | w, 1, 5), 0);
        assert_eq!(eval(&p, DEV_CHAR, r | w, 136, 7), 1);
        assert_eq!(eval(&p, DEV_CHAR, m, 136, 7), 0);
        assert_eq!(eval(&p, DEV_BLOCK, r, 1, 3), 0);
        assert_eq!(eval(&p, DEV_CHAR, r, 8, 0), 0);
        let open = program(&[rule(true, A, -1, -1, "rwm")]).unwrap();
        assert_eq!(eval(&open, DEV_BLOCK, r | w | m, 8, 0), 1);
        assert_eq!(eval(&program(&[]).unwrap(), DEV_CHAR, r, 1, 3), 0);
        assert!(program(&[rule(true, A, -1, -1, "rx")]).is_err());
        // An allow-all after a deny: the deny is never reached, so not emitted.
        let all = program(&[rule(false, C, 1, 3, "rwm"), rule(true, A, -1, -1, "rwm")]).unwrap();
        assert_eq!(all.len(), 8);
        assert_eq!(eval(&all, DEV_CHAR, r, 1, 3), 1);
    }
}
