//! `compat_sessions`, `compat_access_tokens` and `compat_refresh_tokens` (migration 0010): the
//! legacy Matrix login API's sessions (one per device) and tokens, found by the lower-case hex
//! SHA-256 of their text. One module per table, plus the joined lookups; callers use the
//! functions from here.

mod access_tokens;
mod lookup;
mod refresh_tokens;
mod sessions;

pub use self::access_tokens::{
    add_compat_access_token, find_compat_access_token_by_sha256,
    mark_compat_access_token_first_used, revoke_compat_access_token,
};
pub use self::lookup::{CompatLookup, lookup_compat_access_token, lookup_compat_refresh_token};
pub use self::refresh_tokens::{
    add_compat_refresh_token, consume_compat_refresh_token, find_compat_refresh_token_by_sha256,
};
pub use self::sessions::{
    NewCompatSession, add_compat_session, find_active_compat_sessions_by_device,
    find_compat_session, finish_all_compat_sessions, finish_compat_session,
    list_active_compat_sessions,
};

#[cfg(test)]
mod tests;
