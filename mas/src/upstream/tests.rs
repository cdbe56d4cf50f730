//! Provider tests against the in-process fake provider.
