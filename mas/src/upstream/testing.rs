//! In-process fake OpenID provider for tests (filled in below).
