//! The layering of operator overrides over the appliance's defaults, on YAML values.

use serde_yaml::{Mapping, Value};

/// One key dropped from an operator's override file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The override file (filled in by the caller).
    pub file: String,
    /// The dotted key.
    pub key: String,
    pub reason: &'static str,
}

/// Merges `over` into `base`: mappings recursively, anything else replaced.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Layers `overrides` over `base`, restoring `owned` keys from `base` and removing
/// `forbidden` ones. Returns the result and each override that was dropped.
pub(super) fn apply(
    base: &Value,
    overrides: &Value,
    owned: &[&str],
    forbidden: &[&str],
) -> (Value, Vec<Ignored>) {
    let mut merged = base.clone();
    deep_merge(&mut merged, overrides);
    let mut ignored = Vec::new();
    for key in owned {
        if get(overrides, key).is_some() {
            ignored.push(Ignored {
                file: String::new(),
                key: (*key).to_owned(),
                reason: "the appliance sets this key itself",
            });
            match get(base, key) {
                Some(v) => set(&mut merged, key, v.clone()),
                None => remove(&mut merged, key),
            }
        }
    }
    for key in forbidden {
        if get(overrides, key).is_some() {
            ignored.push(Ignored {
                file: String::new(),
                key: (*key).to_owned(),
                reason: "Synapse refuses to start with it while MAS handles authentication",
            });
            remove(&mut merged, key);
        }
    }
    (merged, ignored)
}

fn get<'v>(value: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted
        .split('.')
        .try_fold(value, |v, part| v.as_mapping()?.get(part))
}

fn set(value: &mut Value, dotted: &str, new: Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = value;
    for part in parts {
        let Value::Mapping(m) = cur else { return };
        cur = m
            .entry(Value::from(part))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    if let Value::Mapping(m) = cur {
        m.insert(Value::from(last), new);
    }
}

fn remove(value: &mut Value, dotted: &str) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = value;
    for part in parts {
        match cur.as_mapping_mut().and_then(|m| m.get_mut(part)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_mapping_mut() {
        m.remove(last);
    }
}
