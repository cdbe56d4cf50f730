//! `appliance`: the supervisor binary.

fn main() {}
