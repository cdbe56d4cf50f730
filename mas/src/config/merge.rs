//! Deep merge of YAML documents, the way several `-c` files combine.

use serde_yaml::Value;

/// Merges `overlay` into `base`: mappings merge key by key, recursively; anything else
/// (scalars, sequences, null) in `overlay` replaces what `base` had.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn mappings_merge_recursively_and_later_scalars_win() {
        let mut base = yaml("a: {b: 1, c: 2}\nd: 3");
        merge(&mut base, yaml("a: {c: 20, e: 5}"));
        assert_eq!(base, yaml("a: {b: 1, c: 20, e: 5}\nd: 3"));
    }

    #[test]
    fn sequences_are_replaced_not_appended() {
        let mut base = yaml("list: [1, 2]");
        merge(&mut base, yaml("list: [3]"));
        assert_eq!(base, yaml("list: [3]"));
    }

    #[test]
    fn explicit_null_replaces_a_value() {
        let mut base = yaml("schema: mas");
        merge(&mut base, yaml("schema: ~"));
        assert_eq!(base, yaml("schema: ~"));
    }
}
