//! Partial resource updates (`runr update`): merging what is given into what a container
//! has, and knowing what to set back when the kernel refuses part of it. Both work on the
//! JSON form, so every field of the spec is covered the same way: objects merge key by key,
//! anything else (numbers, strings, lists) is replaced whole.
//!
//! Also [`without_unset_zeros`]: engines written in Go send 0 for the fields they leave
//! unset, and runc reads them so.

use oci_spec::runtime::LinuxResources;
use serde_json::{Map, Value};

/// `base` with every field `update` sets replaced by `update`'s value.
pub fn merge(base: &mut LinuxResources, update: &LinuxResources) {
    let mut b = to_value(base);
    merge_values(&mut b, &to_value(update));
    *base = from_value(b);
}

/// The values `old` had for the fields `update` sets (those `old` never set are left out).
pub fn previous_values(old: &LinuxResources, update: &LinuxResources) -> LinuxResources {
    from_value(project(&to_value(old), &to_value(update)).unwrap_or(Value::Object(Map::new())))
}

/// Fields whose 0 (or empty string) means "not set", as runc reads them: docker and
/// containerd fill in 0 for limits not asked for (a blkio weight of 0, for instance, which
/// the kernel would refuse). Values that are meaningful at 0 (swappiness, cpu idle and
/// burst, a device's rate) are kept.
const UNSET_WHEN_ZERO: &[(&str, &[&str])] = &[
    (
        "memory",
        &["limit", "reservation", "swap", "kernel", "kernelTCP"],
    ),
    (
        "cpu",
        &[
            "shares",
            "quota",
            "period",
            "realtimeRuntime",
            "realtimePeriod",
            "cpus",
            "mems",
        ],
    ),
    ("blockIO", &["weight", "leafWeight"]),
];

/// `r` without the fields set to 0 that mean "not set" (see `UNSET_WHEN_ZERO`); a pids
/// limit of 0 drops the pids section, and a weight device with neither weight is dropped.
pub fn without_unset_zeros(r: &LinuxResources) -> LinuxResources {
    let mut v = to_value(r);
    let zero = |x: &Value| x.as_i64() == Some(0) || x.as_u64() == Some(0) || x.as_str() == Some("");
    for (section, fields) in UNSET_WHEN_ZERO {
        if let Some(Value::Object(o)) = v.get_mut(*section) {
            o.retain(|k, x| !(fields.contains(&k.as_str()) && zero(x)));
        }
    }
    if let Some(Value::Array(devices)) = v.pointer_mut("/blockIO/weightDevice") {
        for d in devices.iter_mut() {
            if let Value::Object(o) = d {
                o.retain(|k, x| !((k == "weight" || k == "leafWeight") && zero(x)));
            }
        }
        devices.retain(|d| d.get("weight").is_some() || d.get("leafWeight").is_some());
    }
    if v.pointer("/pids/limit").is_some_and(zero) {
        v.as_object_mut().map(|o| o.remove("pids"));
    }
    from_value(v)
}

fn to_value(r: &LinuxResources) -> Value {
    serde_json::to_value(r).expect("resources serialize")
}

fn from_value(v: Value) -> LinuxResources {
    // Built only from values that came out of LinuxResources: always valid.
    serde_json::from_value(v).expect("merged resources deserialize")
}

fn merge_values(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match b.get_mut(k) {
                    Some(existing) => merge_values(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

fn project(old: &Value, shape: &Value) -> Option<Value> {
    match (old, shape) {
        (Value::Object(o), Value::Object(s)) => {
            let out: Map<String, Value> = s
                .keys()
                .filter_map(|k| Some((k.clone(), project(o.get(k)?, &s[k])?)))
                .collect();
            Some(Value::Object(out))
        }
        (Value::Null, _) => None,
        (o, _) => Some(o.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zeros_that_mean_unset_are_dropped() {
        let r = without_unset_zeros(&res(serde_json::json!({
            "memory": {"limit": 0, "swappiness": 0, "reservation": 5},
            "cpu": {"shares": 0, "quota": 0, "cpus": "", "idle": 0},
            "blockIO": {"weight": 0, "weightDevice": [
                {"major": 8, "minor": 0, "weight": 0},
                {"major": 8, "minor": 16, "weight": 0, "leafWeight": 20}]},
            "pids": {"limit": 0}
        })));
        assert_eq!(
            to_value(&r),
            serde_json::json!({
                "memory": {"swappiness": 0, "reservation": 5},
                "cpu": {"idle": 0},
                "blockIO": {"weightDevice": [{"major": 8, "minor": 16, "leafWeight": 20}]}
            })
        );
    }

    #[test]
    fn update_merges_field_by_field() {
        let mut base = res(serde_json::json!({
            "memory": {"limit": 100, "reservation": 50},
            "cpu": {"shares": 512, "cpus": "0"},
            "pids": {"limit": 10}
        }));
        let update = res(serde_json::json!({
            "memory": {"limit": 200},
            "cpu": {"quota": 1000},
            "blockIO": {"weight": 300}
        }));
        merge(&mut base, &update);
        let v = to_value(&base);
        assert_eq!(v["memory"]["limit"], 200);
        assert_eq!(v["memory"]["reservation"], 50);
        assert_eq!(v["cpu"]["shares"], 512);
        assert_eq!(v["cpu"]["quota"], 1000);
        assert_eq!(v["pids"]["limit"], 10);
        assert_eq!(v["blockIO"]["weight"], 300);
    }

    #[test]
    fn previous_values_cover_only_what_the_update_touches() {
        let old = res(serde_json::json!({
            "memory": {"limit": 100, "reservation": 50},
            "pids": {"limit": 10}
        }));
        let update = res(serde_json::json!({
            "memory": {"limit": 200, "swap": 300},
            "cpu": {"shares": 2}
        }));
        let back = to_value(&previous_values(&old, &update));
        assert_eq!(back["memory"]["limit"], 100);
        assert!(back["memory"].get("swap").is_none());
        assert!(back["memory"].get("reservation").is_none());
        assert!(back.get("pids").is_none());
    }
}
