//! The device authorization grant (RFC 8628; docs/protocol.md#device-authorization-grant): the
//! person's pages, where a code is entered ([`link`]) and the request approved or denied
//! ([`consent`]).

pub mod consent;
pub mod link;
