//! The device authorization grant (RFC 8628; docs/protocol.md#device-authorization-grant): the
//! device authorization endpoint a device asks for codes at ([`authorization`]); the token
//! endpoint's side is `token::device_code`.

pub mod authorization;
