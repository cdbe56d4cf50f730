//! The device authorization grant (RFC 8628; docs/protocol.md#device-authorization-grant): the
//! device authorization endpoint a device asks for codes at ([`authorization`]), and the person's
//! pages, where a code is entered ([`link`]) and the request approved or denied ([`consent`]);
//! the token endpoint's side is `token::device_code`.

pub mod authorization;
pub mod consent;
pub mod link;
